//! The SDK-linked integration tests, one binary: each module was once its own test
//! crate; linking the AWS SDKs once instead of 27 times is most of the build.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod at_rest;
mod audit_rejections;
mod audit_trail;
mod authorization_every_operation;
mod compatibility;
mod data_dir_permissions;
mod iam_access_keys;
mod iam_at_rest;
mod iam_roles_policies;
mod iam_users;
mod identity_enforcement;
mod kms_alias_authorization;
mod kms_aliases_tags_policies;
mod kms_crypto;
mod kms_grants;
mod kms_keys;
mod kms_rotation;
mod ops_backup;
mod ops_metrics;
mod ops_quotas;
mod ops_seed_reset;
mod params_fidelity;
mod protocol;
mod secrets_at_rest;
mod secrets_fidelity;
mod secrets_lifecycle;
mod secrets_policies_rotation;
mod secrets_replication;
mod secrets_versions;
mod ssm_at_rest;
mod ssm_labels_tags;
mod ssm_parameters;
mod ssm_queries;
mod ssm_references;
mod ssm_tiers_policies;
mod strict_mode;
mod sts_sessions;
mod transport_body;
mod transport_source_ip;
mod transport_timeouts;
mod transport_tls;
mod via_service_access;
mod wire_fidelity;
