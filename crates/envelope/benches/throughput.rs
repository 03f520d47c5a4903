//! Encryption throughput of the ESDK format against raw in-memory AES-256-GCM on the same
//! machine (the target: at least 70%). `cargo bench -p keyhold-envelope`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyhold_envelope::{AlgorithmSuite, Envelope};

const SIZE: usize = 16 * 1024 * 1024;
const FRAME: u32 = 64 * 1024;

fn raw_gcm(data: &mut [u8], key: &LessSafeKey) {
    for (i, chunk) in data.chunks_mut(FRAME as usize).enumerate() {
        let mut iv = [0u8; 12];
        iv[8..].copy_from_slice(&(i as u32).to_be_bytes());
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::from(&[0u8; 60]),
                chunk,
            )
            .expect("seal");
        let _ = std::hint::black_box(tag);
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let plaintext = vec![0x5au8; SIZE];
    let key_bytes = [7u8; 32];
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).expect("key"));
    let mut g = c.benchmark_group("encrypt_16MiB_64KiB_frames");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(20);
    g.bench_function("raw_aes_256_gcm_in_place", |b| {
        let mut buf = plaintext.clone();
        b.iter(|| raw_gcm(&mut buf, &key));
    });
    for suite in [
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
    ] {
        let mut out = Vec::with_capacity(SIZE + (1 << 20));
        g.bench_function(suite.name(), |b| {
            b.iter(|| {
                out.clear();
                rt.block_on(Envelope::encrypt_with_raw_data_key_for_benchmarks_only(
                    &key_bytes,
                    suite,
                    FRAME,
                    &mut &plaintext[..],
                    &mut out,
                ))
                .expect("encrypt")
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
