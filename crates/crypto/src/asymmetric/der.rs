//! The few DER structures aws-lc-rs does not write for us: the SubjectPublicKeyInfo and the
//! PKCS#8 `PrivateKeyInfo` of ML-KEM keys (draft-ietf-lamps-kyber-certificates, now RFC 9935).
//! Encoding only; nothing here parses untrusted input.

/// `id-alg-ml-kem-512` .. `-1024`: 2.16.840.1.101.3.4.4.{1,2,3}, as DER OID contents.
pub(super) const ML_KEM_512_OID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x04, 0x01];
pub(super) const ML_KEM_768_OID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x04, 0x02];
pub(super) const ML_KEM_1024_OID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x04, 0x03];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OBJECT_IDENTIFIER: u8 = 0x06;

/// `SubjectPublicKeyInfo { AlgorithmIdentifier { oid }, BIT STRING key }` (no parameters).
pub(super) fn spki(oid: &[u8], public_key: &[u8]) -> Vec<u8> {
    let algorithm = tlv(SEQUENCE, &tlv(OBJECT_IDENTIFIER, oid));
    let mut bits = Vec::with_capacity(public_key.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(public_key);
    let mut body = algorithm;
    body.extend_from_slice(&tlv(BIT_STRING, &bits));
    tlv(SEQUENCE, &body)
}

/// `PrivateKeyInfo { version 0, AlgorithmIdentifier { oid }, OCTET STRING { expandedKey
/// OCTET STRING } }`: the `expandedKey` choice of the ML-KEM private key, which is the form
/// AWS-LC holds (it keeps no seed). The caller zeroizes the result.
pub(super) fn pkcs8_expanded(oid: &[u8], private_key: &[u8]) -> Vec<u8> {
    let mut body = tlv(INTEGER, &[0]);
    body.extend_from_slice(&tlv(SEQUENCE, &tlv(OBJECT_IDENTIFIER, oid)));
    let inner = zeroize::Zeroizing::new(tlv(OCTET_STRING, private_key));
    body.extend_from_slice(&tlv(OCTET_STRING, &inner));
    let out = tlv(SEQUENCE, &body);
    zeroize::Zeroize::zeroize(&mut body);
    out
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = &bytes[skip..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_lengths() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
        assert_eq!(&tlv(0x04, &[0u8; 128])[..3], &[0x04, 0x81, 0x80]);
    }

    #[test]
    fn spki_layout() {
        let der = spki(ML_KEM_768_OID, &[0xaa; 3]);
        assert_eq!(
            der,
            [
                &[0x30, 0x13, 0x30, 0x0b, 0x06, 0x09][..],
                ML_KEM_768_OID,
                &[0x03, 0x04, 0x00, 0xaa, 0xaa, 0xaa]
            ]
            .concat()
        );
    }
}
