//! From a `KeyId` parameter (key id, key ARN, alias name, alias ARN) to a key.

use std::borrow::Cow;
use std::sync::Arc;

use super::error::KmsError;
use super::key::{Key, parse_key_uuid};
use super::{AliasId, KmsService};
use crate::arn::{Arn, Scope};
use crate::context::RequestContext;
use keyhold_proto::kms::KeySpec;

/// Whether an operation accepts aliases in its `KeyId`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Aliases {
    Allowed,
    NotAllowed,
}

/// What a `KeyId` parameter names, before lookup: in the caller's scope (borrowed) or the
/// one an ARN names.
enum KeyRef<'a> {
    Key {
        scope: Cow<'a, Scope>,
        key_id: &'a str,
        arn_given: bool,
    },
    Alias {
        scope: Cow<'a, Scope>,
        name: &'a str,
    },
}

impl KmsService {
    /// Resolves `ident` for the caller of `ctx`. Aliases of AWS-managed keys that do not
    /// exist yet are created on first use, as AWS does.
    pub(super) async fn resolve(
        &self,
        ctx: &RequestContext,
        ident: &str,
        aliases: Aliases,
    ) -> Result<Arc<Key>, KmsError> {
        match parse_ref(ctx, ident)? {
            KeyRef::Key {
                scope,
                key_id,
                arn_given,
            } => {
                let missing = || KmsError::KeyNotFound {
                    arn: scope.arn("kms", format_args!("key/{key_id}")),
                };
                let key = match parse_key_uuid(key_id) {
                    Some(id) => self.load_id(id).await?.ok_or_else(missing)?,
                    // A multi-Region key: its row in the region named.
                    None if is_multi_region_id(key_id) => self
                        .load_regional(&super::multi_region::storage_id(key_id, &scope.region))
                        .await?
                        .ok_or_else(missing)?,
                    None if arn_given => return Err(missing()),
                    None => {
                        return Err(KmsError::InvalidKeyId {
                            value: ident.to_owned(),
                        });
                    }
                };
                if key.record.account != scope.account || key.record.region != scope.region {
                    return Err(missing());
                }
                Ok(key)
            }
            KeyRef::Alias { scope, name } => {
                if aliases == Aliases::NotAllowed {
                    return Err(KmsError::AliasNotSupported);
                }
                self.resolve_alias(ctx, scope.into_owned(), name.to_owned())
                    .await
            }
        }
    }

    /// The key spec of the key `ident` names, from memory only (the request quotas must not
    /// cost a store lookup): `None` when the key or its alias is not cached, or `ident` is
    /// not a valid key reference for the caller.
    pub fn key_spec_hint(&self, ctx: &RequestContext, ident: &str) -> Option<KeySpec> {
        let (scope, key) = match parse_ref(ctx, ident).ok()? {
            KeyRef::Key { scope, key_id, .. } => {
                let key = if is_multi_region_id(key_id) {
                    self.cached(&super::multi_region::storage_id(key_id, &scope.region))?
                } else {
                    self.cached(key_id)?
                };
                (scope, key)
            }
            KeyRef::Alias { scope, name } => {
                let target = self.alias_cached(&AliasId {
                    account: scope.account.clone(),
                    region: scope.region.clone(),
                    name: name.to_owned(),
                })?;
                (scope, self.cached(&target)?)
            }
        };
        (key.record.account == scope.account && key.record.region == scope.region)
            .then_some(key.spec)
    }

    async fn resolve_alias(
        &self,
        ctx: &RequestContext,
        scope: Scope,
        name: String,
    ) -> Result<Arc<Key>, KmsError> {
        let id = AliasId {
            account: scope.account.clone(),
            region: scope.region.clone(),
            name,
        };
        let alias_arn = || scope.arn("kms", &id.name);
        let target = match self.alias_cached(&id) {
            Some(target) => Some(target),
            None => {
                let generation = self.writes.generation();
                let record = self
                    .store
                    .get_alias(&id.account, &id.region, &id.name)
                    .await?;
                record.map(|r| {
                    self.alias_cache_loaded(id.clone(), r.target_key_id.clone(), generation);
                    r.target_key_id
                })
            }
        };
        let target = match target {
            Some(t) => t,
            None if scope.account == ctx.scope.account => {
                match super::managed::ManagedKey::for_alias(&id.name) {
                    Some(managed) => return self.create_managed_key(&scope, managed).await,
                    None => {
                        return Err(KmsError::AliasNotFound {
                            alias_arn: alias_arn(),
                        });
                    }
                }
            }
            None => {
                return Err(KmsError::AliasNotFound {
                    alias_arn: alias_arn(),
                });
            }
        };
        self.load(&target)
            .await?
            .ok_or_else(|| KmsError::AliasNotFound {
                alias_arn: alias_arn(),
            })
    }
}

fn parse_ref<'a>(ctx: &'a RequestContext, ident: &'a str) -> Result<KeyRef<'a>, KmsError> {
    if ident.starts_with("alias/") {
        return Ok(KeyRef::Alias {
            scope: Cow::Borrowed(&ctx.scope),
            name: ident,
        });
    }
    if !ident.starts_with("arn:") {
        return Ok(KeyRef::Key {
            scope: Cow::Borrowed(&ctx.scope),
            key_id: ident,
            arn_given: false,
        });
    }
    let arn = Arn::parse(ident).ok_or(KmsError::InvalidArn)?;
    if arn.service != "kms" || arn.account.is_empty() || arn.region.is_empty() {
        return Err(KmsError::InvalidArn);
    }
    if arn.region != ctx.scope.region {
        return Err(KmsError::ArnOfOtherRegion {
            region: arn.region.to_owned(),
        });
    }
    let scope = if arn.account == ctx.scope.account && arn.partition == ctx.scope.partition {
        Cow::Borrowed(&ctx.scope)
    } else {
        let scope = Scope::new(arn.account, arn.region);
        if scope.partition != arn.partition {
            return Err(KmsError::InvalidArn);
        }
        Cow::Owned(scope)
    };
    if let Some(key_id) = arn.resource.strip_prefix("key/") {
        if parse_key_uuid(key_id).is_none() && !is_multi_region_id(key_id) {
            return Err(KmsError::InvalidArn);
        }
        return Ok(KeyRef::Key {
            scope,
            key_id,
            arn_given: true,
        });
    }
    if let Some(name) = arn.resource.strip_prefix("alias/").map(|_| arn.resource) {
        return Ok(KeyRef::Alias { scope, name });
    }
    Err(KmsError::InvalidArn)
}

/// A multi-Region key id (`mrk-` and 32 lower-case hex digits): well-formed even where the
/// key has no row (AWS answers `NotFoundException` for one it does not know, not "Invalid
/// keyId").
fn is_multi_region_id(key_id: &str) -> bool {
    super::multi_region::parse_wire(key_id).is_some()
}
