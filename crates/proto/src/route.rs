//! Which service and operation a request is for.
//!
//! JSON 1.1 services name the operation in `X-Amz-Target: <prefix>.<Operation>`; awsQuery
//! services (STS, IAM) in the `Action` form parameter, the service being told apart by the
//! SigV4 credential scope or the `Version` parameter.

use crate::generated::{cloudtrail, iam, kms, secretsmanager, ssm, sts};
use crate::runtime::error::{ApiError, CommonError};

/// How a service encodes requests and responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /`, `X-Amz-Target`, JSON in and out.
    Json,
    /// Form-encoded `Action=` in, XML out.
    Query,
}

/// The services Keyhold speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Kms,
    SecretsManager,
    Ssm,
    Sts,
    Iam,
    CloudTrail,
}

impl Service {
    pub const ALL: &'static [Self] = &[
        Self::Kms,
        Self::SecretsManager,
        Self::Ssm,
        Self::Sts,
        Self::Iam,
        Self::CloudTrail,
    ];

    pub fn protocol(self) -> Protocol {
        match self {
            Self::Sts | Self::Iam => Protocol::Query,
            _ => Protocol::Json,
        }
    }

    /// The model's `serviceId` (`KMS`, `Secrets Manager`, ...).
    pub fn service_id(self) -> &'static str {
        match self {
            Self::Kms => kms::SERVICE_ID,
            Self::SecretsManager => secretsmanager::SERVICE_ID,
            Self::Ssm => ssm::SERVICE_ID,
            Self::Sts => sts::SERVICE_ID,
            Self::Iam => iam::SERVICE_ID,
            Self::CloudTrail => cloudtrail::SERVICE_ID,
        }
    }

    /// The service name in SigV4 credential scopes.
    pub fn signing_name(self) -> &'static str {
        match self {
            Self::Kms => kms::SIGNING_NAME,
            Self::SecretsManager => secretsmanager::SIGNING_NAME,
            Self::Ssm => ssm::SIGNING_NAME,
            Self::Sts => sts::SIGNING_NAME,
            Self::Iam => iam::SIGNING_NAME,
            Self::CloudTrail => cloudtrail::SIGNING_NAME,
        }
    }

    /// CloudTrail's `eventSource`, e.g. `kms.amazonaws.com`.
    pub fn event_source(self) -> &'static str {
        match self {
            Self::Kms => kms::EVENT_SOURCE,
            Self::SecretsManager => secretsmanager::EVENT_SOURCE,
            Self::Ssm => ssm::EVENT_SOURCE,
            Self::Sts => sts::EVENT_SOURCE,
            Self::Iam => iam::EVENT_SOURCE,
            Self::CloudTrail => cloudtrail::EVENT_SOURCE,
        }
    }

    /// The member name of error messages in JSON bodies (`message` or `Message`).
    pub fn message_key(self) -> &'static str {
        match self {
            Self::Kms => kms::MESSAGE_KEY,
            Self::SecretsManager => secretsmanager::MESSAGE_KEY,
            Self::Ssm => ssm::MESSAGE_KEY,
            Self::Sts => sts::MESSAGE_KEY,
            Self::Iam => iam::MESSAGE_KEY,
            Self::CloudTrail => cloudtrail::MESSAGE_KEY,
        }
    }

    /// The namespace of awsQuery XML responses.
    pub fn xml_namespace(self) -> &'static str {
        let ns = match self {
            Self::Sts => sts::XML_NAMESPACE,
            Self::Iam => iam::XML_NAMESPACE,
            _ => None,
        };
        ns.unwrap_or("")
    }

    fn target_prefix(self) -> Option<&'static str> {
        match self {
            Self::Kms => kms::TARGET_PREFIX,
            Self::SecretsManager => secretsmanager::TARGET_PREFIX,
            Self::Ssm => ssm::TARGET_PREFIX,
            Self::CloudTrail => cloudtrail::TARGET_PREFIX,
            Self::Sts | Self::Iam => None,
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Self::Kms => kms::API_VERSION,
            Self::SecretsManager => secretsmanager::API_VERSION,
            Self::Ssm => ssm::API_VERSION,
            Self::Sts => sts::API_VERSION,
            Self::Iam => iam::API_VERSION,
            Self::CloudTrail => cloudtrail::API_VERSION,
        }
    }

    pub fn from_signing_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.signing_name() == name)
    }
}

/// One operation of one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Kms(kms::KmsOperation),
    SecretsManager(secretsmanager::SecretsManagerOperation),
    Ssm(ssm::SsmOperation),
    Sts(sts::StsOperation),
    Iam(iam::IamOperation),
    CloudTrail(cloudtrail::CloudTrailOperation),
}

impl Operation {
    pub fn service(self) -> Service {
        match self {
            Self::Kms(_) => Service::Kms,
            Self::SecretsManager(_) => Service::SecretsManager,
            Self::Ssm(_) => Service::Ssm,
            Self::Sts(_) => Service::Sts,
            Self::Iam(_) => Service::Iam,
            Self::CloudTrail(_) => Service::CloudTrail,
        }
    }

    /// The operation's name as the model spells it (`Encrypt`), CloudTrail's `eventName`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kms(op) => op.name(),
            Self::SecretsManager(op) => op.name(),
            Self::Ssm(op) => op.name(),
            Self::Sts(op) => op.name(),
            Self::Iam(op) => op.name(),
            Self::CloudTrail(op) => op.name(),
        }
    }

    fn lookup(service: Service, name: &str) -> Option<Self> {
        match service {
            Service::Kms => kms::KmsOperation::from_name(name).map(Self::Kms),
            Service::SecretsManager => {
                secretsmanager::SecretsManagerOperation::from_name(name).map(Self::SecretsManager)
            }
            Service::Ssm => ssm::SsmOperation::from_name(name).map(Self::Ssm),
            Service::Sts => sts::StsOperation::from_name(name).map(Self::Sts),
            Service::Iam => iam::IamOperation::from_name(name).map(Self::Iam),
            Service::CloudTrail => {
                cloudtrail::CloudTrailOperation::from_name(name).map(Self::CloudTrail)
            }
        }
    }
}

/// Resolves `X-Amz-Target` (`TrentService.Encrypt`). Anything else is AWS's bodiless
/// `UnknownOperationException`.
pub fn resolve_target(target: &str) -> Result<Operation, ApiError> {
    let unknown = || ApiError::bare(CommonError::UnknownOperation);
    let (prefix, name) = target.rsplit_once('.').ok_or_else(unknown)?;
    let service = Service::ALL
        .iter()
        .copied()
        .find(|s| s.target_prefix() == Some(prefix))
        .ok_or_else(unknown)?;
    Operation::lookup(service, name).ok_or_else(unknown)
}

/// Resolves an awsQuery `Action`. The service is the one the request was signed for, else
/// the one whose API version the request names, else the one that has the action. A request
/// without `Action` is AWS's `MissingAction`.
pub fn resolve_action(
    action: Option<&str>,
    version: Option<&str>,
    signed_for: Option<&str>,
) -> Result<Operation, ApiError> {
    let Some(action) = action else {
        return Err(ApiError::new(
            CommonError::MissingAction,
            "The request is missing an action or a required parameter.",
        ));
    };
    let query_services = [Service::Sts, Service::Iam];
    let service = signed_for
        .and_then(Service::from_signing_name)
        .filter(|s| s.protocol() == Protocol::Query)
        .or_else(|| {
            version.and_then(|v| query_services.into_iter().find(|s| s.api_version() == v))
        });
    let found = match service {
        Some(service) => Operation::lookup(service, action),
        None => query_services
            .into_iter()
            .find_map(|s| Operation::lookup(s, action)),
    };
    found.ok_or_else(|| {
        ApiError::new(
            CommonError::UnknownOperation,
            format!(
                "Could not find operation {action} for version {}",
                version.unwrap_or("NO_VERSION_SPECIFIED")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            resolve_target("TrentService.Encrypt").unwrap(),
            Operation::Kms(kms::KmsOperation::Encrypt)
        );
        assert_eq!(
            resolve_target("AmazonSSM.GetParameter").unwrap().service(),
            Service::Ssm
        );
        assert_eq!(
            resolve_target("secretsmanager.GetSecretValue")
                .unwrap()
                .name(),
            "GetSecretValue"
        );
        assert_eq!(
            resolve_target("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents")
                .unwrap()
                .service(),
            Service::CloudTrail
        );
        for bad in [
            "",
            "TrentService",
            "TrentService.Nope",
            "Nope.Encrypt",
            "TrentService.encrypt",
        ] {
            assert_eq!(
                resolve_target(bad).unwrap_err().code(),
                "UnknownOperationException"
            );
        }
    }

    #[test]
    fn actions() {
        let op =
            resolve_action(Some("GetCallerIdentity"), Some("2011-06-15"), Some("sts")).unwrap();
        assert_eq!(op.service(), Service::Sts);
        let op = resolve_action(Some("CreateUser"), None, None).unwrap();
        assert_eq!(op.service(), Service::Iam);
        let err = resolve_action(Some("CreateUser"), None, Some("sts")).unwrap_err();
        assert_eq!(err.query_code(), "InvalidAction");
    }

    /// AWS's common error for a query request without `Action`: `MissingAction`, 400.
    #[test]
    fn missing_action_is_aws_missing_action() {
        for signed_for in [None, Some("sts"), Some("iam")] {
            let err = resolve_action(None, Some("2011-06-15"), signed_for).unwrap_err();
            assert_eq!(err.query_code(), "MissingAction");
            assert_eq!(err.status(), 400);
            assert!(err.sender_fault());
            assert_eq!(
                err.message(),
                Some("The request is missing an action or a required parameter.")
            );
        }
    }
}
