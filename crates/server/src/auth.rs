//! Authentication: from a request's SigV4 signature to a [`Principal`] and its region.
//!
//! An access key is looked up, in order, among the static `[[credentials]]` of the config
//! file (each its account's root) and the credentials IAM and STS issued (a
//! [`CredentialSource`]: users' access keys, temporary session credentials). A known key
//! must sign correctly — in dev mode as in strict mode:
//!
//! - a long-term key must come without a session token; a temporary key with the token it
//!   was issued with (compared in constant time), before its expiry (`ExpiredToken`);
//! - inactive, deleted and expired-and-swept keys are refused as unknown keys are
//!   (`InvalidClientTokenId` / `UnrecognizedClientException`);
//! - `GetSessionToken` credentials cannot call IAM (AWS refuses them the same way).
//!
//! **Dev mode** keeps its permissive rule for keys it does not know: any such key is
//! accepted without a signature check, a 12-digit numeric access key id selects that account (anything
//! else the default account), and the caller is that account's root. **Strict mode**
//! refuses unknown keys.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use keyhold_crypto::digest::{constant_time_eq, sha256};
use keyhold_proto::route::Service;
use keyhold_proto::sigv4::{self, AuthError, ParsedAuth, SignedRequest, SigningKeyCache};
use zeroize::Zeroizing;

use crate::arn::{Scope, is_account_id, is_region_name, partition_of};
use crate::clock::Clock;
use crate::config::{Config, Mode};
use crate::context::{Principal, PrincipalKind};
use crate::iam::credentials::Secret;

/// The region of requests that carry none (unsigned dev-mode requests).
pub const DEFAULT_REGION: &str = "us-east-1";

/// Where authentication finds the credentials IAM and STS issued. Implementations answer
/// from memory: this is called on every request.
pub trait CredentialSource: Send + Sync {
    /// What `access_key_id` is; principals' ARNs in `partition`.
    fn lookup(&self, access_key_id: &str, partition: &str) -> Lookup;
}

/// What a [`CredentialSource`] knows of an access key id.
pub enum Lookup {
    /// Never issued: dev mode treats it permissively.
    Unknown,
    /// Issued but not usable: inactive, deleted, or its owner is gone.
    Refused,
    Found(Box<Issued>),
}

/// An issued credential: its secret and the principal it authenticates as.
pub struct Issued {
    pub secret: Arc<Secret>,
    pub principal: Principal,
    /// For temporary credentials, the session token they require.
    pub session: Option<SessionCheck>,
}

/// The session token a temporary credential requires, and until when.
pub struct SessionCheck {
    pub token_sha256: [u8; 32],
    pub expires_ms: i64,
}

pub struct Authenticator {
    mode: Mode,
    default_account: String,
    keys: HashMap<String, StaticKey>,
    issued: Arc<dyn CredentialSource>,
    clock: Clock,
    cache: SigningKeyCache,
}

struct StaticKey {
    secret: Zeroizing<Vec<u8>>,
    account: String,
}

/// The outcome of authentication.
#[derive(Debug)]
pub struct Authenticated {
    pub principal: Principal,
    pub scope: Scope,
}

impl Authenticator {
    /// `issued` resolves IAM's and STS's credentials; `clock` decides session expiry.
    pub fn new(config: &Config, issued: Arc<dyn CredentialSource>, clock: Clock) -> Self {
        let keys = config
            .credentials
            .iter()
            .map(|c| {
                let key = StaticKey {
                    secret: Zeroizing::new(c.secret_access_key.as_bytes().to_vec()),
                    account: c.account_id.clone(),
                };
                (c.access_key_id.clone(), key)
            })
            .collect();
        Self {
            mode: config.mode,
            default_account: config.account_id.clone(),
            keys,
            issued,
            clock,
            cache: SigningKeyCache::default(),
        }
    }

    pub fn authenticate(
        &self,
        request: &SignedRequest<'_>,
        service: Service,
        authorization: Option<&str>,
        now: SystemTime,
    ) -> Result<Authenticated, AuthError> {
        // Dev mode verifies only the keys Keyhold knows; its lookup is reused below.
        let known = match self.mode {
            Mode::Strict => None,
            Mode::Dev => {
                let Some((key, region)) = authorization.and_then(lenient_credential) else {
                    return Ok(self.dev(authorization));
                };
                if self.keys.contains_key(key) {
                    None
                } else {
                    match self.issued.lookup(key, partition_of(region)) {
                        Lookup::Unknown => return Ok(self.dev(authorization)),
                        lookup => Some(lookup),
                    }
                }
            }
        };
        self.verified(request, service, now, known)
    }

    fn dev(&self, authorization: Option<&str>) -> Authenticated {
        let (access_key, region) = authorization.and_then(lenient_credential).unzip();
        let account = access_key
            .filter(|k| is_account_id(k))
            .unwrap_or(&self.default_account)
            .to_owned();
        let region = region
            .filter(|r| is_region_name(r))
            .unwrap_or(DEFAULT_REGION);
        let scope = Scope::new(account, region);
        let principal = Principal::root(&scope, access_key.map(str::to_owned));
        Authenticated { principal, scope }
    }

    /// Verifies the signature with the key's secret (and its session token, if temporary).
    /// `known` is the issued credential's lookup when the caller already made it.
    fn verified(
        &self,
        request: &SignedRequest<'_>,
        service: Service,
        now: SystemTime,
        known: Option<Lookup>,
    ) -> Result<Authenticated, AuthError> {
        let auth = sigv4::parse(request, service.signing_name(), now)?;
        if let Some(key) = self.keys.get(auth.access_key_id()) {
            if auth.security_token().is_some() {
                // Static keys have no session; a token means credentials Keyhold did not issue.
                return Err(AuthError::UnrecognizedClient);
            }
            auth.verify(&key.secret, &self.cache)?;
            let scope = Scope::new(key.account.clone(), auth.region());
            let principal = Principal::root(&scope, Some(auth.access_key_id().to_owned()));
            return Ok(Authenticated { principal, scope });
        }
        let lookup = known.unwrap_or_else(|| {
            self.issued
                .lookup(auth.access_key_id(), partition_of(auth.region()))
        });
        let issued = match lookup {
            Lookup::Found(issued) => *issued,
            Lookup::Unknown | Lookup::Refused => return Err(AuthError::UnrecognizedClient),
        };
        self.check_session(&issued, &auth)?;
        let session_token_credentials = issued.principal.temporary_credentials
            && !matches!(issued.principal.kind, PrincipalKind::AssumedRole { .. });
        if session_token_credentials && service == Service::Iam {
            return Err(AuthError::UnrecognizedClient);
        }
        auth.verify(issued.secret.expose(), &self.cache)?;
        let scope = Scope::new(issued.principal.account.clone(), auth.region());
        Ok(Authenticated {
            principal: issued.principal,
            scope,
        })
    }

    /// A long-term key takes no session token; a temporary one requires its own, unexpired.
    fn check_session(&self, issued: &Issued, auth: &ParsedAuth<'_>) -> Result<(), AuthError> {
        match (&issued.session, auth.security_token()) {
            (None, None) => Ok(()),
            (None, Some(_)) | (Some(_), None) => Err(AuthError::UnrecognizedClient),
            (Some(session), Some(token)) => {
                if !constant_time_eq(&sha256(token.as_bytes()), &session.token_sha256) {
                    return Err(AuthError::UnrecognizedClient);
                }
                if self.clock.now().as_millis() >= session.expires_ms {
                    return Err(AuthError::ExpiredToken);
                }
                Ok(())
            }
        }
    }
}

/// Reads `Credential=AKID/DATE/REGION/...` from an Authorization header without checking
/// anything: for dev mode, and for the audit record of a call rejected before dispatch.
pub(crate) fn lenient_credential(header: &str) -> Option<(&str, &str)> {
    let start = header.find("Credential=")? + "Credential=".len();
    let credential = header[start..].split([',', ' ']).next()?;
    let mut parts = credential.split('/');
    let access_key = parts.next()?;
    let _date = parts.next()?;
    let region = parts.next()?;
    Some((access_key, region))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_reads_key_and_region() {
        let h = "AWS4-HMAC-SHA256 Credential=111122223333/20240101/eu-west-1/kms/aws4_request, SignedHeaders=host, Signature=00";
        assert_eq!(lenient_credential(h), Some(("111122223333", "eu-west-1")));
        assert_eq!(lenient_credential("garbage"), None);
    }

    struct NothingIssued;

    impl CredentialSource for NothingIssued {
        fn lookup(&self, _: &str, _: &str) -> Lookup {
            Lookup::Unknown
        }
    }

    #[test]
    fn dev_mode_accounts() {
        let auth = Authenticator::new(
            &Config::default(),
            Arc::new(NothingIssued),
            Clock::default(),
        );
        let h = "AWS4-HMAC-SHA256 Credential=111122223333/20240101/cn-north-1/kms/aws4_request";
        let a = auth.dev(Some(h));
        assert_eq!(a.principal.arn, "arn:aws-cn:iam::111122223333:root");
        let a = auth.dev(Some(
            "AWS4-HMAC-SHA256 Credential=AKIAFOO/20240101/us-west-2/kms/aws4_request",
        ));
        assert_eq!(a.scope.account, "000000000000");
        assert_eq!(a.scope.region, "us-west-2");
        let a = auth.dev(None);
        assert_eq!(a.scope.region, DEFAULT_REGION);
    }
}
