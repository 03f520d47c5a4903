//! Encryption and decryption throughput of the ESDK format against raw in-memory
//! AES-256-GCM on the same machine (the target: encryption at least 70% of raw), for
//! 1 MiB and 64 MiB streams in 64 KiB frames. `cargo bench -p keyhold-envelope`.
//!
//! Three raw encryption baselines, all aws-lc-rs AES-256-GCM over the same buffer in 64 KiB
//! chunks: `in_place` overwrites the plaintext (no copy at all: the strictest, and what the
//! issue's "raw in-memory AES-256-GCM" means), `into_buffer` leaves the plaintext intact and
//! writes ciphertext and tags into a second, reused buffer, `into_new_buffer` does so into
//! a freshly allocated one (what any encryption that returns a new message must pay,
//! including first-touch page faults). Raw decryption copies each sealed chunk into a
//! frame-sized buffer and opens it there (what a streaming reader does).
//!
//! The envelope: `encrypt_into_buffer` and `encrypt_into_new_buffer` are the in-memory path
//! (`Envelope::encrypt_into` with a reused buffer, `Envelope::encrypt`: one pass from the
//! plaintext into the message), the counterparts of the two out-of-place raw baselines;
//! `encrypt_stream` and
//! `decrypt_stream` go through `AsyncRead`/`AsyncWrite` from a slice into a reused `Vec`
//! (one copy in, one copy out, as any reader/writer pair). A data key is given directly (no
//! KMS call): they measure the format — key derivation, commitment, framing, header
//! authentication, and for the signed suite ECDSA P-384 — not KMS.

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

/// In place: the strictest baseline (no copy at all; the plaintext is overwritten).
fn raw_seal(data: &mut [u8], key: &LessSafeKey) -> Vec<aws_lc_rs::aead::Tag> {
    data.chunks_mut(FRAME as usize)
        .enumerate()
        .map(|(i, chunk)| {
            key.seal_in_place_separate_tag(iv(i), Aad::from(&[0u8; 60]), chunk)
                .expect("seal")
        })
        .collect()
}

/// Out of place: the plaintext stays, ciphertext and tags go to a second buffer (what an
/// encryption that leaves its input intact must at least do).
fn raw_seal_into(plaintext: &[u8], out: &mut [u8], key: &LessSafeKey) {
    let f = FRAME as usize;
    for (i, (p, o)) in plaintext.chunks(f).zip(out.chunks_mut(f + 16)).enumerate() {
        let (c, tag) = o.split_at_mut(p.len());
        key.seal_out_of_place_scatter(iv(i), Aad::from(&[0u8; 60]), p, c, &[], tag)
            .expect("seal");
    }
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
        g.bench_function("encrypt/raw_aes_256_gcm_in_place", |b| {
            b.iter(|| raw_seal(&mut buf, &key));
        });
        let mut into = vec![0u8; size + size / FRAME as usize * 16 + 16];
        g.bench_function("encrypt/raw_aes_256_gcm_into_buffer", |b| {
            b.iter(|| raw_seal_into(&plaintext, &mut into, &key));
        });
        g.bench_function("encrypt/raw_aes_256_gcm_into_new_buffer", |b| {
            b.iter(|| {
                let mut fresh = vec![0u8; into.len()];
                raw_seal_into(&plaintext, &mut fresh, &key);
                fresh
            });
        });
        let mut sealed = plaintext.clone();
        let tags = raw_seal(&mut sealed, &key);
        let mut scratch = Vec::with_capacity(FRAME as usize + 16);
        g.bench_function("decrypt/raw_aes_256_gcm", |b| {
            b.iter(|| raw_open(&sealed, &tags, &key, &mut scratch));
        });

        for suite in SUITES {
            let mut reused = Vec::new();
            g.bench_function(BenchmarkId::new("encrypt_into_buffer", suite.name()), |b| {
                b.iter(|| {
                    Envelope::encrypt_slice_with_raw_data_key_for_benchmarks_only(
                        &key_bytes,
                        suite,
                        FRAME,
                        &plaintext,
                        &mut reused,
                    )
                    .expect("encrypt")
                });
            });
            g.bench_function(
                BenchmarkId::new("encrypt_into_new_buffer", suite.name()),
                |b| {
                    b.iter(|| {
                        let mut fresh = Vec::new();
                        Envelope::encrypt_slice_with_raw_data_key_for_benchmarks_only(
                            &key_bytes, suite, FRAME, &plaintext, &mut fresh,
                        )
                        .expect("encrypt");
                        fresh
                    });
                },
            );
            let mut message = Vec::with_capacity(size + (1 << 20));
            g.bench_function(BenchmarkId::new("encrypt_stream", suite.name()), |b| {
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
            g.bench_function(BenchmarkId::new("decrypt_stream", suite.name()), |b| {
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
