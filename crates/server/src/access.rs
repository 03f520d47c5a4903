//! The declared authorization of every operation Keyhold serves: which actions it must be
//! allowed, and on which kinds of resource, before it may answer.
//!
//! Each service still makes its decisions where it has the facts (a key's policy, a
//! secret's resource policy, the request's condition keys), through the one engine
//! ([`crate::authz::decide`]), which writes every decision it makes into the request's
//! ledger. This table is the other half, written once per operation:
//!
//! - the dispatcher refuses an operation that has no declaration (it does not serve), and a
//!   test checks that every supported operation of every service has one;
//! - after an operation succeeds, the dispatcher checks the ledger against the declaration:
//!   an answer for which a declared check was never made is not sent (an internal error is,
//!   and the omission is logged). That is how a missing check — `UpdateAlias` deciding on the
//!   new key alone — shows up in the first test that calls the operation, instead of in
//!   production;
//! - a test walks every supported operation with a principal that has no permission, and
//!   with one whose policy denies the action explicitly, and shows each one refused.

use keyhold_proto::route::Operation;
use keyhold_proto::{cloudtrail, iam, kms, secretsmanager, ssm, sts};

use crate::context::RequestContext;

/// The kind of resource a check is made on, read off the resource's ARN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `*`: the caller's account; identity policies decide.
    Account,
    /// A KMS key (`arn:…:kms:…:key/…`), through its key policy and grants.
    Key,
    /// A KMS alias (`arn:…:kms:…:alias/…`), through identity policies.
    Alias,
    /// A secret (`arn:…:secretsmanager:…:secret:…`), with its resource policy.
    Secret,
    /// A parameter or a parameter path (`arn:…:ssm:…:parameter/…`).
    Parameter,
    /// An IAM user, role or the account root (`arn:…:iam::…`).
    IamEntity,
    /// Whichever the request names: a key when it names one, the account otherwise
    /// (`ListAliases` with and without `KeyId`, `ListRetirableGrants`' principal).
    Any,
}

/// One check an operation must make: `action` allowed on a resource of kind `on`.
#[derive(Clone, Copy, Debug)]
pub struct Check {
    pub action: &'static str,
    pub on: Resource,
}

/// What an operation needs before it may answer.
#[derive(Clone, Copy, Debug)]
pub enum Declaration {
    /// Every check listed, each at least once (an operation on several resources of one
    /// kind makes its check on each; the ledger shows at least one).
    Checks(&'static [Check]),
    /// Any authenticated caller, as on AWS (`GetCallerIdentity`, `GetSessionToken`).
    AnyCaller,
}

macro_rules! checks {
    ($(($action:literal, $on:ident)),+ $(,)?) => {
        Some(Declaration::Checks(&[$(Check { action: $action, on: Resource::$on }),+]))
    };
}

/// The declaration of `op`, or `None` for an operation Keyhold does not serve. Each match
/// below is exhaustive over its model's operations, so an operation added to a model does
/// not compile until it is declared here (or declared not served).
pub fn declaration(op: Operation) -> Option<Declaration> {
    match op {
        Operation::Kms(op) => kms_declaration(op),
        Operation::SecretsManager(op) => secrets_declaration(op),
        Operation::Ssm(op) => ssm_declaration(op),
        Operation::Sts(op) => sts_declaration(op),
        Operation::Iam(op) => iam_declaration(op),
        Operation::CloudTrail(op) => cloudtrail_declaration(op),
    }
}

fn kms_declaration(op: kms::KmsOperation) -> Option<Declaration> {
    use kms::KmsOperation as K;
    match op {
        K::CreateKey => checks![("kms:CreateKey", Account)],
        K::ListKeys => checks![("kms:ListKeys", Account)],
        K::GenerateRandom => checks![("kms:GenerateRandom", Account)],
        K::DescribeKey => checks![("kms:DescribeKey", Key)],
        K::EnableKey => checks![("kms:EnableKey", Key)],
        K::DisableKey => checks![("kms:DisableKey", Key)],
        K::ScheduleKeyDeletion => checks![("kms:ScheduleKeyDeletion", Key)],
        K::CancelKeyDeletion => checks![("kms:CancelKeyDeletion", Key)],
        K::UpdateKeyDescription => checks![("kms:UpdateKeyDescription", Key)],
        // On the alias (identity policies) and on every key the change affects (their key
        // policies): KMS Developer Guide, "Controlling access to aliases".
        K::CreateAlias => checks![("kms:CreateAlias", Alias), ("kms:CreateAlias", Key)],
        K::UpdateAlias => checks![("kms:UpdateAlias", Alias), ("kms:UpdateAlias", Key)],
        K::DeleteAlias => checks![("kms:DeleteAlias", Alias), ("kms:DeleteAlias", Key)],
        K::ListAliases => checks![("kms:ListAliases", Any)],
        K::Encrypt => checks![("kms:Encrypt", Key)],
        K::Decrypt => checks![("kms:Decrypt", Key)],
        K::ReEncrypt => checks![("kms:ReEncryptFrom", Key), ("kms:ReEncryptTo", Key)],
        K::GenerateDataKey => checks![("kms:GenerateDataKey", Key)],
        K::GenerateDataKeyWithoutPlaintext => {
            checks![("kms:GenerateDataKeyWithoutPlaintext", Key)]
        }
        K::TagResource => checks![("kms:TagResource", Key)],
        K::UntagResource => checks![("kms:UntagResource", Key)],
        K::ListResourceTags => checks![("kms:ListResourceTags", Key)],
        K::GetKeyPolicy => checks![("kms:GetKeyPolicy", Key)],
        K::PutKeyPolicy => checks![("kms:PutKeyPolicy", Key)],
        K::ListKeyPolicies => checks![("kms:ListKeyPolicies", Key)],
        K::CreateGrant => checks![("kms:CreateGrant", Key)],
        K::ListGrants => checks![("kms:ListGrants", Key)],
        K::ListRetirableGrants => checks![("kms:ListRetirableGrants", Any)],
        // Decided by the grant retired (its retiring principal or grantee), or by the key's
        // policy for the key's account.
        K::RetireGrant => checks![("kms:RetireGrant", Key)],
        K::RevokeGrant => checks![("kms:RevokeGrant", Key)],
        K::EnableKeyRotation => checks![("kms:EnableKeyRotation", Key)],
        K::DisableKeyRotation => checks![("kms:DisableKeyRotation", Key)],
        K::GetKeyRotationStatus => checks![("kms:GetKeyRotationStatus", Key)],
        K::RotateKeyOnDemand => checks![("kms:RotateKeyOnDemand", Key)],
        K::ListKeyRotations => checks![("kms:ListKeyRotations", Key)],
        K::GetParametersForImport => checks![("kms:GetParametersForImport", Key)],
        K::ImportKeyMaterial => checks![("kms:ImportKeyMaterial", Key)],
        K::DeleteImportedKeyMaterial => checks![("kms:DeleteImportedKeyMaterial", Key)],
        K::GetKeyLastUsage => checks![("kms:GetKeyLastUsage", Key)],
        K::Sign => checks![("kms:Sign", Key)],
        K::Verify => checks![("kms:Verify", Key)],
        K::GetPublicKey => checks![("kms:GetPublicKey", Key)],
        K::GenerateMac => checks![("kms:GenerateMac", Key)],
        K::VerifyMac => checks![("kms:VerifyMac", Key)],
        K::DeriveSharedSecret => checks![("kms:DeriveSharedSecret", Key)],
        K::Encapsulate => checks![("kms:Encapsulate", Key)],
        K::Decapsulate => checks![("kms:Decapsulate", Key)],
        K::GenerateDataKeyPair => checks![("kms:GenerateDataKeyPair", Key)],
        K::GenerateDataKeyPairWithoutPlaintext => {
            checks![("kms:GenerateDataKeyPairWithoutPlaintext", Key)]
        }
        // Not served yet: each needs its declaration here when it lands (the match is
        // exhaustive, so a new operation of the model does not compile without one).
        // Custom key stores have no resource policy: IAM policies alone (resource `*`).
        K::CreateCustomKeyStore => checks![("kms:CreateCustomKeyStore", Account)],
        K::ConnectCustomKeyStore => checks![("kms:ConnectCustomKeyStore", Account)],
        K::DisconnectCustomKeyStore => checks![("kms:DisconnectCustomKeyStore", Account)],
        K::DescribeCustomKeyStores => checks![("kms:DescribeCustomKeyStores", Account)],
        K::UpdateCustomKeyStore => checks![("kms:UpdateCustomKeyStore", Account)],
        K::DeleteCustomKeyStore => checks![("kms:DeleteCustomKeyStore", Account)],
        // As on AWS, creating the replica also takes `kms:CreateKey` (identity policies).
        K::ReplicateKey => checks![("kms:ReplicateKey", Key), ("kms:CreateKey", Account)],
        K::UpdatePrimaryRegion => checks![("kms:UpdatePrimaryRegion", Key)],
    }
}

fn secrets_declaration(op: secretsmanager::SecretsManagerOperation) -> Option<Declaration> {
    use secretsmanager::SecretsManagerOperation as S;
    match op {
        S::CreateSecret => checks![("secretsmanager:CreateSecret", Secret)],
        S::ListSecrets => checks![("secretsmanager:ListSecrets", Account)],
        S::GetRandomPassword => checks![("secretsmanager:GetRandomPassword", Account)],
        // And `secretsmanager:GetSecretValue` on each secret it returns.
        S::BatchGetSecretValue => checks![("secretsmanager:BatchGetSecretValue", Account)],
        S::GetSecretValue => checks![("secretsmanager:GetSecretValue", Secret)],
        S::PutSecretValue => checks![("secretsmanager:PutSecretValue", Secret)],
        S::UpdateSecret => checks![("secretsmanager:UpdateSecret", Secret)],
        S::UpdateSecretVersionStage => {
            checks![("secretsmanager:UpdateSecretVersionStage", Secret)]
        }
        S::DescribeSecret => checks![("secretsmanager:DescribeSecret", Secret)],
        S::ListSecretVersionIds => checks![("secretsmanager:ListSecretVersionIds", Secret)],
        S::DeleteSecret => checks![("secretsmanager:DeleteSecret", Secret)],
        S::RestoreSecret => checks![("secretsmanager:RestoreSecret", Secret)],
        S::TagResource => checks![("secretsmanager:TagResource", Secret)],
        S::UntagResource => checks![("secretsmanager:UntagResource", Secret)],
        S::RotateSecret => checks![("secretsmanager:RotateSecret", Secret)],
        S::CancelRotateSecret => checks![("secretsmanager:CancelRotateSecret", Secret)],
        S::PutResourcePolicy => checks![("secretsmanager:PutResourcePolicy", Secret)],
        S::GetResourcePolicy => checks![("secretsmanager:GetResourcePolicy", Secret)],
        S::DeleteResourcePolicy => checks![("secretsmanager:DeleteResourcePolicy", Secret)],
        S::ValidateResourcePolicy => checks![("secretsmanager:ValidateResourcePolicy", Any)],
        S::ListResourcePolicies => checks![("secretsmanager:ListResourcePolicies", Any)],
        S::ReplicateSecretToRegions => {
            checks![("secretsmanager:ReplicateSecretToRegions", Secret)]
        }
        S::RemoveRegionsFromReplication => {
            checks![("secretsmanager:RemoveRegionsFromReplication", Secret)]
        }
        S::StopReplicationToReplica => {
            checks![("secretsmanager:StopReplicationToReplica", Secret)]
        }
        S::AssociateCrossAccountReplica => {
            checks![("secretsmanager:AssociateCrossAccountReplica", Secret)]
        }
        S::DisassociateCrossAccountReplica => {
            checks![("secretsmanager:DisassociateCrossAccountReplica", Secret)]
        }
    }
}

fn ssm_declaration(op: ssm::SsmOperation) -> Option<Declaration> {
    use ssm::SsmOperation as P;
    match op {
        P::PutParameter => checks![("ssm:PutParameter", Parameter)],
        P::GetParameter => checks![("ssm:GetParameter", Parameter)],
        // On each name asked for; names that are invalid or missing need no check.
        P::GetParameters => checks![("ssm:GetParameters", Parameter)],
        P::GetParametersByPath => checks![("ssm:GetParametersByPath", Parameter)],
        P::DeleteParameter => checks![("ssm:DeleteParameter", Parameter)],
        P::DeleteParameters => checks![("ssm:DeleteParameters", Parameter)],
        P::DescribeParameters => checks![("ssm:DescribeParameters", Account)],
        P::GetParameterHistory => checks![("ssm:GetParameterHistory", Parameter)],
        P::LabelParameterVersion => checks![("ssm:LabelParameterVersion", Parameter)],
        P::UnlabelParameterVersion => checks![("ssm:UnlabelParameterVersion", Parameter)],
        P::AddTagsToResource => checks![("ssm:AddTagsToResource", Parameter)],
        P::RemoveTagsFromResource => checks![("ssm:RemoveTagsFromResource", Parameter)],
        P::ListTagsForResource => checks![("ssm:ListTagsForResource", Parameter)],
    }
}

fn sts_declaration(op: sts::StsOperation) -> Option<Declaration> {
    use sts::StsOperation as T;
    match op {
        // "No permissions are required to perform this operation" (STS API reference, for
        // both: authentication operations cannot be controlled by policies).
        T::GetCallerIdentity | T::GetSessionToken => Some(Declaration::AnyCaller),
        T::AssumeRole => checks![("sts:AssumeRole", IamEntity)],
    }
}

fn iam_declaration(op: iam::IamOperation) -> Option<Declaration> {
    use iam::IamOperation as I;
    match op {
        I::CreateUser => checks![("iam:CreateUser", IamEntity)],
        I::GetUser => checks![("iam:GetUser", IamEntity)],
        I::ListUsers => checks![("iam:ListUsers", IamEntity)],
        I::DeleteUser => checks![("iam:DeleteUser", IamEntity)],
        I::CreateAccessKey => checks![("iam:CreateAccessKey", IamEntity)],
        I::ListAccessKeys => checks![("iam:ListAccessKeys", IamEntity)],
        I::UpdateAccessKey => checks![("iam:UpdateAccessKey", IamEntity)],
        I::DeleteAccessKey => checks![("iam:DeleteAccessKey", IamEntity)],
        I::CreateRole => checks![("iam:CreateRole", IamEntity)],
        I::GetRole => checks![("iam:GetRole", IamEntity)],
        I::ListRoles => checks![("iam:ListRoles", IamEntity)],
        I::DeleteRole => checks![("iam:DeleteRole", IamEntity)],
        I::UpdateAssumeRolePolicy => checks![("iam:UpdateAssumeRolePolicy", IamEntity)],
        I::PutUserPolicy => checks![("iam:PutUserPolicy", IamEntity)],
        I::GetUserPolicy => checks![("iam:GetUserPolicy", IamEntity)],
        I::DeleteUserPolicy => checks![("iam:DeleteUserPolicy", IamEntity)],
        I::ListUserPolicies => checks![("iam:ListUserPolicies", IamEntity)],
        I::PutRolePolicy => checks![("iam:PutRolePolicy", IamEntity)],
        I::GetRolePolicy => checks![("iam:GetRolePolicy", IamEntity)],
        I::DeleteRolePolicy => checks![("iam:DeleteRolePolicy", IamEntity)],
        I::ListRolePolicies => checks![("iam:ListRolePolicies", IamEntity)],
    }
}

fn cloudtrail_declaration(op: cloudtrail::CloudTrailOperation) -> Option<Declaration> {
    match op {
        cloudtrail::CloudTrailOperation::LookupEvents => {
            checks![("cloudtrail:LookupEvents", Account)]
        }
    }
}

/// The kind of a resource named in a decision, or `None` for one no declaration names.
pub fn kind_of(resource: &str) -> Option<Resource> {
    if resource == "*" {
        return Some(Resource::Account);
    }
    let arn = crate::arn::Arn::parse(resource)?;
    match arn.service {
        "kms" if arn.resource.starts_with("key/") => Some(Resource::Key),
        "kms" if arn.resource.starts_with("alias/") => Some(Resource::Alias),
        "secretsmanager" if arn.resource.starts_with("secret:") => Some(Resource::Secret),
        "ssm" if arn.resource.starts_with("parameter") => Some(Resource::Parameter),
        "iam" | "sts" => Some(Resource::IamEntity),
        _ => None,
    }
}

/// The first declared check of `declaration` that the request's ledger does not show.
pub fn missing_check(declaration: Declaration, ctx: &RequestContext) -> Option<Check> {
    let Declaration::Checks(checks) = declaration else {
        return None;
    };
    checks.iter().copied().find(|check| {
        !ctx.decided(check.action, |kind| {
            check.on == Resource::Any || kind == Some(check.on)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_operation_is_declared() {
        let mut undeclared = Vec::new();
        for (_, ops) in crate::compat::all_operations() {
            for op in ops {
                if crate::compat::is_supported(op) && declaration(op).is_none() {
                    undeclared.push(op.name());
                }
            }
        }
        assert!(undeclared.is_empty(), "undeclared: {undeclared:?}");
    }

    #[test]
    fn declared_actions_belong_to_their_service() {
        for (_, ops) in crate::compat::all_operations() {
            for op in ops {
                let Some(Declaration::Checks(checks)) = declaration(op) else {
                    continue;
                };
                let prefix = match op {
                    Operation::Kms(_) => "kms:",
                    Operation::SecretsManager(_) => "secretsmanager:",
                    Operation::Ssm(_) => "ssm:",
                    Operation::Sts(_) => "sts:",
                    Operation::Iam(_) => "iam:",
                    Operation::CloudTrail(_) => "cloudtrail:",
                };
                assert!(!checks.is_empty(), "{}", op.name());
                for check in checks {
                    assert!(check.action.starts_with(prefix), "{}", op.name());
                }
            }
        }
    }

    #[test]
    fn resource_kinds_from_arns() {
        let cases = [
            ("*", Some(Resource::Account)),
            (
                "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                Some(Resource::Key),
            ),
            (
                "arn:aws:kms:us-east-1:111111111111:alias/prod",
                Some(Resource::Alias),
            ),
            (
                "arn:aws:secretsmanager:us-east-1:111111111111:secret:db-AbCdEf",
                Some(Resource::Secret),
            ),
            (
                "arn:aws:ssm:us-east-1:111111111111:parameter/app/db",
                Some(Resource::Parameter),
            ),
            (
                "arn:aws:iam::111111111111:user/alice",
                Some(Resource::IamEntity),
            ),
            ("arn:aws:s3:::bucket", None),
            ("alias/prod", None),
        ];
        for (arn, kind) in cases {
            assert_eq!(kind_of(arn), kind, "{arn}");
        }
    }
}
