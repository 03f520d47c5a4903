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
//!
//! Nothing is rebuilt per request: what an access key resolves to (its secret and its
//! [`Principal`] as an `Arc`, with the compiled identity policies) is cached by access key
//! id, stamped with the credential source's [`CredentialSource::version`], which every IAM
//! and STS change moves on, so a deleted or deactivated key, a changed policy or a deleted
//! user takes effect on the very next request. Account roots (static keys, dev mode) are
//! cached likewise; derived signing keys per secret, date, region and service
//! ([`SigningKeyCache`]). Signatures and session tokens are still compared in constant time
//! on every request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use keyhold_crypto::digest::{constant_time_eq, sha256};
use keyhold_proto::route::Service;
use keyhold_proto::sigv4::{self, AuthError, ParsedAuth, SignedRequest, SigningKeyCache};
use zeroize::Zeroizing;

use crate::arn::{Scope, is_account_id, is_region_name, partition_of};
use crate::cache::BoundedCache;
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

    /// A counter that moves on with every change to what [`CredentialSource::lookup`]
    /// answers, once the change is visible to it: a lookup made after reading version `v`
    /// is current for as long as the version is still `v`.
    fn version(&self) -> u64;
}

/// Access keys whose resolution is cached, at most (and account roots likewise).
const PRINCIPALS_CACHED: usize = 10_000;

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
    /// What issued access keys resolve to, by access key id.
    credentials: BoundedCache<String, Arc<CachedCredential>>,
    /// Account roots by access key id (static keys; dev mode's keys), and the root of
    /// unsigned dev-mode requests.
    roots: BoundedCache<String, (&'static str, Arc<Principal>)>,
    unsigned_root: Arc<Principal>,
}

/// An issued access key's resolution, as of a version of the credential source.
struct CachedCredential {
    version: u64,
    partition: &'static str,
    resolution: Resolution,
}

enum Resolution {
    Unknown,
    Refused,
    Found {
        secret: Arc<Secret>,
        principal: Arc<Principal>,
        session: Option<SessionCheck>,
    },
}

struct StaticKey {
    secret: Zeroizing<Vec<u8>>,
    account: String,
}

/// The outcome of authentication.
#[derive(Debug)]
pub struct Authenticated {
    pub principal: Arc<Principal>,
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
        let unsigned_scope = Scope::new(config.account_id.clone(), DEFAULT_REGION);
        Self {
            mode: config.mode,
            default_account: config.account_id.clone(),
            keys,
            issued,
            clock,
            cache: SigningKeyCache::default(),
            credentials: BoundedCache::new(PRINCIPALS_CACHED),
            roots: BoundedCache::new(PRINCIPALS_CACHED),
            unsigned_root: Arc::new(Principal::root(&unsigned_scope, None)),
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
                let credential = authorization.and_then(lenient_credential);
                let Some((key, region)) = credential else {
                    return Ok(self.dev(None));
                };
                if self.keys.contains_key(key) {
                    None
                } else {
                    let cached = self.resolve(key, partition_of(region));
                    if let Resolution::Unknown = cached.resolution {
                        return Ok(self.dev(credential));
                    }
                    Some(cached)
                }
            }
        };
        self.verified(request, service, now, known)
    }

    /// The dev-mode caller of a request whose `Authorization` names `credential` (access
    /// key and region, as [`lenient_credential`] reads them), unverified.
    fn dev(&self, credential: Option<(&str, &str)>) -> Authenticated {
        let Some((access_key, region)) = credential else {
            let scope = Scope::new(self.default_account.clone(), DEFAULT_REGION);
            return Authenticated {
                principal: self.unsigned_root.clone(),
                scope,
            };
        };
        let account = if is_account_id(access_key) {
            access_key
        } else {
            &self.default_account
        };
        let region = if is_region_name(region) {
            region
        } else {
            DEFAULT_REGION
        };
        let scope = Scope::new(account, region);
        let principal = self.root(&scope, access_key);
        Authenticated { principal, scope }
    }

    /// The root of `scope`'s account as the caller signing with `access_key_id`.
    fn root(&self, scope: &Scope, access_key_id: &str) -> Arc<Principal> {
        if let Some((partition, root)) = self.roots.get(access_key_id)
            && partition == scope.partition
            && root.account == scope.account
        {
            return root;
        }
        let root = Arc::new(Principal::root(scope, Some(access_key_id.to_owned())));
        self.roots
            .insert(access_key_id.to_owned(), (scope.partition, root.clone()));
        root
    }

    /// What an issued access key resolves to, from the cache while the credential source
    /// has not changed since it was cached.
    fn resolve(&self, access_key_id: &str, partition: &'static str) -> Arc<CachedCredential> {
        let version = self.issued.version();
        if let Some(cached) = self.credentials.get(access_key_id)
            && cached.version == version
            && cached.partition == partition
        {
            return cached;
        }
        let resolution = match self.issued.lookup(access_key_id, partition) {
            Lookup::Unknown => Resolution::Unknown,
            Lookup::Refused => Resolution::Refused,
            Lookup::Found(issued) => Resolution::Found {
                secret: issued.secret,
                principal: Arc::new(issued.principal),
                session: issued.session,
            },
        };
        let cached = Arc::new(CachedCredential {
            version,
            partition,
            resolution,
        });
        self.credentials
            .insert(access_key_id.to_owned(), cached.clone());
        cached
    }

    /// Verifies the signature with the key's secret (and its session token, if temporary).
    /// `known` is the issued credential's resolution when the caller already made it.
    fn verified(
        &self,
        request: &SignedRequest<'_>,
        service: Service,
        now: SystemTime,
        known: Option<Arc<CachedCredential>>,
    ) -> Result<Authenticated, AuthError> {
        let auth = sigv4::parse(request, service.signing_name(), now)?;
        if let Some(key) = self.keys.get(auth.access_key_id()) {
            if auth.security_token().is_some() {
                // Static keys have no session; a token means credentials Keyhold did not issue.
                return Err(AuthError::UnrecognizedClient);
            }
            auth.verify(&key.secret, &self.cache)?;
            let scope = Scope::new(key.account.clone(), auth.region());
            let principal = self.root(&scope, auth.access_key_id());
            return Ok(Authenticated { principal, scope });
        }
        let cached = known
            .unwrap_or_else(|| self.resolve(auth.access_key_id(), partition_of(auth.region())));
        let Resolution::Found {
            secret,
            principal,
            session,
        } = &cached.resolution
        else {
            return Err(AuthError::UnrecognizedClient);
        };
        self.check_session(session.as_ref(), &auth)?;
        let session_token_credentials = principal.temporary_credentials
            && !matches!(principal.kind, PrincipalKind::AssumedRole { .. });
        if session_token_credentials && service == Service::Iam {
            return Err(AuthError::UnrecognizedClient);
        }
        auth.verify(secret.expose(), &self.cache)?;
        let scope = Scope::new(principal.account.clone(), auth.region());
        Ok(Authenticated {
            principal: principal.clone(),
            scope,
        })
    }

    /// A long-term key takes no session token; a temporary one requires its own, unexpired.
    fn check_session(
        &self,
        session: Option<&SessionCheck>,
        auth: &ParsedAuth<'_>,
    ) -> Result<(), AuthError> {
        match (session, auth.security_token()) {
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

        fn version(&self) -> u64 {
            0
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
        let a = auth.dev(lenient_credential(h));
        assert_eq!(a.principal.arn, "arn:aws-cn:iam::111122223333:root");
        let a = auth.dev(lenient_credential(
            "AWS4-HMAC-SHA256 Credential=AKIAFOO/20240101/us-west-2/kms/aws4_request",
        ));
        assert_eq!(a.scope.account, "000000000000");
        assert_eq!(a.scope.region, "us-west-2");
        let a = auth.dev(None);
        assert_eq!(a.scope.region, DEFAULT_REGION);
    }
}
