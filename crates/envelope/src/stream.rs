//! Framed bodies over `AsyncRead`/`AsyncWrite` in constant memory: two batches of frames
//! (about 1 MiB each, at least one frame) on encryption, one frame buffer on decryption.
//!
//! Release rules (`client-apis/decrypt.md`): every frame's plaintext is written only after
//! its GCM tag verified. For unsigned suites that is the whole rule. For signed suites the
//! regular frames are released the same way, but the final frame's plaintext is held until
//! the footer signature verified; until `decrypt` returns `Ok`, the output written so far is
//! authenticated (GCM, keyed by the data key) but not yet *signed*. See docs/envelope.md.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use zeroize::{Zeroize as _, Zeroizing};

use crate::Error;
use crate::context::EncryptionContext;
use crate::context::PUBLIC_KEY_KEY;
use crate::crypto::{DataKey, MessageKey, Signer, Verifier, body_aad, frame_iv};
use crate::header::{EncryptedDataKey, Header, RawHeader, read_exact};
use crate::suite::{AlgorithmSuite, IV_LEN, TAG_LEN};

const FINAL_MARKER: [u8; 4] = [0xFF; 4];

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

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<usize, Error> {
    let mut n = 0;
    while n < buf.len() {
        let got = r.read(&mut buf[n..]).await.map_err(Error::Io)?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
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
    encrypt_with_id(m, frame_len, r, w, limit, id).await
}

async fn encrypt_with_id<R, W>(
    m: EncryptionMaterials,
    frame_len: u32,
    r: &mut R,
    w: &mut W,
    limit: Option<u64>,
    message_id: Vec<u8>,
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

    // Frames are read into a batch, sealed, and written out in order. While one batch is
    // sealed on the blocking pool, the next is read and the previous one written: the
    // copies that the reader/writer interface costs overlap the cipher instead of adding
    // to it. A short batch, a message that is one batch, and everything outside a Tokio
    // runtime are sealed inline (no hand-off). A short read ends the input and makes the
    // final frame — empty when the input is a multiple of the frame length (the ESDKs
    // write that, and the Python ESDK refuses a final frame as long as the frame length).
    let key = std::sync::Arc::new(key);
    let message_id: std::sync::Arc<[u8]> = message_id.into();
    let runtime = tokio::runtime::Handle::try_current().ok();
    let mut input = Input {
        next_seq: 1,
        total: 0,
        limit,
        done: false,
    };
    let mut spare: Option<Batch> = None;
    let mut sealing: Option<tokio::task::JoinHandle<Result<Batch, Error>>> = None;
    while !input.done {
        let mut batch = spare.take().unwrap_or_else(|| Batch::new(frame_len));
        input.fill(r, &mut batch).await?;
        let previous = match sealing.take() {
            Some(handle) => Some(handle.await.map_err(|_| Error::Crypto)??),
            None => None,
        };
        // Inline when a hand-off costs more than it overlaps: a short batch (the last one,
        // or all of a small message), or a whole message in one batch (nothing to overlap).
        let whole_message = input.done && previous.is_none();
        let inline = match &runtime {
            Some(rt) if batch.content() >= PIPELINE_MIN && !whole_message => {
                let (key, id) = (key.clone(), message_id.clone());
                sealing = Some(rt.spawn_blocking(move || {
                    let mut batch = batch;
                    batch.seal(&key, &id).map(|()| batch)
                }));
                None
            }
            _ => {
                batch.seal(&key, &message_id)?;
                Some(batch)
            }
        };
        // In order: the batch handed off before, then this one if it was sealed here (a
        // short last batch).
        for sealed in [previous, inline].into_iter().flatten() {
            sealed.write(&mut out).await?;
            spare = Some(sealed);
        }
    }
    if let Some(handle) = sealing.take() {
        handle
            .await
            .map_err(|_| Error::Crypto)??
            .write(&mut out)
            .await?;
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

/// Plaintext per batch of frames (at least one frame).
const BATCH_BYTES: usize = 1 << 20;

/// A batch with less plaintext than this is sealed inline rather than handed off.
const PIPELINE_MIN: usize = 256 << 10;

/// Where the input stands: the next frame's sequence number, the bytes read so far.
struct Input {
    next_seq: u32,
    total: u64,
    limit: Option<u64>,
    done: bool,
}

impl Input {
    /// Reads frames into `batch` until it is full or the input ends (the final frame).
    async fn fill<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        batch: &mut Batch,
    ) -> Result<(), Error> {
        batch.frames.clear();
        let fl = batch.frame_len;
        for slot in 0..batch.slots() {
            let at = slot * batch.stride() + HEAD_ROOM;
            batch.touched = batch.touched.max(at + fl + TAG_LEN);
            let n = read_full(r, &mut batch.buf[at..at + fl]).await?;
            self.total += n as u64;
            if let Some(limit) = self.limit
                && self.total > limit
            {
                return Err(Error::InvalidInput(
                    "more plaintext than the declared length",
                ));
            }
            let seq = self.next_seq;
            let is_final = n < fl;
            batch.frames.push(Frame {
                seq,
                len: n,
                is_final,
                head: 0,
            });
            if is_final {
                self.done = true;
                break;
            }
            self.next_seq = next_seq(seq)?;
        }
        Ok(())
    }
}

/// One frame of a batch: its sequence number, content length, and where its header starts
/// in its slot once sealed.
struct Frame {
    seq: u32,
    len: usize,
    is_final: bool,
    head: usize,
}

/// Frames in one buffer, each in a slot laid out as `[head room | content | tag]`: the
/// plaintext is read straight into the content, sealed in place, and the frame's header
/// written just before it, so each frame leaves in one write.
///
/// The buffer comes zeroed from the allocator (for a batch this size, untouched pages
/// that cost nothing until used) and only the part that held plaintext is zeroized when
/// the batch is dropped: a short message touches one slot, not the whole batch.
struct Batch {
    buf: Vec<u8>,
    /// How much of `buf` has held data (zeroized on drop).
    touched: usize,
    frame_len: usize,
    frames: Vec<Frame>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.buf[..self.touched].zeroize();
    }
}

impl Batch {
    fn new(frame_len: u32) -> Self {
        let frame_len = frame_len as usize;
        let slots = (BATCH_BYTES / frame_len).max(1);
        Self {
            buf: vec![0u8; slots * (HEAD_ROOM + frame_len + TAG_LEN)],
            touched: 0,
            frame_len,
            frames: Vec::with_capacity(slots),
        }
    }

    /// The plaintext bytes in the batch.
    fn content(&self) -> usize {
        self.frames.iter().map(|f| f.len).sum()
    }

    fn stride(&self) -> usize {
        HEAD_ROOM + self.frame_len + TAG_LEN
    }

    fn slots(&self) -> usize {
        self.buf.len() / self.stride()
    }

    fn seal(&mut self, key: &MessageKey, message_id: &[u8]) -> Result<(), Error> {
        let stride = self.stride();
        for (frame, slot) in self
            .frames
            .iter_mut()
            .zip(self.buf.chunks_exact_mut(stride))
        {
            let iv = frame_iv(frame.seq);
            let aad = body_aad(message_id, frame.is_final, frame.seq, frame.len as u64);
            let (head, rest) = slot.split_at_mut(HEAD_ROOM);
            let (content, tail) = rest.split_at_mut(frame.len);
            let tag = key.seal(iv, aad.as_ref(), content)?;
            tail[..TAG_LEN].copy_from_slice(&tag);
            frame.head = frame_head(head, frame.is_final, frame.seq, iv, frame.len);
        }
        Ok(())
    }

    async fn write<W: AsyncWrite + Unpin>(&self, out: &mut Out<'_, W>) -> Result<(), Error> {
        let stride = self.stride();
        for (frame, slot) in self.frames.iter().zip(self.buf.chunks_exact(stride)) {
            out.put(&slot[frame.head..HEAD_ROOM + frame.len + TAG_LEN])
                .await?;
        }
        Ok(())
    }
}

/// Room before a frame's content for the longest frame header (the final frame's: marker,
/// sequence number, IV, content length).
const HEAD_ROOM: usize = 4 + 4 + IV_LEN + 4;

/// Writes frame `seq`'s header right-aligned into `head` (`HEAD_ROOM` bytes) and returns
/// where it starts: regular frames are `seq || iv`, the final frame
/// `0xFFFFFFFF || seq || iv || len`.
fn frame_head(head: &mut [u8], is_final: bool, seq: u32, iv: [u8; IV_LEN], len: usize) -> usize {
    if is_final {
        head[..4].copy_from_slice(&FINAL_MARKER);
        head[4..8].copy_from_slice(&seq.to_be_bytes());
        head[8..8 + IV_LEN].copy_from_slice(&iv);
        // `len` is at most the frame length, itself a u32.
        head[HEAD_ROOM - 4..].copy_from_slice(&(len as u32).to_be_bytes());
        0
    } else {
        head[HEAD_ROOM - 16..HEAD_ROOM - 12].copy_from_slice(&seq.to_be_bytes());
        head[HEAD_ROOM - 12..].copy_from_slice(&iv);
        HEAD_ROOM - 16
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
    let h = &raw.header;
    let key = MessageKey::derive(h.suite, &data_key, &h.message_id)?;
    drop(data_key);
    if let Some(stored) = &h.commitment {
        key.check_commitment(stored)?;
    }
    let mut tag = raw.tag;
    key.open(raw.iv, &raw.body, &mut tag)?;

    let mut verifier = match h.suite.is_signed() {
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

    let mut w = BufWriter::with_capacity(64 * 1024, w);
    let fl = h.frame_len as usize;
    // One buffer [IV | content | tag]: a regular frame's IV, content and tag arrive in one
    // read; the final frame's IV comes with its sequence number and length.
    let mut buf = Zeroizing::new(vec![0u8; IV_LEN + fl + TAG_LEN]);
    let mut expected: u32 = 1;
    let mut total: u64 = 0;
    loop {
        let mut first = [0u8; 4];
        read_exact(r, &mut first).await?;
        feed(&mut verifier, &first);
        let is_final = first == FINAL_MARKER;
        let (seq, len) = if is_final {
            let mut f = [0u8; 4 + IV_LEN + 4];
            read_exact(r, &mut f).await?;
            feed(&mut verifier, &f);
            buf[..IV_LEN].copy_from_slice(&f[4..4 + IV_LEN]);
            let [s0, s1, s2, s3, .., l0, l1, l2, l3] = f;
            (
                u32::from_be_bytes([s0, s1, s2, s3]),
                u32::from_be_bytes([l0, l1, l2, l3]) as usize,
            )
        } else {
            (u32::from_be_bytes(first), fl)
        };
        if seq != expected || len > fl {
            return Err(Error::InvalidCiphertext);
        }
        // A regular frame's IV, content and tag are contiguous in the message and in `buf`;
        // the final frame's IV came with its header.
        let from = if is_final { IV_LEN } else { 0 };
        let to = IV_LEN + len + TAG_LEN;
        read_exact(r, &mut buf[from..to]).await?;
        feed(&mut verifier, &buf[from..to]);
        let (iv, rest) = buf.split_at_mut(IV_LEN);
        let iv: [u8; IV_LEN] = (&*iv).try_into().map_err(|_| Error::InvalidCiphertext)?;
        let frame = &mut rest[..len + TAG_LEN];
        let aad = body_aad(&h.message_id, is_final, seq, len as u64);
        let n = key.open(iv, aad.as_ref(), frame)?;
        total += n as u64;
        if is_final {
            if let Some(v) = verifier.take() {
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
            w.write_all(&buf[IV_LEN..IV_LEN + n])
                .await
                .map_err(Error::Io)?;
            break;
        }
        w.write_all(&buf[IV_LEN..IV_LEN + n])
            .await
            .map_err(Error::Io)?;
        expected = expected.checked_add(1).ok_or(Error::InvalidCiphertext)?;
    }
    w.flush().await.map_err(Error::Io)?;
    Ok(total)
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
        let mut r = message;
        let limits = ReadLimits {
            max_edks: None,
            max_frame_len: FRAME,
        };
        let raw = read_header(&mut r, limits).await.unwrap();
        let mut out = Vec::new();
        decrypt(&raw, key.duplicate(), &mut r, &mut out)
            .await
            .unwrap();
        out
    }

    /// The in-memory path must write exactly the stream's bytes (same id, unsigned suite;
    /// signatures are randomized, so signed messages are compared by decrypting them).
    #[tokio::test]
    async fn slice_and_stream_paths_write_the_same_message() {
        let key = DataKey::random().unwrap();
        let f = FRAME as usize;
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        // Around frames, and around batches (sealed inline below PIPELINE_MIN, handed off
        // above it, one batch in flight while the next is read).
        let batch = (BATCH_BYTES / f).max(1) * f;
        for len in [
            0,
            1,
            f - 1,
            f,
            f + 1,
            3 * f,
            3 * f + 17,
            PIPELINE_MIN - 1,
            PIPELINE_MIN + f,
            batch,
            batch + 1,
            2 * batch + f / 2,
            5 * batch,
        ] {
            let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let id = vec![9u8; 32];
            // A reused buffer holding a longer, different message: overwritten and cut.
            let mut sliced = vec![0xEEu8; 4 * f + 4096];
            let mut streamed = Vec::new();
            encrypt_slice_with_id(
                materials(suite, &key),
                FRAME,
                &plaintext,
                id.clone(),
                &mut sliced,
            )
            .unwrap();
            let n = encrypt_with_id(
                materials(suite, &key),
                FRAME,
                &mut &plaintext[..],
                &mut streamed,
                None,
                id,
            )
            .await
            .unwrap();
            assert_eq!(n, len as u64);
            assert!(sliced == streamed, "{len} bytes: the two paths differ");
            assert_eq!(decrypt_all(&key, &sliced).await, plaintext, "{len} bytes");
        }
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
