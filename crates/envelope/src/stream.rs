//! Framed bodies over `AsyncRead`/`AsyncWrite` in constant memory (about 1 MiB of frames in
//! flight, at least two frames; see [`crate::pipeline`] for how frames are sealed and opened
//! on two cores while the stream's task copies), and the in-memory path.
//!
//! Release rules (`client-apis/decrypt.md`): every frame's plaintext is written only after
//! its GCM tag verified. For unsigned suites that is the whole rule. For signed suites the
//! regular frames are released the same way, but the final frame's plaintext is held until
//! the footer signature verified; until `decrypt` returns `Ok`, the output written so far is
//! authenticated (GCM, keyed by the data key) but not yet *signed*. See docs/envelope.md.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};

use crate::Error;
use crate::context::EncryptionContext;
use crate::context::PUBLIC_KEY_KEY;
use crate::crypto::{DataKey, MessageKey, Signer, Verifier, body_aad, frame_iv};
use crate::header::{EncryptedDataKey, Header, RawHeader, read_exact};
use crate::pipeline::{
    Cipher, Direction, FINAL_MARKER, HEAD_ROOM, Outcome, Pipeline, Slot, frame_head,
};
use crate::suite::{AlgorithmSuite, IV_LEN, TAG_LEN};

/// What a message is encrypted with.
pub(crate) struct EncryptionMaterials {
    pub suite: AlgorithmSuite,
    pub data_key: DataKey,
    pub edks: Vec<EncryptedDataKey>,
    /// The full context, with `aws-crypto-public-key` for signed suites.
    pub context: EncryptionContext,
    pub signer: Option<Signer>,
}

/// Writes through a buffer and, for signed suites, into the running signature.
struct Out<'a, W: AsyncWrite + Unpin> {
    w: BufWriter<&'a mut W>,
    signer: Option<Signer>,
}

impl<W: AsyncWrite + Unpin> Out<'_, W> {
    async fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if let Some(s) = &mut self.signer {
            s.update(bytes);
        }
        self.w.write_all(bytes).await.map_err(Error::Io)
    }
}

/// A new message's key, id and serialized header (body and tag), and its signer.
struct Start {
    key: MessageKey,
    message_id: Vec<u8>,
    header: Vec<u8>,
    signer: Option<Signer>,
}

/// A fresh random message id.
fn new_message_id(suite: AlgorithmSuite) -> Result<Vec<u8>, Error> {
    let mut message_id = vec![0u8; suite.message_id_len()];
    aws_lc_rs::rand::fill(&mut message_id).map_err(|_| Error::Crypto)?;
    Ok(message_id)
}

fn start(m: EncryptionMaterials, frame_len: u32, message_id: Vec<u8>) -> Result<Start, Error> {
    let suite = m.suite;
    if !suite.is_committing() {
        return Err(Error::Unsupported("encryption with a version-1 suite"));
    }
    let key = MessageKey::derive(suite, &m.data_key, &message_id)?;
    drop(m.data_key);
    let header = Header {
        suite,
        message_id: message_id.clone(),
        context: m.context,
        edks: m.edks,
        frame_len,
        commitment: key.commitment.as_deref().copied(),
    };
    let mut header = header.serialize_v2()?;
    let header_tag = key.seal([0u8; IV_LEN], &header, &mut [])?;
    header.extend_from_slice(&header_tag);
    Ok(Start {
        key,
        message_id,
        header,
        signer: m.signer,
    })
}

/// Encrypts a plaintext held in memory into one message in `out` (replacing its contents,
/// reusing its allocation when large enough): the same bytes as [`encrypt`] would write,
/// each frame sealed straight from `plaintext` into its place (no intermediate copy).
pub(crate) fn encrypt_slice(
    m: EncryptionMaterials,
    frame_len: u32,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let id = new_message_id(m.suite)?;
    encrypt_slice_with_id(m, frame_len, plaintext, id, out)
}

fn encrypt_slice_with_id(
    m: EncryptionMaterials,
    frame_len: u32,
    plaintext: &[u8],
    message_id: Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let Start {
        key,
        message_id,
        header,
        mut signer,
    } = start(m, frame_len, message_id)?;
    let fl = frame_len as usize;
    // Like the stream: every full frame is regular, then a final frame with the rest —
    // empty when the length is a multiple of the frame length (the ESDKs write that, and the
    // Python ESDK refuses a final frame as long as the frame length).
    let regular = plaintext.len() / fl;
    let frames = regular + 1;
    let last = u32::try_from(frames)
        .ok()
        .filter(|f| *f != u32::MAX)
        .ok_or(Error::InvalidInput(
            "message would exceed 2^32-1 frames; use a larger frame",
        ))?;
    let body_len = plaintext.len() + (frames - 1) * (4 + IV_LEN + TAG_LEN) + HEAD_ROOM + TAG_LEN;
    let total = header.len() + body_len;
    // Every byte of `out[..total]` is written below, so a reused buffer is only resized
    // (no clearing pass); a new one comes zeroed from the allocator (fresh pages for large
    // messages, no clearing pass either), with room for the signature footer.
    if out.capacity() < total + FOOTER_MAX {
        *out = vec![0u8; total + FOOTER_MAX];
    }
    out.resize(total, 0);
    out[..header.len()].copy_from_slice(&header);
    if let Some(s) = &mut signer {
        s.update(&header);
    }
    let mut pos = header.len();
    let mut chunks = plaintext.chunks_exact(fl);
    for seq in 1..=last {
        let is_final = seq == last;
        let chunk = match is_final {
            false => chunks.next().unwrap_or_default(),
            true => chunks.remainder(),
        };
        let iv = frame_iv(seq);
        let head_len = if is_final { HEAD_ROOM } else { HEAD_ROOM - 8 };
        let mut head = [0u8; HEAD_ROOM];
        let at = frame_head(&mut head, is_final, seq, iv, chunk.len());
        let record = &mut out[pos..pos + head_len + chunk.len() + TAG_LEN];
        let (h, rest) = record.split_at_mut(head_len);
        h.copy_from_slice(&head[at..]);
        let (ciphertext, tag) = rest.split_at_mut(chunk.len());
        let aad = body_aad(&message_id, is_final, seq, chunk.len() as u64);
        key.seal_into(iv, aad.as_ref(), chunk, ciphertext, tag)?;
        if let Some(s) = &mut signer {
            s.update(record);
        }
        pos += record.len();
    }
    if let Some(signer) = signer {
        let sig = signer.finish()?;
        let len = u16::try_from(sig.len()).map_err(|_| Error::Crypto)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&sig);
    }
    Ok(())
}

/// Room for the footer of a signed message: a 2-byte length and a DER ECDSA P-384
/// signature (at most 104 bytes).
const FOOTER_MAX: usize = 2 + 104;

/// Encrypts all of `r` into one message on `w`; returns the plaintext byte count.
/// `limit` (the ESDK's plaintext length bound) fails the message if more bytes arrive.
pub(crate) async fn encrypt<R, W>(
    m: EncryptionMaterials,
    frame_len: u32,
    r: &mut R,
    w: &mut W,
    limit: Option<u64>,
) -> Result<u64, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let id = new_message_id(m.suite)?;
    encrypt_with_id(m, frame_len, r, w, limit, id, true).await
}

async fn encrypt_with_id<R, W>(
    m: EncryptionMaterials,
    frame_len: u32,
    r: &mut R,
    w: &mut W,
    limit: Option<u64>,
    message_id: Vec<u8>,
    parallel: bool,
) -> Result<u64, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Start {
        key,
        message_id,
        header,
        signer,
    } = start(m, frame_len, message_id)?;
    let mut out = Out {
        w: BufWriter::with_capacity(64 * 1024, w),
        signer,
    };
    out.put(&header).await?;

    // Frames are read into jobs, sealed by the pipeline (here and on a helper thread), and
    // written in order; the task copies while it can and seals only when it would wait. A
    // short read ends the input and makes the final frame — empty when the input is a
    // multiple of the frame length (the ESDKs write that, and the Python ESDK refuses a
    // final frame as long as the frame length).
    let cipher = Cipher {
        key,
        message_id,
        direction: Direction::Seal,
    };
    let mut pipe = Pipeline::new(cipher, frame_len as usize, parallel);
    let mut input = Input {
        next_seq: 1,
        total: 0,
        limit,
        done: false,
    };
    loop {
        while let Some(slots) = pipe.take_finished()? {
            for slot in &slots {
                if slot.outcome != Outcome::Done {
                    return Err(Error::Crypto);
                }
                out.put(slot.sealed()).await?;
            }
            pipe.recycle(slots);
        }
        if input.done && pipe.is_empty() {
            break;
        }
        if !input.done && pipe.has_room() {
            let job = input.read_job(r, &mut pipe).await?;
            pipe.submit(job);
        } else {
            pipe.finish_oldest().await;
        }
    }
    if let Some(signer) = out.signer.take() {
        let sig = signer.finish()?;
        let len = u16::try_from(sig.len()).map_err(|_| Error::Crypto)?;
        out.put(&len.to_be_bytes()).await?;
        out.put(&sig).await?;
    }
    out.w.flush().await.map_err(Error::Io)?;
    Ok(input.total)
}

/// Where the plaintext input stands: the next frame's sequence number, the bytes read so
/// far.
struct Input {
    next_seq: u32,
    total: u64,
    limit: Option<u64>,
    done: bool,
}

impl Input {
    /// Reads the frames of one job (fewer when the input ends: the final frame).
    async fn read_job<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        pipe: &mut Pipeline,
    ) -> Result<Vec<Slot>, Error> {
        let fl = pipe.frame_len();
        let mut slots = Vec::with_capacity(pipe.frames_per_job());
        while slots.len() < pipe.frames_per_job() {
            let mut slot = pipe.slot();
            // On an error the slots read so far are dropped, which zeroizes them.
            let n = slot.read_plaintext(r, fl).await?;
            self.total += n as u64;
            if let Some(limit) = self.limit
                && self.total > limit
            {
                return Err(Error::InvalidInput(
                    "more plaintext than the declared length",
                ));
            }
            let seq = self.next_seq;
            slot.seq = seq;
            slot.len = n;
            slot.is_final = n < fl;
            slot.iv = frame_iv(seq);
            let is_final = slot.is_final;
            slots.push(slot);
            if is_final {
                self.done = true;
                break;
            }
            self.next_seq = next_seq(seq)?;
        }
        Ok(slots)
    }
}

/// The sequence number after `seq`; a message has fewer than 2^32-1 frames.
fn next_seq(seq: u32) -> Result<u32, Error> {
    seq.checked_add(1)
        .filter(|s| *s != u32::MAX)
        .ok_or(Error::InvalidInput(
            "message would exceed 2^32-1 frames; use a larger frame",
        ))
}

/// Decrypts the body of a message whose header was read, with its unwrapped data key.
pub(crate) async fn decrypt<R, W>(
    raw: &RawHeader,
    data_key: DataKey,
    r: &mut R,
    w: &mut W,
) -> Result<u64, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    decrypt_with(raw, data_key, r, w, true).await
}

async fn decrypt_with<R, W>(
    raw: &RawHeader,
    data_key: DataKey,
    r: &mut R,
    w: &mut W,
    parallel: bool,
) -> Result<u64, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let h = &raw.header;
    let key = MessageKey::derive(h.suite, &data_key, &h.message_id)?;
    drop(data_key);
    if let Some(stored) = &h.commitment {
        key.check_commitment(stored)?;
    }
    let mut tag = raw.tag;
    key.open(raw.iv, &raw.body, &mut tag)?;

    let verifier = match h.suite.is_signed() {
        true => {
            let public = h
                .context
                .get(PUBLIC_KEY_KEY)
                .ok_or(Error::InvalidCiphertext)?;
            let mut v = Verifier::new(public)?;
            v.update(&raw.body);
            if h.suite.message_version() == 1 {
                v.update(&raw.iv);
            }
            v.update(&raw.tag);
            Some(v)
        }
        false => None,
    };

    // Frames are read into jobs, opened by the pipeline (here and on a helper thread), and
    // each frame's plaintext is written, in order, once its tag verified. The final frame
    // is read (with the footer signature and the check that nothing follows) before it is
    // opened, so it is written only after all of that passed.
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    let cipher = Cipher {
        key,
        message_id: h.message_id.clone(),
        direction: Direction::Open,
    };
    let mut pipe = Pipeline::new(cipher, h.frame_len as usize, parallel);
    let mut frames = Frames {
        expected: 1,
        done: false,
        verifier,
    };
    let mut total: u64 = 0;
    loop {
        while let Some(slots) = pipe.take_finished()? {
            for slot in &slots {
                if slot.outcome != Outcome::Done {
                    return Err(Error::InvalidCiphertext);
                }
                w.write_all(slot.plaintext()).await.map_err(Error::Io)?;
                total += slot.len as u64;
            }
            pipe.recycle(slots);
        }
        if frames.done && pipe.is_empty() {
            break;
        }
        if !frames.done && pipe.has_room() {
            let job = frames.read_job(r, &mut pipe).await?;
            pipe.submit(job);
        } else {
            pipe.finish_oldest().await;
        }
    }
    w.flush().await.map_err(Error::Io)?;
    Ok(total)
}

/// Where the ciphertext input stands: the sequence number the next frame must carry, and
/// (signed suites) the running signature check over every byte read.
struct Frames {
    expected: u32,
    done: bool,
    verifier: Option<Verifier>,
}

impl Frames {
    /// Reads the frames of one job (fewer when the final frame comes), checking sequence
    /// numbers and lengths; after the final frame, the footer signature and the end of the
    /// input.
    async fn read_job<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        pipe: &mut Pipeline,
    ) -> Result<Vec<Slot>, Error> {
        let fl = pipe.frame_len();
        let mut slots = Vec::with_capacity(pipe.frames_per_job());
        while slots.len() < pipe.frames_per_job() {
            let mut first = [0u8; 4];
            read_exact(r, &mut first).await?;
            feed(&mut self.verifier, &first);
            let is_final = first == FINAL_MARKER;
            let mut first_iv = [0u8; IV_LEN];
            let (seq, len) = if is_final {
                let mut f = [0u8; 4 + IV_LEN + 4];
                read_exact(r, &mut f).await?;
                feed(&mut self.verifier, &f);
                first_iv.copy_from_slice(&f[4..4 + IV_LEN]);
                let [s0, s1, s2, s3, .., l0, l1, l2, l3] = f;
                (
                    u32::from_be_bytes([s0, s1, s2, s3]),
                    u32::from_be_bytes([l0, l1, l2, l3]) as usize,
                )
            } else {
                (u32::from_be_bytes(first), fl)
            };
            if seq != self.expected || len > fl {
                return Err(Error::InvalidCiphertext);
            }
            let mut slot = pipe.slot();
            let header_iv = match is_final {
                true => Some(first_iv),
                false => None,
            };
            let bytes = slot.read_ciphertext(r, header_iv, len).await?;
            feed(&mut self.verifier, bytes);
            slot.seq = seq;
            slot.len = len;
            slot.is_final = is_final;
            slots.push(slot);
            if is_final {
                if let Some(v) = self.verifier.take() {
                    let mut l = [0u8; 2];
                    read_exact(r, &mut l).await?;
                    let mut sig = vec![0u8; usize::from(u16::from_be_bytes(l))];
                    read_exact(r, &mut sig).await?;
                    v.verify(&sig)?;
                }
                let mut extra = [0u8; 1];
                if r.read(&mut extra).await.map_err(Error::Io)? != 0 {
                    return Err(Error::InvalidCiphertext);
                }
                self.done = true;
                break;
            }
            self.expected = self
                .expected
                .checked_add(1)
                .ok_or(Error::InvalidCiphertext)?;
        }
        Ok(slots)
    }
}

fn feed(verifier: &mut Option<Verifier>, bytes: &[u8]) {
    if let Some(v) = verifier {
        v.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{ReadLimits, read_header};
    use crate::pipeline::{INFLIGHT_BYTES, JOB_BYTES, MAX_JOB_FRAMES, PARALLEL_MIN};

    const FRAME: u32 = 4096;

    fn materials(suite: AlgorithmSuite, key: &DataKey) -> EncryptionMaterials {
        let mut context = EncryptionContext::new();
        context.insert("purpose", "test").unwrap();
        let signer = match suite.is_signed() {
            true => {
                let (signer, public) = Signer::generate().unwrap();
                context.insert_reserved(PUBLIC_KEY_KEY, public);
                Some(signer)
            }
            false => None,
        };
        EncryptionMaterials {
            suite,
            data_key: key.duplicate(),
            edks: vec![EncryptedDataKey {
                provider_id: "test".into(),
                provider_info: b"info".to_vec(),
                ciphertext: vec![1, 2, 3],
            }],
            context,
            signer,
        }
    }

    async fn decrypt_all(key: &DataKey, message: &[u8]) -> Vec<u8> {
        decrypt_some(key, message, true).await.unwrap()
    }

    /// Decrypts with or without the helper; on failure, also what was written before it.
    async fn decrypt_some(
        key: &DataKey,
        message: &[u8],
        parallel: bool,
    ) -> Result<Vec<u8>, (Error, Vec<u8>)> {
        let mut r = message;
        let limits = ReadLimits {
            max_edks: None,
            max_frame_len: FRAME,
        };
        let raw = read_header(&mut r, limits).await.unwrap();
        let mut out = Vec::new();
        match decrypt_with(&raw, key.duplicate(), &mut r, &mut out, parallel).await {
            Ok(n) => {
                assert_eq!(n, out.len() as u64);
                Ok(out)
            }
            Err(e) => Err((e, out)),
        }
    }

    /// The in-memory path must write exactly the stream's bytes, with the helper thread and
    /// without (same id, unsigned suite; signatures are randomized, so signed messages are
    /// compared by decrypting them); decryption with and without it gives the plaintext back.
    #[tokio::test]
    async fn slice_and_stream_paths_write_the_same_message() {
        let key = DataKey::random().unwrap();
        let f = FRAME as usize;
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        // Around frames, around jobs (processed alone below PARALLEL_MIN, shared with the
        // helper above it) and around the bound on jobs in flight.
        let job = (JOB_BYTES / f).clamp(1, MAX_JOB_FRAMES) * f;
        for len in [
            0,
            1,
            f - 1,
            f,
            f + 1,
            3 * f,
            3 * f + 17,
            PARALLEL_MIN - 1,
            PARALLEL_MIN + f,
            job,
            job + 1,
            2 * job + f / 2,
            INFLIGHT_BYTES,
            INFLIGHT_BYTES + job + 5,
            3 * INFLIGHT_BYTES + f + 1,
        ] {
            let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let id = vec![9u8; 32];
            // A reused buffer holding a longer, different message: overwritten and cut.
            let mut sliced = vec![0xEEu8; 4 * f + 4096];
            encrypt_slice_with_id(
                materials(suite, &key),
                FRAME,
                &plaintext,
                id.clone(),
                &mut sliced,
            )
            .unwrap();
            for parallel in [true, false] {
                let mut streamed = Vec::new();
                let n = encrypt_with_id(
                    materials(suite, &key),
                    FRAME,
                    &mut &plaintext[..],
                    &mut streamed,
                    None,
                    id.clone(),
                    parallel,
                )
                .await
                .unwrap();
                assert_eq!(n, len as u64);
                assert!(
                    sliced == streamed,
                    "{len} bytes ({parallel}): the paths differ"
                );
                let opened = decrypt_some(&key, &sliced, parallel).await;
                assert!(
                    opened.ok() == Some(plaintext.clone()),
                    "{len} bytes ({parallel})"
                );
            }
        }
    }

    /// A bad frame deep in a long message: decryption fails, and what was written before is
    /// the plaintext of whole frames before the bad one (nothing unauthenticated, nothing
    /// out of order), with and without the helper. Likewise a message cut short.
    #[tokio::test]
    async fn a_bad_or_missing_frame_releases_only_authenticated_frames_before_it() {
        let key = DataKey::random().unwrap();
        let f = FRAME as usize;
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        let plaintext: Vec<u8> = (0..2 * INFLIGHT_BYTES + 3)
            .map(|i| (i % 253) as u8)
            .collect();
        let mut message = Vec::new();
        encrypt_slice(materials(suite, &key), FRAME, &plaintext, &mut message).unwrap();
        // The body starts after the header; regular frames are seq, IV, content, tag.
        let mut rest = &message[..];
        let limits = ReadLimits {
            max_edks: None,
            max_frame_len: FRAME,
        };
        read_header(&mut rest, limits).await.unwrap();
        let body = message.len() - rest.len();
        let frame_bytes = 4 + IV_LEN + f + TAG_LEN;
        let bad = 300;
        let mut tampered = message.clone();
        tampered[body + (bad - 1) * frame_bytes + 4 + IV_LEN + 10] ^= 1;
        let cut = &message[..body + bad * frame_bytes - 5];
        for parallel in [true, false] {
            for (what, input) in [("tampered", &tampered[..]), ("cut", cut)] {
                let Err((e, written)) = decrypt_some(&key, input, parallel).await else {
                    panic!("{what} ({parallel}): decrypted");
                };
                assert!(
                    matches!(e, Error::InvalidCiphertext),
                    "{what} ({parallel}): {e:?}"
                );
                assert!(
                    written.len() % f == 0,
                    "{what} ({parallel}): a partial frame"
                );
                assert!(
                    written.len() < bad * f,
                    "{what} ({parallel}): the bad frame"
                );
                assert!(written == plaintext[..written.len()], "{what} ({parallel})");
            }
        }
        assert_eq!(decrypt_all(&key, &message).await, plaintext);
    }

    /// Caught by `scripts/bench-envelope.sh`: a 1 GiB file (a multiple of 64 KiB) ended in a
    /// full-length final frame, which the Python ESDK refuses ("Invalid final frame
    /// length: 65536 >= 65536"). The last full frame must be regular, then an empty final.
    #[tokio::test]
    async fn a_multiple_of_the_frame_length_ends_with_an_empty_final_frame() {
        let key = DataKey::random().unwrap();
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        let f = FRAME as usize;
        for len in [f, 2 * f] {
            let plaintext = vec![1u8; len];
            let mut sliced = Vec::new();
            encrypt_slice(materials(suite, &key), FRAME, &plaintext, &mut sliced).unwrap();
            let mut streamed = Vec::new();
            encrypt(
                materials(suite, &key),
                FRAME,
                &mut &plaintext[..],
                &mut streamed,
                None,
            )
            .await
            .unwrap();
            for message in [&sliced, &streamed] {
                // The last 40 bytes: FFFFFFFF, sequence number, IV, length 0, tag.
                let end = &message[message.len() - 40..];
                assert_eq!(end[..4], FINAL_MARKER, "{len} bytes");
                let frames = (len / f + 1) as u32;
                assert_eq!(end[4..8], frames.to_be_bytes(), "{len} bytes");
                assert_eq!(end[20..24], [0, 0, 0, 0], "{len} bytes");
                assert_eq!(decrypt_all(&key, message).await, plaintext);
            }
        }
    }

    #[tokio::test]
    async fn signed_messages_from_both_paths_decrypt() {
        let key = DataKey::random().unwrap();
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384;
        for len in [0, 5000, 2 * FRAME as usize] {
            let plaintext = vec![0x42u8; len];
            let mut sliced = Vec::new();
            encrypt_slice(materials(suite, &key), FRAME, &plaintext, &mut sliced).unwrap();
            let mut streamed = Vec::new();
            encrypt(
                materials(suite, &key),
                FRAME,
                &mut &plaintext[..],
                &mut streamed,
                None,
            )
            .await
            .unwrap();
            assert_eq!(decrypt_all(&key, &sliced).await, plaintext, "{len} sliced");
            assert_eq!(
                decrypt_all(&key, &streamed).await,
                plaintext,
                "{len} streamed"
            );
        }
    }
}
