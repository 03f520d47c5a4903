//! Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
//! Never edit a released migration: append a new one.

use rusqlite::Connection;

use super::backend;
use crate::{Result, StoreError};

const MIGRATIONS: &[&str] = &[
    // 1: server metadata and KMS keys.
    "CREATE TABLE meta (
        name  TEXT PRIMARY KEY,
        value BLOB NOT NULL
     ) STRICT;
     CREATE TABLE kms_keys (
        key_id              TEXT PRIMARY KEY,
        account             TEXT NOT NULL,
        region              TEXT NOT NULL,
        arn                 TEXT NOT NULL,
        creation_ms         INTEGER NOT NULL,
        description         TEXT NOT NULL,
        key_usage           TEXT NOT NULL,
        key_spec            TEXT NOT NULL,
        origin              TEXT NOT NULL,
        key_manager         TEXT NOT NULL,
        state               TEXT NOT NULL,
        deletion_ms         INTEGER,
        policy              TEXT NOT NULL,
        current_material_id TEXT NOT NULL
     ) STRICT;
     CREATE INDEX kms_keys_scope ON kms_keys (account, region, key_id);
     CREATE INDEX kms_keys_deletion ON kms_keys (deletion_ms) WHERE deletion_ms IS NOT NULL;
     CREATE TABLE kms_materials (
        key_id      TEXT NOT NULL REFERENCES kms_keys (key_id),
        material_id TEXT NOT NULL,
        sealed      BLOB NOT NULL,
        creation_ms INTEGER NOT NULL,
        PRIMARY KEY (key_id, material_id)
     ) STRICT;
     CREATE TABLE kms_aliases (
        account       TEXT NOT NULL,
        region        TEXT NOT NULL,
        name          TEXT NOT NULL,
        target_key_id TEXT NOT NULL REFERENCES kms_keys (key_id),
        creation_ms   INTEGER NOT NULL,
        updated_ms    INTEGER NOT NULL,
        PRIMARY KEY (account, region, name)
     ) STRICT;
     CREATE INDEX kms_aliases_target ON kms_aliases (target_key_id);
     CREATE TABLE kms_tags (
        key_id    TEXT NOT NULL REFERENCES kms_keys (key_id),
        tag_key   TEXT NOT NULL,
        tag_value TEXT NOT NULL,
        PRIMARY KEY (key_id, tag_key)
     ) STRICT;",
    // 2: Secrets Manager secrets and their sealed versions.
    "CREATE TABLE sm_secrets (
        arn         TEXT PRIMARY KEY,
        account     TEXT NOT NULL,
        region      TEXT NOT NULL,
        name        TEXT NOT NULL,
        created_ms  INTEGER NOT NULL,
        deletion_ms INTEGER,
        meta        TEXT NOT NULL
     ) STRICT;
     CREATE UNIQUE INDEX sm_secrets_name ON sm_secrets (account, region, name);
     CREATE INDEX sm_secrets_deletion ON sm_secrets (deletion_ms) WHERE deletion_ms IS NOT NULL;
     CREATE TABLE sm_versions (
        secret_arn       TEXT NOT NULL REFERENCES sm_secrets (arn),
        version_id       TEXT NOT NULL,
        created_ms       INTEGER NOT NULL,
        last_accessed_ms INTEGER,
        kms_key_id       TEXT,
        kms_key_arn      TEXT NOT NULL,
        data_key         BLOB NOT NULL,
        sealed_value     BLOB NOT NULL,
        PRIMARY KEY (secret_arn, version_id)
     ) STRICT;",
    // 3: Parameter Store parameters and their versions (SecureString values as ciphertext).
    "CREATE TABLE ssm_params (
        arn        TEXT PRIMARY KEY,
        account    TEXT NOT NULL,
        region     TEXT NOT NULL,
        name       TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER,
        meta       TEXT NOT NULL
     ) STRICT;
     CREATE INDEX ssm_params_scope ON ssm_params (account, region, arn);
     CREATE INDEX ssm_params_expiration ON ssm_params (expires_ms) WHERE expires_ms IS NOT NULL;
     CREATE TABLE ssm_versions (
        param_arn   TEXT NOT NULL REFERENCES ssm_params (arn),
        version     INTEGER NOT NULL,
        modified_ms INTEGER NOT NULL,
        value       BLOB NOT NULL,
        meta        TEXT NOT NULL,
        PRIMARY KEY (param_arn, version)
     ) STRICT;",
    // 4: IAM users, roles, inline policies, access keys (sealed secrets), STS sessions
    // (sealed secrets, hashed tokens) and retired credential ids.
    "CREATE TABLE iam_users (
        user_id    TEXT PRIMARY KEY,
        account    TEXT NOT NULL,
        name       TEXT NOT NULL,
        name_key   TEXT NOT NULL,
        path       TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        meta       TEXT NOT NULL
     ) STRICT;
     CREATE UNIQUE INDEX iam_users_name ON iam_users (account, name_key);
     CREATE TABLE iam_roles (
        role_id      TEXT PRIMARY KEY,
        account      TEXT NOT NULL,
        name         TEXT NOT NULL,
        name_key     TEXT NOT NULL,
        path         TEXT NOT NULL,
        created_ms   INTEGER NOT NULL,
        trust_policy TEXT NOT NULL,
        meta         TEXT NOT NULL
     ) STRICT;
     CREATE UNIQUE INDEX iam_roles_name ON iam_roles (account, name_key);
     CREATE TABLE iam_access_keys (
        access_key_id TEXT PRIMARY KEY,
        account       TEXT NOT NULL,
        user_id       TEXT NOT NULL REFERENCES iam_users (user_id),
        status        TEXT NOT NULL,
        created_ms    INTEGER NOT NULL,
        sealed_secret BLOB NOT NULL
     ) STRICT;
     CREATE INDEX iam_access_keys_user ON iam_access_keys (user_id);
     CREATE TABLE iam_policies (
        owner_id TEXT NOT NULL,
        account  TEXT NOT NULL,
        name     TEXT NOT NULL,
        document TEXT NOT NULL,
        PRIMARY KEY (owner_id, name)
     ) STRICT;
     CREATE TABLE iam_sessions (
        access_key_id TEXT PRIMARY KEY,
        account       TEXT NOT NULL,
        owner_id      TEXT NOT NULL,
        created_ms    INTEGER NOT NULL,
        expires_ms    INTEGER NOT NULL,
        token_sha256  BLOB NOT NULL,
        sealed_secret BLOB NOT NULL,
        meta          TEXT NOT NULL
     ) STRICT;
     CREATE TABLE iam_retired_keys (
        access_key_id TEXT PRIMARY KEY,
        retired_ms    INTEGER NOT NULL
     ) STRICT;",
    // 5: KMS grants (deleted with their key).
    "CREATE TABLE kms_grants (
        grant_id           TEXT PRIMARY KEY,
        key_id             TEXT NOT NULL REFERENCES kms_keys (key_id),
        name               TEXT,
        grantee_principal  TEXT NOT NULL,
        retiring_principal TEXT,
        operations         TEXT NOT NULL,
        constraints        TEXT,
        issuing_account    TEXT NOT NULL,
        creation_ms        INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX kms_grants_key ON kms_grants (key_id, grant_id);
     CREATE INDEX kms_grants_retiring ON kms_grants (retiring_principal, grant_id)
        WHERE retiring_principal IS NOT NULL;",
    // 6: KMS key rotation: each key's automatic rotation settings, and how each material
    // became current (the rotation history). AWS-managed keys rotate yearly, counted from
    // their creation, as AWS does.
    "ALTER TABLE kms_keys ADD COLUMN rotation_period_days INTEGER;
     ALTER TABLE kms_keys ADD COLUMN next_rotation_ms INTEGER;
     ALTER TABLE kms_materials ADD COLUMN rotation_type TEXT;
     CREATE INDEX kms_keys_rotation ON kms_keys (next_rotation_ms)
        WHERE next_rotation_ms IS NOT NULL;
     UPDATE kms_keys SET rotation_period_days = 365,
        next_rotation_ms = creation_ms + 365 * 86400000
        WHERE key_manager = 'AWS';",
    // Imported key material (EXTERNAL origin keys): one row per material, sealed while
    // imported. Independent of other migrations (a new table only).
    "CREATE TABLE kms_imported_materials (
        key_id           TEXT NOT NULL REFERENCES kms_keys (key_id),
        material_id      TEXT NOT NULL,
        sealed           BLOB,
        creation_ms      INTEGER NOT NULL,
        expiration_model TEXT NOT NULL,
        valid_to_ms      INTEGER,
        description      TEXT,
        pending_rotation INTEGER NOT NULL,
        rotation_type    TEXT,
        rotation_ms      INTEGER,
        PRIMARY KEY (key_id, material_id)
     ) STRICT;
     CREATE INDEX kms_imported_expiry ON kms_imported_materials (valid_to_ms)
        WHERE valid_to_ms IS NOT NULL AND sealed IS NOT NULL;",
    // Custom key stores (their token PIN sealed under the domain key) and the keys in them
    // (whose material is in the token). Independent of other migrations (new tables only).
    "CREATE TABLE kms_custom_key_stores (
        id               TEXT PRIMARY KEY,
        account          TEXT NOT NULL,
        region           TEXT NOT NULL,
        name             TEXT NOT NULL,
        store_type       TEXT NOT NULL,
        cluster_id       TEXT NOT NULL,
        trust_anchor     TEXT NOT NULL,
        sealed_password  BLOB NOT NULL,
        connection_state TEXT NOT NULL,
        connection_error TEXT,
        creation_ms      INTEGER NOT NULL
     ) STRICT;
     CREATE UNIQUE INDEX kms_custom_key_stores_name
        ON kms_custom_key_stores (account, region, name);
     CREATE TABLE kms_custom_key_store_keys (
        key_id              TEXT PRIMARY KEY REFERENCES kms_keys (key_id),
        custom_key_store_id TEXT NOT NULL REFERENCES kms_custom_key_stores (id)
     ) STRICT;
     CREATE INDEX kms_custom_key_store_keys_store
        ON kms_custom_key_store_keys (custom_key_store_id);",
    // 9: outstanding import tokens of GetParametersForImport, in the store so that they
    // survive a restart and work on every node (the token's SHA-256, never the token; the
    // wrapping private key sealed under the domain key), and the state a key with imported
    // material returns to when its material is back.
    "CREATE TABLE kms_import_tokens (
        token_sha256       BLOB PRIMARY KEY,
        key_id             TEXT NOT NULL REFERENCES kms_keys (key_id),
        wrapping_key_spec  TEXT NOT NULL,
        wrapping_algorithm TEXT NOT NULL,
        created_ms         INTEGER NOT NULL,
        expires_ms         INTEGER NOT NULL,
        sealed_private_key BLOB NOT NULL
     ) STRICT;
     CREATE INDEX kms_import_tokens_key ON kms_import_tokens (key_id, created_ms);
     CREATE INDEX kms_import_tokens_expiry ON kms_import_tokens (expires_ms);
     ALTER TABLE kms_keys ADD COLUMN state_after_import TEXT;",
    // 10: multi-Region keys: each region's row of one (`mrk-<hex>:<region>`) names the
    // region of the primary key; NULL for single-Region keys.
    "ALTER TABLE kms_keys ADD COLUMN multi_region_primary TEXT;",
    // 11: the cluster digest chain that joins the audit trails of the nodes sharing a store
    // (`audit_cluster.rs`); on SQLite it names the one node.
    "CREATE TABLE audit_cluster_digests (
        seq       INTEGER PRIMARY KEY,
        time_ms   INTEGER NOT NULL,
        document  TEXT NOT NULL,
        signature BLOB NOT NULL
     ) STRICT;",
    // 12: version-checked writes of parameters and secrets across nodes. Each row counts
    // its writes; a write names the revision it makes and replaces only the one before
    // (ParamRecord::revision).
    "ALTER TABLE ssm_params ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
     ALTER TABLE sm_secrets ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;",
];

/// The version a database is at once every migration ran (`PRAGMA user_version`).
pub(crate) fn latest() -> usize {
    MIGRATIONS.len()
}

pub(crate) fn apply(conn: &Connection) -> Result<()> {
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(backend)?;
    let current =
        usize::try_from(current).map_err(|_| StoreError::Corrupt("negative user_version"))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(
            "database schema is newer than this Keyhold",
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = i + 1;
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {version}; COMMIT;"
        ))
        .map_err(backend)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A database made before rotation existed gets its AWS-managed keys' yearly schedule,
    /// counted from their creation; customer keys stay without automatic rotation.
    #[test]
    fn migration_6_schedules_existing_aws_managed_keys() {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        for (id, manager) in [("managed", "AWS"), ("customer", "CUSTOMER")] {
            conn.execute(
                "INSERT INTO kms_keys VALUES (?1, 'a', 'r', 'arn', 1000, '', 'ENCRYPT_DECRYPT', \
                 'SYMMETRIC_DEFAULT', 'AWS_KMS', ?2, 'Enabled', NULL, '{}', '00')",
                [id, manager],
            )
            .unwrap();
        }
        apply(&conn).unwrap();
        let schedule = |id: &str| -> (Option<i64>, Option<i64>) {
            conn.query_row(
                "SELECT rotation_period_days, next_rotation_ms FROM kms_keys WHERE key_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        assert_eq!(
            schedule("managed"),
            (Some(365), Some(1000 + 365 * 86_400_000))
        );
        assert_eq!(schedule("customer"), (None, None));
    }
}
