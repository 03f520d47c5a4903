//! Authentication: from a request's SigV4 signature to a [`Principal`] and its region.
//!
//! - **Dev mode** trusts the request: any access key is accepted, unsigned requests too. A
//!   12-digit numeric access key id selects that account, anything else the default account;
//!   the caller is that account's root. The region comes from the credential scope.
//! - **Strict mode** verifies the signature (`keyhold_proto::sigv4`) against the access keys
//!   in the config file, each of which acts as its account's root.

use std::collections::HashMap;
use std::time::SystemTime;

use keyhold_proto::route::Service;
use keyhold_proto::sigv4::{self, AuthError, SignedRequest, SigningKeyCache};
use zeroize::Zeroizing;

use crate::arn::{Scope, is_account_id, is_region_name};
use crate::config::{Config, Mode};
use crate::context::Principal;

/// The region of requests that carry none (unsigned dev-mode requests).
pub const DEFAULT_REGION: &str = "us-east-1";

pub struct Authenticator {
    mode: Mode,
    default_account: String,
    keys: HashMap<String, StaticKey>,
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
    pub fn new(config: &Config) -> Self {
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
        match self.mode {
            Mode::Dev => Ok(self.dev(authorization)),
            Mode::Strict => self.strict(request, service, now),
        }
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

    fn strict(
        &self,
        request: &SignedRequest<'_>,
        service: Service,
        now: SystemTime,
    ) -> Result<Authenticated, AuthError> {
        let auth = sigv4::parse(request, service.signing_name(), now)?;
        let key = self
            .keys
            .get(auth.access_key_id())
            .ok_or(AuthError::UnrecognizedClient)?;
        if auth.security_token().is_some() {
            // Static keys have no session; a token means credentials Keyhold did not issue.
            return Err(AuthError::UnrecognizedClient);
        }
        auth.verify(&key.secret, &self.cache)?;
        let scope = Scope::new(key.account.clone(), auth.region());
        let principal = Principal::root(&scope, Some(auth.access_key_id().to_owned()));
        Ok(Authenticated { principal, scope })
    }
}

/// Reads `Credential=AKID/DATE/REGION/...` from an Authorization header without checking
/// anything: dev mode only.
fn lenient_credential(header: &str) -> Option<(&str, &str)> {
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

    #[test]
    fn dev_mode_accounts() {
        let auth = Authenticator::new(&Config::default());
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
