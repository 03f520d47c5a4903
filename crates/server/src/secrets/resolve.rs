//! From a `SecretId` (name, full ARN or partial ARN) to a secret, as AWS resolves them.
//!
//! - A name is looked up in the caller's account and Region; it must use only the characters
//!   a secret name may have, or the request fails validation.
//! - An ARN names its account and Region. A full ARN (name plus the six random characters)
//!   is matched exactly; otherwise the ARN is taken as partial (no suffix) and its resource
//!   part as the name. An ARN of another Region names no secret here.

use std::sync::Arc;

use super::SecretsService;
use super::error::SecretsError;
use super::secret::Secret;
use crate::arn::{Arn, Scope};
use crate::context::RequestContext;

impl SecretsService {
    /// The secret `id` names, if the caller may act on it with this operation (see
    /// [`super::authz`]). Includes secrets scheduled for deletion.
    pub(super) async fn resolve(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<Arc<Secret>, SecretsError> {
        let secret = self.find(ctx, id).await?.ok_or(SecretsError::NotFound)?;
        ctx.note_resource("AWS::SecretsManager::Secret", &secret.arn);
        self.authorize(ctx, &secret)?;
        Ok(secret)
    }

    /// Like [`SecretsService::resolve`], refusing secrets scheduled for deletion.
    pub(super) async fn resolve_active(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<Arc<Secret>, SecretsError> {
        let secret = self.resolve(ctx, id).await?;
        if secret.is_deleted() {
            return Err(SecretsError::MarkedForDeletion);
        }
        Ok(secret)
    }

    /// Like [`SecretsService::resolve_active`], refusing replicas (changes are made to the
    /// primary, in its Region).
    pub(super) async fn resolve_writable(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<Arc<Secret>, SecretsError> {
        let secret = self.resolve_active(ctx, id).await?;
        if secret.is_replica() {
            return Err(SecretsError::ReplicaReadOnly);
        }
        Ok(secret)
    }

    /// The secret `id` names, without any authorization.
    pub(super) async fn find(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<Option<Arc<Secret>>, SecretsError> {
        if !id.starts_with("arn:") {
            check_name(id)?;
            let scope = &ctx.scope;
            return self.load_name(&scope.account, &scope.region, id).await;
        }
        let Some((scope, name)) = parse_secret_arn(id) else {
            return Ok(None);
        };
        if scope.region != ctx.scope.region {
            return Ok(None);
        }
        // From memory first, so a partial ARN (no random suffix) costs no store read in
        // steady state: the full ARN, then the name. (AWS documents the ambiguity of a name
        // that itself ends in a hyphen and six characters; a cached match wins here.)
        let (account, region) = (&scope.account, &scope.region);
        if let Some(secret) = self
            .cached(id)
            .or_else(|| self.cached_name(account, region, name))
        {
            return Ok(Some(secret));
        }
        if let Some(secret) = self.load_arn(id).await? {
            return Ok(Some(secret));
        }
        self.load_name(account, region, name).await
    }
}

/// AWS's rule for secret names: ASCII letters, digits and `/_+=.@-`.
pub fn check_name(name: &str) -> Result<(), SecretsError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(SecretsError::InvalidName)
    }
}

/// The scope and resource name of `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`.
pub fn parse_secret_arn(text: &str) -> Option<(Scope, &str)> {
    let arn = Arn::parse(text)?;
    if arn.service != "secretsmanager" {
        return None;
    }
    let name = arn.resource.strip_prefix("secret:")?;
    let scope = Scope::new(arn.account, arn.region);
    if scope.partition != arn.partition || !crate::arn::is_account_id(arn.account) {
        return None;
    }
    if name.is_empty() {
        return None;
    }
    Some((scope, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "lab/dbcreds", "Valid/_+=.@-Name", "x-abcdef"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Inv Name", " Inv*Name? ", "a:b", "é"] {
            assert_eq!(check_name(bad), Err(SecretsError::InvalidName), "{bad}");
        }
    }

    #[test]
    fn arns() {
        let (scope, name) =
            parse_secret_arn("arn:aws:secretsmanager:us-east-1:111122223333:secret:a/b-AbC123")
                .unwrap();
        assert_eq!(scope.account, "111122223333");
        assert_eq!(name, "a/b-AbC123");
        assert!(parse_secret_arn("arn:aws:kms:us-east-1:111122223333:key/x").is_none());
        assert!(parse_secret_arn("arn:aws:secretsmanager:us-east-1:1:secret:x").is_none());
        assert!(
            parse_secret_arn("arn:aws:secretsmanager:us-east-1:111122223333:secret:").is_none()
        );
    }
}
