//! The message header (`data-format/message-header.md`): writing version 2, reading 1 and 2.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::Error;
use crate::context::EncryptionContext;
use crate::suite::{AlgorithmSuite, IV_LEN, KEY_LEN, TAG_LEN};

/// One encrypted data key entry: who can unwrap it and the wrapped key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EncryptedDataKey {
    /// `aws-kms` for KMS-wrapped keys, `keyhold-bucket-key` for bucket keys.
    pub provider_id: String,
    /// For `aws-kms`: the key ARN, UTF-8.
    pub provider_info: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

const TYPE_CUSTOMER_AED: u8 = 0x80;
const CONTENT_FRAMED: u8 = 0x02;
const CONTENT_NON_FRAMED: u8 = 0x01;

/// A parsed or to-be-written header body.
#[derive(Clone, Debug)]
pub struct Header {
    pub suite: AlgorithmSuite,
    pub message_id: Vec<u8>,
    pub context: EncryptionContext,
    pub edks: Vec<EncryptedDataKey>,
    pub frame_len: u32,
    /// Version 2: the commit key from the algorithm suite data.
    pub(crate) commitment: Option<[u8; KEY_LEN]>,
}

impl Header {
    /// Serializes a version-2 header body.
    pub(crate) fn serialize_v2(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(256);
        out.push(2);
        out.extend_from_slice(&self.suite.id().to_be_bytes());
        out.extend_from_slice(&self.message_id);
        let ec = self.context.serialize()?;
        out.extend_from_slice(&u16_len(ec.len())?.to_be_bytes());
        out.extend_from_slice(&ec);
        out.extend_from_slice(&u16_len(self.edks.len())?.to_be_bytes());
        for edk in &self.edks {
            for part in [
                edk.provider_id.as_bytes(),
                &edk.provider_info,
                &edk.ciphertext,
            ] {
                out.extend_from_slice(&u16_len(part.len())?.to_be_bytes());
                out.extend_from_slice(part);
            }
        }
        out.push(CONTENT_FRAMED);
        out.extend_from_slice(&self.frame_len.to_be_bytes());
        let commitment = self.commitment.ok_or(Error::Crypto)?;
        out.extend_from_slice(&commitment);
        Ok(out)
    }
}

fn u16_len(n: usize) -> Result<u16, Error> {
    u16::try_from(n).map_err(|_| Error::InvalidInput("a header field is longer than 65535 bytes"))
}

/// Limits applied while reading an untrusted header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadLimits {
    pub max_edks: Option<u16>,
    pub max_frame_len: u32,
}

/// What was read: the header, its raw body bytes (the AAD of the header tag and the start
/// of the signed bytes), the header IV (zero in version 2) and the tag.
pub(crate) struct RawHeader {
    pub header: Header,
    pub body: Vec<u8>,
    pub iv: [u8; IV_LEN],
    pub tag: [u8; TAG_LEN],
}

struct Recorder<'a, R> {
    reader: &'a mut R,
    raw: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Recorder<'_, R> {
    async fn bytes(&mut self, n: usize) -> Result<&[u8], Error> {
        let start = self.raw.len();
        self.raw.resize(start + n, 0);
        read_exact(self.reader, &mut self.raw[start..]).await?;
        Ok(&self.raw[start..])
    }

    async fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.bytes(1).await?[0])
    }

    async fn u16(&mut self) -> Result<u16, Error> {
        let b = self.bytes(2).await?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    async fn u32(&mut self) -> Result<u32, Error> {
        let b = self.bytes(4).await?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    async fn vec16(&mut self) -> Result<Vec<u8>, Error> {
        let n = usize::from(self.u16().await?);
        Ok(self.bytes(n).await?.to_vec())
    }
}

/// `read_exact` where running out of input means a truncated (invalid) message.
pub(crate) async fn read_exact<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
) -> Result<(), Error> {
    match r.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::InvalidCiphertext),
        Err(e) => Err(Error::Io(e)),
    }
}

pub(crate) async fn read_header<R: AsyncRead + Unpin>(
    reader: &mut R,
    limits: ReadLimits,
) -> Result<RawHeader, Error> {
    let mut r = Recorder {
        reader,
        raw: Vec::with_capacity(512),
    };
    let version = r.u8().await?;
    let suite = match version {
        1 => {
            if r.u8().await? != TYPE_CUSTOMER_AED {
                return Err(Error::InvalidCiphertext);
            }
            let suite = AlgorithmSuite::from_id(r.u16().await?)?;
            if suite.message_version() != 1 {
                return Err(Error::InvalidCiphertext);
            }
            suite
        }
        2 => {
            let suite = AlgorithmSuite::from_id(r.u16().await?)?;
            if suite.message_version() != 2 {
                return Err(Error::InvalidCiphertext);
            }
            suite
        }
        _ => return Err(Error::InvalidCiphertext),
    };
    let message_id = r.bytes(suite.message_id_len()).await?.to_vec();
    let ec_bytes = r.vec16().await?;
    let context = EncryptionContext::deserialize(&ec_bytes)?;
    let count = r.u16().await?;
    if count == 0 {
        return Err(Error::InvalidCiphertext);
    }
    if let Some(max) = limits.max_edks
        && count > max
    {
        return Err(Error::TooManyEncryptedDataKeys { found: count, max });
    }
    let mut edks = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let provider_id =
            String::from_utf8(r.vec16().await?).map_err(|_| Error::InvalidCiphertext)?;
        let provider_info = r.vec16().await?;
        let ciphertext = r.vec16().await?;
        edks.push(EncryptedDataKey {
            provider_id,
            provider_info,
            ciphertext,
        });
    }
    match r.u8().await? {
        CONTENT_FRAMED => {}
        CONTENT_NON_FRAMED => return Err(Error::Unsupported("non-framed message bodies")),
        _ => return Err(Error::InvalidCiphertext),
    }
    let mut commitment = None;
    let frame_len;
    if version == 1 {
        if r.bytes(4).await? != [0, 0, 0, 0] {
            return Err(Error::InvalidCiphertext);
        }
        if usize::from(r.u8().await?) != IV_LEN {
            return Err(Error::InvalidCiphertext);
        }
        frame_len = r.u32().await?;
    } else {
        frame_len = r.u32().await?;
        let data = r.bytes(KEY_LEN).await?;
        let mut c = [0u8; KEY_LEN];
        c.copy_from_slice(data);
        commitment = Some(c);
    }
    if frame_len == 0 {
        return Err(Error::InvalidCiphertext);
    }
    if frame_len > limits.max_frame_len {
        return Err(Error::Unsupported(
            "frame length above the configured maximum",
        ));
    }
    let body = std::mem::take(&mut r.raw);
    let mut iv = [0u8; IV_LEN];
    if version == 1 {
        read_exact(reader_of(&mut r), &mut iv).await?;
    }
    let mut tag = [0u8; TAG_LEN];
    read_exact(reader_of(&mut r), &mut tag).await?;
    Ok(RawHeader {
        header: Header {
            suite,
            message_id,
            context,
            edks,
            frame_len,
            commitment,
        },
        body,
        iv,
        tag,
    })
}

fn reader_of<'a, 'b, R>(r: &'a mut Recorder<'b, R>) -> &'a mut R {
    r.reader
}
