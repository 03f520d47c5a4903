//! Encryption and decryption throughput of the ESDK format against raw in-memory
//! AES-256-GCM on the same machine (the target: encryption at least 70% of raw), for
//! 1 MiB and 64 MiB streams in 64 KiB frames. `cargo bench -p keyhold-envelope`.
//!
//! Raw encryption seals the buffer in place, chunk by chunk; raw decryption copies each
//! sealed chunk into a frame-sized buffer and opens it there (what a streaming reader does).
//! The envelope runs read from memory and write into a preallocated `Vec`, with a data key
//! given directly (no KMS call): they measure the format — key derivation, commitment,
//! framing, header authentication, and for the signed suite ECDSA P-384 — not KMS.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keyhold_envelope::{AlgorithmSuite, Envelope};

const FRAME: u32 = 64 * 1024;
const SIZES: [(usize, &str); 2] = [(1 << 20, "1MiB"), (64 << 20, "64MiB")];
const SUITES: [AlgorithmSuite; 2] = [
    AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
    AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
];

fn iv(i: usize) -> Nonce {
    let mut iv = [0u8; 12];
    iv[8..].copy_from_slice(&(i as u32).to_be_bytes());
    Nonce::assume_unique_for_key(iv)
}

fn raw_seal(data: &mut [u8], key: &LessSafeKey) -> Vec<aws_lc_rs::aead::Tag> {
    data.chunks_mut(FRAME as usize)
        .enumerate()
        .map(|(i, chunk)| {
            key.seal_in_place_separate_tag(iv(i), Aad::from(&[0u8; 60]), chunk)
                .expect("seal")
        })
        .collect()
}

fn raw_open(
    sealed: &[u8],
    tags: &[aws_lc_rs::aead::Tag],
    key: &LessSafeKey,
    scratch: &mut Vec<u8>,
) {
    for (i, (chunk, tag)) in sealed.chunks(FRAME as usize).zip(tags).enumerate() {
        scratch.clear();
        scratch.extend_from_slice(chunk);
        scratch.extend_from_slice(tag.as_ref());
        let plain = key
            .open_in_place(iv(i), Aad::from(&[0u8; 60]), &mut scratch[..])
            .expect("open");
        std::hint::black_box(plain);
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let key_bytes = [7u8; 32];
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).expect("key"));
    for (size, label) in SIZES {
        let plaintext = vec![0x5au8; size];
        let mut g = c.benchmark_group(format!("{label}_64KiB_frames"));
        g.throughput(Throughput::Bytes(size as u64));
        g.sample_size(if size > (8 << 20) { 10 } else { 30 });

        let mut buf = plaintext.clone();
        g.bench_function("encrypt/raw_aes_256_gcm", |b| {
            b.iter(|| raw_seal(&mut buf, &key));
        });
        let mut sealed = plaintext.clone();
        let tags = raw_seal(&mut sealed, &key);
        let mut scratch = Vec::with_capacity(FRAME as usize + 16);
        g.bench_function("decrypt/raw_aes_256_gcm", |b| {
            b.iter(|| raw_open(&sealed, &tags, &key, &mut scratch));
        });

        for suite in SUITES {
            let mut message = Vec::with_capacity(size + (1 << 20));
            g.bench_function(BenchmarkId::new("encrypt", suite.name()), |b| {
                b.iter(|| {
                    message.clear();
                    rt.block_on(Envelope::encrypt_with_raw_data_key_for_benchmarks_only(
                        &key_bytes,
                        suite,
                        FRAME,
                        &mut &plaintext[..],
                        &mut message,
                    ))
                    .expect("encrypt")
                });
            });
            let mut out = Vec::with_capacity(size);
            g.bench_function(BenchmarkId::new("decrypt", suite.name()), |b| {
                b.iter(|| {
                    out.clear();
                    rt.block_on(Envelope::decrypt_with_raw_data_key_for_benchmarks_only(
                        &key_bytes,
                        &mut &message[..],
                        &mut out,
                    ))
                    .expect("decrypt")
                });
            });
            // (Empty when a filter skipped the decryption run.)
            assert!(
                out.is_empty() || out == plaintext,
                "{} round trip",
                suite.name()
            );
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
