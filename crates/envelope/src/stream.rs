//! Framed bodies over `AsyncRead`/`AsyncWrite` in constant memory: two frame buffers on
//! encryption (one frame of read-ahead tells a regular frame from the final one), one on
//! decryption.
//!
//! Release rules (`client-apis/decrypt.md`): every frame's plaintext is written only after
//! its GCM tag verified. For unsigned suites that is the whole rule. For signed suites the
//! regular frames are released the same way, but the final frame's plaintext is held until
//! the footer signature verified; until `decrypt` returns `Ok`, the output written so far is
//! authenticated (GCM, keyed by the data key) but not yet *signed*. See docs/envelope.md.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use zeroize::Zeroizing;

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
    let suite = m.suite;
    if !suite.is_committing() {
        return Err(Error::Unsupported("encryption with a version-1 suite"));
    }
    let mut message_id = vec![0u8; suite.message_id_len()];
    aws_lc_rs::rand::fill(&mut message_id).map_err(|_| Error::Crypto)?;
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
    let body = header.serialize_v2()?;
    let header_tag = key.seal([0u8; IV_LEN], &body, &mut [])?;
    let mut out = Out {
        w: BufWriter::with_capacity(64 * 1024, w),
        signer: m.signer,
    };
    out.put(&body).await?;
    out.put(&header_tag).await?;

    let fl = frame_len as usize;
    let mut cur = Zeroizing::new(vec![0u8; fl]);
    let mut next = Zeroizing::new(vec![0u8; fl]);
    let mut n = read_full(r, &mut cur).await?;
    let mut seq: u32 = 1;
    let mut total: u64 = 0;
    loop {
        let (is_final, ahead) = if n < fl {
            (true, 0)
        } else {
            let ahead = read_full(r, &mut next).await?;
            (ahead == 0, ahead)
        };
        total += n as u64;
        if let Some(limit) = limit
            && total > limit
        {
            return Err(Error::InvalidInput(
                "more plaintext than the declared length",
            ));
        }
        let iv = frame_iv(seq);
        let aad = body_aad(&message_id, is_final, seq, n as u64);
        let tag = key.seal(iv, &aad, &mut cur[..n])?;
        if is_final {
            out.put(&FINAL_MARKER).await?;
            out.put(&seq.to_be_bytes()).await?;
            out.put(&iv).await?;
            out.put(&(n as u32).to_be_bytes()).await?;
            out.put(&cur[..n]).await?;
            out.put(&tag).await?;
            break;
        }
        out.put(&seq.to_be_bytes()).await?;
        out.put(&iv).await?;
        out.put(&cur[..n]).await?;
        out.put(&tag).await?;
        seq = seq
            .checked_add(1)
            .filter(|s| *s != u32::MAX)
            .ok_or(Error::InvalidInput(
                "message would exceed 2^32-1 frames; use a larger frame",
            ))?;
        std::mem::swap(&mut cur, &mut next);
        n = ahead;
    }
    if let Some(signer) = out.signer.take() {
        let sig = signer.finish()?;
        let len = u16::try_from(sig.len()).map_err(|_| Error::Crypto)?;
        out.put(&len.to_be_bytes()).await?;
        out.put(&sig).await?;
    }
    out.w.flush().await.map_err(Error::Io)?;
    Ok(total)
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
    let mut buf = Zeroizing::new(vec![0u8; fl + TAG_LEN]);
    let mut expected: u32 = 1;
    let mut total: u64 = 0;
    loop {
        let mut first = [0u8; 4];
        read_exact(r, &mut first).await?;
        feed(&mut verifier, &first);
        let is_final = first == FINAL_MARKER;
        let seq = if is_final {
            let mut s = [0u8; 4];
            read_exact(r, &mut s).await?;
            feed(&mut verifier, &s);
            u32::from_be_bytes(s)
        } else {
            u32::from_be_bytes(first)
        };
        if seq != expected {
            return Err(Error::InvalidCiphertext);
        }
        let mut iv = [0u8; IV_LEN];
        read_exact(r, &mut iv).await?;
        feed(&mut verifier, &iv);
        let len = if is_final {
            let mut l = [0u8; 4];
            read_exact(r, &mut l).await?;
            feed(&mut verifier, &l);
            let len = u32::from_be_bytes(l) as usize;
            if len > fl {
                return Err(Error::InvalidCiphertext);
            }
            len
        } else {
            fl
        };
        let frame = &mut buf[..len + TAG_LEN];
        read_exact(r, frame).await?;
        feed(&mut verifier, frame);
        let aad = body_aad(&h.message_id, is_final, seq, len as u64);
        let n = key.open(iv, &aad, frame)?;
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
            w.write_all(&buf[..n]).await.map_err(Error::Io)?;
            break;
        }
        w.write_all(&buf[..n]).await.map_err(Error::Io)?;
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
