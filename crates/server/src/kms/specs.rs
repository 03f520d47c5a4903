//! Between AWS's enums (key specs, usages, algorithms) and the crypto crate's, and AWS's
//! rules for which go together.

use keyhold_crypto::asymmetric::{
    self as crypto, KeyUse, MacAlgorithm, OaepAlgorithm, SigningAlgorithm,
};
use keyhold_proto::kms::{
    DataKeyPairSpec, EncryptionAlgorithmSpec, KeySpec, KeyUsageType, MacAlgorithmSpec,
    SigningAlgorithmSpec,
};

use super::error::KmsError;

/// The crypto crate's spec of a non-symmetric key spec; `None` for `SYMMETRIC_DEFAULT` and
/// `SM2` (which no region Keyhold serves offers).
pub fn crypto_spec(spec: KeySpec) -> Option<crypto::KeySpec> {
    crypto::KeySpec::from_name(spec.as_str())
}

/// The crypto crate's use of a usage (`None` for a symmetric encryption key's).
pub fn crypto_use(spec: KeySpec, usage: KeyUsageType) -> Option<KeyUse> {
    if spec == KeySpec::SymmetricDefault {
        return None;
    }
    Some(match usage {
        KeyUsageType::EncryptDecrypt => KeyUse::EncryptDecrypt,
        KeyUsageType::SignVerify => KeyUse::SignVerify,
        KeyUsageType::KeyAgreement => KeyUse::KeyAgreement,
        KeyUsageType::EncapsulateDecapsulate => KeyUse::EncapsulateDecapsulate,
        KeyUsageType::GenerateVerifyMac => KeyUse::GenerateVerifyMac,
    })
}

/// The crypto spec and use of a stored key whose spec is not `SYMMETRIC_DEFAULT` (`None`
/// for a symmetric encryption key); a spec or usage that does not parse is a corrupt record.
pub fn stored_private_spec(
    record: &keyhold_store::KeyRecord,
) -> Result<Option<(crypto::KeySpec, KeyUse)>, KmsError> {
    let key_id = record.key_id.as_str();
    let spec =
        KeySpec::parse(&record.key_spec).ok_or_else(|| super::corrupt("key spec", key_id))?;
    let Some(crypto) = crypto_spec(spec) else {
        return Ok(None);
    };
    let usage = KeyUsageType::parse(&record.key_usage)
        .and_then(|u| crypto_use(spec, u))
        .ok_or_else(|| super::corrupt("key usage", key_id))?;
    Ok(Some((crypto, usage)))
}

/// `CreateKey`'s `KeySpec` and `KeyUsage` checks, in AWS's order: a spec the region does not
/// offer (`SM2` outside China) is not in the enum at all; a spec other than
/// `SYMMETRIC_DEFAULT` needs an explicit usage; the usage must be one AWS allows for it.
pub fn check_create(spec: KeySpec, usage: Option<KeyUsageType>) -> Result<KeyUsageType, KmsError> {
    if spec == KeySpec::Sm2 {
        return Err(region_enum("keySpec", "SM2", KeySpec::VALUES));
    }
    let Some(usage) = usage else {
        return match spec {
            KeySpec::SymmetricDefault => Ok(KeyUsageType::EncryptDecrypt),
            _ => Err(KmsError::KeyUsageRequired),
        };
    };
    let allowed = match crypto_spec(spec) {
        None => usage == KeyUsageType::EncryptDecrypt,
        Some(s) => crypto_use(spec, usage).is_some_and(|u| s.uses().contains(&u)),
    };
    if !allowed {
        return Err(KmsError::IncompatibleUsage {
            spec: spec.as_str(),
            usage: usage.as_str(),
        });
    }
    Ok(usage)
}

/// The crypto crate's spec of a data key pair spec (`SM2` is refused like `CreateKey`'s).
pub fn data_key_pair_spec(spec: DataKeyPairSpec) -> Result<crypto::KeySpec, KmsError> {
    if spec == DataKeyPairSpec::Sm2 {
        return Err(region_enum("keyPairSpec", "SM2", DataKeyPairSpec::VALUES));
    }
    crypto::KeySpec::from_name(spec.as_str()).ok_or(KmsError::Internal)
}

/// The `ValidationException` AWS answers for a value its regional model leaves out of an
/// enum: every value of the set but the China-only `SM2` ones.
fn region_enum(member: &'static str, value: &'static str, values: &[&str]) -> KmsError {
    let set: Vec<&str> = values
        .iter()
        .copied()
        .filter(|v| !v.starts_with("SM2"))
        .collect();
    KmsError::NotOfferedInRegion {
        member,
        value,
        set: set.join(", "),
    }
}

pub fn signing_from_wire(algorithm: SigningAlgorithmSpec) -> Option<SigningAlgorithm> {
    use SigningAlgorithm as A;
    use SigningAlgorithmSpec as W;
    Some(match algorithm {
        W::RsassaPssSha256 => A::RsassaPssSha256,
        W::RsassaPssSha384 => A::RsassaPssSha384,
        W::RsassaPssSha512 => A::RsassaPssSha512,
        W::RsassaPkcs1V15Sha256 => A::RsassaPkcs1V15Sha256,
        W::RsassaPkcs1V15Sha384 => A::RsassaPkcs1V15Sha384,
        W::RsassaPkcs1V15Sha512 => A::RsassaPkcs1V15Sha512,
        W::EcdsaSha256 => A::EcdsaSha256,
        W::EcdsaSha384 => A::EcdsaSha384,
        W::EcdsaSha512 => A::EcdsaSha512,
        W::Ed25519Sha512 => A::Ed25519Sha512,
        W::Ed25519PhSha512 => A::Ed25519PhSha512,
        W::MlDsaShake256 => A::MlDsaShake256,
        W::Sm2dsa => return None,
    })
}

pub fn signing_to_wire(algorithm: SigningAlgorithm) -> SigningAlgorithmSpec {
    use SigningAlgorithm as A;
    use SigningAlgorithmSpec as W;
    match algorithm {
        A::RsassaPssSha256 => W::RsassaPssSha256,
        A::RsassaPssSha384 => W::RsassaPssSha384,
        A::RsassaPssSha512 => W::RsassaPssSha512,
        A::RsassaPkcs1V15Sha256 => W::RsassaPkcs1V15Sha256,
        A::RsassaPkcs1V15Sha384 => W::RsassaPkcs1V15Sha384,
        A::RsassaPkcs1V15Sha512 => W::RsassaPkcs1V15Sha512,
        A::EcdsaSha256 => W::EcdsaSha256,
        A::EcdsaSha384 => W::EcdsaSha384,
        A::EcdsaSha512 => W::EcdsaSha512,
        A::Ed25519Sha512 => W::Ed25519Sha512,
        A::Ed25519PhSha512 => W::Ed25519PhSha512,
        A::MlDsaShake256 => W::MlDsaShake256,
    }
}

pub fn mac_from_wire(algorithm: MacAlgorithmSpec) -> MacAlgorithm {
    match algorithm {
        MacAlgorithmSpec::HmacSha224 => MacAlgorithm::HmacSha224,
        MacAlgorithmSpec::HmacSha256 => MacAlgorithm::HmacSha256,
        MacAlgorithmSpec::HmacSha384 => MacAlgorithm::HmacSha384,
        MacAlgorithmSpec::HmacSha512 => MacAlgorithm::HmacSha512,
    }
}

pub fn mac_to_wire(algorithm: MacAlgorithm) -> MacAlgorithmSpec {
    match algorithm {
        MacAlgorithm::HmacSha224 => MacAlgorithmSpec::HmacSha224,
        MacAlgorithm::HmacSha256 => MacAlgorithmSpec::HmacSha256,
        MacAlgorithm::HmacSha384 => MacAlgorithmSpec::HmacSha384,
        MacAlgorithm::HmacSha512 => MacAlgorithmSpec::HmacSha512,
    }
}

/// The RSAES-OAEP variant of an encryption algorithm (`None` for the others).
pub fn oaep(algorithm: EncryptionAlgorithmSpec) -> Option<OaepAlgorithm> {
    match algorithm {
        EncryptionAlgorithmSpec::RsaesOaepSha1 => Some(OaepAlgorithm::Sha1),
        EncryptionAlgorithmSpec::RsaesOaepSha256 => Some(OaepAlgorithm::Sha256),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_key_pairs_follow_aws() {
        use KeyUsageType as U;
        let ok = |spec, usage| check_create(spec, Some(usage)).is_ok();
        assert!(ok(KeySpec::SymmetricDefault, U::EncryptDecrypt));
        assert!(!ok(KeySpec::SymmetricDefault, U::SignVerify));
        assert!(ok(KeySpec::Rsa2048, U::EncryptDecrypt));
        assert!(ok(KeySpec::Rsa4096, U::SignVerify));
        assert!(!ok(KeySpec::Rsa2048, U::KeyAgreement));
        assert!(ok(KeySpec::EccNistP256, U::KeyAgreement));
        assert!(!ok(KeySpec::EccNistP256, U::EncryptDecrypt));
        assert!(!ok(KeySpec::EccSecgP256k1, U::KeyAgreement));
        assert!(ok(KeySpec::EccNistEdwards25519, U::SignVerify));
        assert!(ok(KeySpec::MlDsa65, U::SignVerify));
        assert!(ok(KeySpec::MlKem768, U::EncapsulateDecapsulate));
        assert!(!ok(KeySpec::MlKem768, U::EncryptDecrypt));
        assert!(ok(KeySpec::Hmac224, U::GenerateVerifyMac));
        assert!(!ok(KeySpec::Hmac224, U::SignVerify));
        assert_eq!(
            check_create(KeySpec::SymmetricDefault, None),
            Ok(U::EncryptDecrypt)
        );
        assert_eq!(
            check_create(KeySpec::Rsa2048, None),
            Err(KmsError::KeyUsageRequired)
        );
        let Err(KmsError::NotOfferedInRegion { member, value, set }) =
            check_create(KeySpec::Sm2, Some(U::SignVerify))
        else {
            panic!("SM2 is not offered");
        };
        assert_eq!((member, value), ("keySpec", "SM2"));
        assert!(set.starts_with("RSA_2048, ") && !set.contains("SM2"));
    }

    #[test]
    fn every_crypto_spec_has_a_wire_spec() {
        for spec in crypto::KeySpec::ALL {
            let wire = KeySpec::parse(spec.name()).unwrap();
            assert_eq!(crypto_spec(wire), Some(*spec));
            for a in spec.signing_algorithms() {
                assert_eq!(signing_from_wire(signing_to_wire(*a)), Some(*a));
            }
        }
    }
}
