//! The PostgreSQL schema, versioned: migration N is applied once, in its own transaction,
//! and recorded as row N of `keyhold_schema_version`. Every migration runs under a
//! session-level advisory lock, so that nodes starting together apply each once.
//! Never edit a released migration: append a new one.
//!
//! The SQL sticks to what CockroachDB and YugabyteDB also accept: TEXT, BYTEA, BIGINT,
//! INTEGER, BOOLEAN, BIGSERIAL, plain and partial indexes, `ON CONFLICT`; no extensions.
//!
//! The tables mirror the SQLite schema (`sqlite/migrations.rs`; this store's migration 3 is
//! SQLite's 8, 4 is SQLite's 9, 5 is SQLite's 10 and 6 is SQLite's 11), so that a store copied from one to the other keeps
//! every column. Rows that the SQLite store orders by `rowid` (materials, imported
//! materials) carry a `seq` column here instead.

use deadpool_postgres::Object;

use super::pg;
use crate::{Result, StoreError};

/// `pg_advisory_lock` key of schema migrations ("KEYHOLDM" as an integer).
const MIGRATION_LOCK: i64 = 0x4b45_5948_4f4c_444d;

pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the whole schema of the SQLite store's migrations 1 to 7.
    "CREATE TABLE meta (
        name  TEXT PRIMARY KEY,
        value BYTEA NOT NULL
     );
     CREATE TABLE kms_keys (
        key_id               TEXT PRIMARY KEY,
        account              TEXT NOT NULL,
        region               TEXT NOT NULL,
        arn                  TEXT NOT NULL,
        creation_ms          BIGINT NOT NULL,
        description          TEXT NOT NULL,
        key_usage            TEXT NOT NULL,
        key_spec             TEXT NOT NULL,
        origin               TEXT NOT NULL,
        key_manager          TEXT NOT NULL,
        state                TEXT NOT NULL,
        deletion_ms          BIGINT,
        policy               TEXT NOT NULL,
        current_material_id  TEXT NOT NULL,
        rotation_period_days INTEGER,
        next_rotation_ms     BIGINT
     );
     CREATE INDEX kms_keys_scope ON kms_keys (account, region, key_id);
     CREATE INDEX kms_keys_deletion ON kms_keys (deletion_ms) WHERE deletion_ms IS NOT NULL;
     CREATE INDEX kms_keys_rotation ON kms_keys (next_rotation_ms)
        WHERE next_rotation_ms IS NOT NULL;
     CREATE TABLE kms_materials (
        key_id        TEXT NOT NULL REFERENCES kms_keys (key_id),
        material_id   TEXT NOT NULL,
        sealed        BYTEA NOT NULL,
        creation_ms   BIGINT NOT NULL,
        rotation_type TEXT,
        seq           BIGSERIAL,
        PRIMARY KEY (key_id, material_id)
     );
     CREATE TABLE kms_aliases (
        account       TEXT NOT NULL,
        region        TEXT NOT NULL,
        name          TEXT NOT NULL,
        target_key_id TEXT NOT NULL REFERENCES kms_keys (key_id),
        creation_ms   BIGINT NOT NULL,
        updated_ms    BIGINT NOT NULL,
        PRIMARY KEY (account, region, name)
     );
     CREATE INDEX kms_aliases_target ON kms_aliases (target_key_id);
     CREATE TABLE kms_tags (
        key_id    TEXT NOT NULL REFERENCES kms_keys (key_id),
        tag_key   TEXT NOT NULL,
        tag_value TEXT NOT NULL,
        PRIMARY KEY (key_id, tag_key)
     );
     CREATE TABLE kms_grants (
        grant_id           TEXT PRIMARY KEY,
        key_id             TEXT NOT NULL REFERENCES kms_keys (key_id),
        name               TEXT,
        grantee_principal  TEXT NOT NULL,
        retiring_principal TEXT,
        operations         TEXT NOT NULL,
        constraints        TEXT,
        issuing_account    TEXT NOT NULL,
        creation_ms        BIGINT NOT NULL
     );
     CREATE INDEX kms_grants_key ON kms_grants (key_id, grant_id);
     CREATE INDEX kms_grants_retiring ON kms_grants (retiring_principal, grant_id)
        WHERE retiring_principal IS NOT NULL;
     CREATE TABLE kms_imported_materials (
        key_id           TEXT NOT NULL REFERENCES kms_keys (key_id),
        material_id      TEXT NOT NULL,
        sealed           BYTEA,
        creation_ms      BIGINT NOT NULL,
        expiration_model TEXT NOT NULL,
        valid_to_ms      BIGINT,
        description      TEXT,
        pending_rotation BOOLEAN NOT NULL,
        rotation_type    TEXT,
        rotation_ms      BIGINT,
        seq              BIGSERIAL,
        PRIMARY KEY (key_id, material_id)
     );
     CREATE INDEX kms_imported_expiry ON kms_imported_materials (valid_to_ms)
        WHERE valid_to_ms IS NOT NULL AND sealed IS NOT NULL;
     CREATE TABLE sm_secrets (
        arn         TEXT PRIMARY KEY,
        account     TEXT NOT NULL,
        region      TEXT NOT NULL,
        name        TEXT NOT NULL,
        created_ms  BIGINT NOT NULL,
        deletion_ms BIGINT,
        meta        TEXT NOT NULL
     );
     CREATE UNIQUE INDEX sm_secrets_name ON sm_secrets (account, region, name);
     CREATE INDEX sm_secrets_deletion ON sm_secrets (deletion_ms) WHERE deletion_ms IS NOT NULL;
     CREATE TABLE sm_versions (
        secret_arn       TEXT NOT NULL REFERENCES sm_secrets (arn),
        version_id       TEXT NOT NULL,
        created_ms       BIGINT NOT NULL,
        last_accessed_ms BIGINT,
        kms_key_id       TEXT,
        kms_key_arn      TEXT NOT NULL,
        data_key         BYTEA NOT NULL,
        sealed_value     BYTEA NOT NULL,
        PRIMARY KEY (secret_arn, version_id)
     );
     CREATE TABLE ssm_params (
        arn        TEXT PRIMARY KEY,
        account    TEXT NOT NULL,
        region     TEXT NOT NULL,
        name       TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT,
        meta       TEXT NOT NULL
     );
     CREATE INDEX ssm_params_scope ON ssm_params (account, region, arn);
     CREATE INDEX ssm_params_expiration ON ssm_params (expires_ms) WHERE expires_ms IS NOT NULL;
     CREATE TABLE ssm_versions (
        param_arn   TEXT NOT NULL REFERENCES ssm_params (arn),
        version     BIGINT NOT NULL,
        modified_ms BIGINT NOT NULL,
        value       BYTEA NOT NULL,
        meta        TEXT NOT NULL,
        PRIMARY KEY (param_arn, version)
     );
     CREATE TABLE iam_users (
        user_id    TEXT PRIMARY KEY,
        account    TEXT NOT NULL,
        name       TEXT NOT NULL,
        name_key   TEXT NOT NULL,
        path       TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        meta       TEXT NOT NULL
     );
     CREATE UNIQUE INDEX iam_users_name ON iam_users (account, name_key);
     CREATE TABLE iam_roles (
        role_id      TEXT PRIMARY KEY,
        account      TEXT NOT NULL,
        name         TEXT NOT NULL,
        name_key     TEXT NOT NULL,
        path         TEXT NOT NULL,
        created_ms   BIGINT NOT NULL,
        trust_policy TEXT NOT NULL,
        meta         TEXT NOT NULL
     );
     CREATE UNIQUE INDEX iam_roles_name ON iam_roles (account, name_key);
     CREATE TABLE iam_access_keys (
        access_key_id TEXT PRIMARY KEY,
        account       TEXT NOT NULL,
        user_id       TEXT NOT NULL REFERENCES iam_users (user_id),
        status        TEXT NOT NULL,
        created_ms    BIGINT NOT NULL,
        sealed_secret BYTEA NOT NULL
     );
     CREATE INDEX iam_access_keys_user ON iam_access_keys (user_id);
     CREATE TABLE iam_policies (
        owner_id TEXT NOT NULL,
        account  TEXT NOT NULL,
        name     TEXT NOT NULL,
        document TEXT NOT NULL,
        PRIMARY KEY (owner_id, name)
     );
     CREATE TABLE iam_sessions (
        access_key_id TEXT PRIMARY KEY,
        account       TEXT NOT NULL,
        owner_id      TEXT NOT NULL,
        created_ms    BIGINT NOT NULL,
        expires_ms    BIGINT NOT NULL,
        token_sha256  BYTEA NOT NULL,
        sealed_secret BYTEA NOT NULL,
        meta          TEXT NOT NULL
     );
     CREATE TABLE iam_retired_keys (
        access_key_id TEXT PRIMARY KEY,
        retired_ms    BIGINT NOT NULL
     );",
    // 2: several nodes on one database. Every committed write takes a number from
    // `keyhold_change_seq` for the notification that announces it (`feed.rs`), so that a
    // node can tell a notification it missed; `keyhold_leases` holds the leases under which
    // background jobs run once across the nodes.
    "CREATE SEQUENCE keyhold_change_seq;
     CREATE TABLE keyhold_leases (
        name       TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_ms BIGINT NOT NULL
     );",
    // 3: custom key stores and the keys in them (the SQLite store's eighth migration).
    "CREATE TABLE kms_custom_key_stores (
        id               TEXT PRIMARY KEY,
        account          TEXT NOT NULL,
        region           TEXT NOT NULL,
        name             TEXT NOT NULL,
        store_type       TEXT NOT NULL,
        cluster_id       TEXT NOT NULL,
        trust_anchor     TEXT NOT NULL,
        sealed_password  BYTEA NOT NULL,
        connection_state TEXT NOT NULL,
        connection_error TEXT,
        creation_ms      BIGINT NOT NULL
     );
     CREATE UNIQUE INDEX kms_custom_key_stores_name
        ON kms_custom_key_stores (account, region, name);
     CREATE TABLE kms_custom_key_store_keys (
        key_id              TEXT PRIMARY KEY REFERENCES kms_keys (key_id),
        custom_key_store_id TEXT NOT NULL REFERENCES kms_custom_key_stores (id)
     );
     CREATE INDEX kms_custom_key_store_keys_store
        ON kms_custom_key_store_keys (custom_key_store_id);",
    // 4: outstanding import tokens and the state a key with imported material returns to
    // (the SQLite store's ninth migration).
    "CREATE TABLE kms_import_tokens (
        token_sha256       BYTEA PRIMARY KEY,
        key_id             TEXT NOT NULL REFERENCES kms_keys (key_id),
        wrapping_key_spec  TEXT NOT NULL,
        wrapping_algorithm TEXT NOT NULL,
        created_ms         BIGINT NOT NULL,
        expires_ms         BIGINT NOT NULL,
        sealed_private_key BYTEA NOT NULL
     );
     CREATE INDEX kms_import_tokens_key ON kms_import_tokens (key_id, created_ms);
     CREATE INDEX kms_import_tokens_expiry ON kms_import_tokens (expires_ms);
     ALTER TABLE kms_keys ADD COLUMN state_after_import TEXT;",
    // 5: multi-Region keys (the SQLite store's tenth migration).
    "ALTER TABLE kms_keys ADD COLUMN multi_region_primary TEXT;",
    // 6: the cluster digest chain that joins the nodes' audit trails (the SQLite store's
    // eleventh migration): each row a signed document naming every node's anchored digest.
    "CREATE TABLE audit_cluster_digests (
        seq       BIGINT PRIMARY KEY,
        time_ms   BIGINT NOT NULL,
        document  TEXT NOT NULL,
        signature BYTEA NOT NULL
     );",
    // 7: version-checked writes of parameters and secrets (the SQLite store's twelfth
    // migration).
    "ALTER TABLE ssm_params ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
     ALTER TABLE sm_secrets ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;",
    // 8: the nodes' shared lookup index (`audit_lookup.rs`; no SQLite counterpart: a
    // single node's lookups read its own index). Derived from the nodes' trails, which
    // republish it: `migrate-store` does not copy it.
    "CREATE TABLE audit_lookup_events (
        node          TEXT NOT NULL,
        seq           BIGINT NOT NULL,
        time_ms       BIGINT NOT NULL,
        account       TEXT NOT NULL,
        recipient     TEXT NOT NULL,
        region        TEXT NOT NULL,
        event_id      TEXT NOT NULL,
        event_name    TEXT NOT NULL,
        event_source  TEXT NOT NULL,
        read_only     BOOLEAN NOT NULL,
        username      TEXT,
        access_key_id TEXT,
        record        TEXT NOT NULL,
        PRIMARY KEY (node, seq)
     );
     CREATE INDEX audit_lookup_events_time ON audit_lookup_events (time_ms, node, seq);
     CREATE INDEX audit_lookup_events_id ON audit_lookup_events (event_id);
     CREATE INDEX audit_lookup_events_name
        ON audit_lookup_events (event_name, time_ms, node, seq);
     CREATE TABLE audit_lookup_resources (
        node    TEXT NOT NULL,
        seq     BIGINT NOT NULL,
        ord     INTEGER NOT NULL,
        type    TEXT NOT NULL,
        name    TEXT NOT NULL,
        time_ms BIGINT NOT NULL,
        PRIMARY KEY (node, seq, ord)
     );
     CREATE INDEX audit_lookup_resources_name
        ON audit_lookup_resources (name, time_ms, node, seq);
     CREATE TABLE audit_lookup_nodes (
        node              TEXT PRIMARY KEY,
        published_through BIGINT NOT NULL
     );",
];

/// Brings the schema up to date; returns how many migrations it applied.
pub(super) async fn apply(client: &mut Object) -> Result<usize> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    let outcome = apply_locked(client).await;
    // Unlock even if a migration failed (the connection goes back to the pool).
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg);
    let applied = outcome?;
    unlocked?;
    Ok(applied)
}

async fn apply_locked(client: &mut Object) -> Result<usize> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS keyhold_schema_version (
                version    BIGINT PRIMARY KEY,
                applied_ms BIGINT NOT NULL
             )",
        )
        .await
        .map_err(pg)?;
    let current: i64 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM keyhold_schema_version",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    let current =
        usize::try_from(current).map_err(|_| StoreError::Corrupt("negative schema version"))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(
            "database schema is newer than this Keyhold",
        ));
    }
    let mut applied = 0;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = i64::try_from(i + 1).map_err(|_| StoreError::Corrupt("migration count"))?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.batch_execute(sql).await.map_err(pg)?;
        tx.execute(
            "INSERT INTO keyhold_schema_version (version, applied_ms) VALUES ($1, $2)",
            &[&version, &now_ms()],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        applied += 1;
    }
    Ok(applied)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
