//! [`AuditClusterStore`] for SQLite: the `audit_cluster_digests` table (one node only, so
//! the chain names that node alone).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, backend};
use crate::Result;
use crate::audit_cluster::{AuditClusterStore, ClusterDigestRow, is_anchor_name};

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClusterDigestRow> {
    Ok(ClusterDigestRow {
        seq: r.get(0)?,
        time_ms: r.get(1)?,
        document: r.get(2)?,
        signature: r.get(3)?,
    })
}

#[async_trait]
impl AuditClusterStore for SqliteStore {
    async fn audit_anchors(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let rows: Vec<(String, Vec<u8>)> = self
            .read(|c| {
                let mut stmt = c
                    .prepare(
                        "SELECT name, value FROM meta WHERE name GLOB 'audit.anchor*' ORDER BY name",
                    )
                    .map_err(backend)?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(backend)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(backend)
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter(|(n, _)| is_anchor_name(n))
            .collect())
    }

    async fn last_cluster_digest(&self) -> Result<Option<ClusterDigestRow>> {
        self.read(|c| {
            c.query_row(
                "SELECT seq, time_ms, document, signature FROM audit_cluster_digests \
                 ORDER BY seq DESC LIMIT 1",
                [],
                from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn append_cluster_digest(&self, row: &ClusterDigestRow) -> Result<bool> {
        let row = row.clone();
        self.write(move |c| {
            let n = c
                .execute(
                    "INSERT INTO audit_cluster_digests (seq, time_ms, document, signature) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (seq) DO NOTHING",
                    params![row.seq, row.time_ms, row.document, row.signature],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn cluster_digests(&self, after: i64, limit: usize) -> Result<Vec<ClusterDigestRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT seq, time_ms, document, signature FROM audit_cluster_digests \
                     WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(backend)?;
            stmt.query_map(params![after, limit], from_row)
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)
        })
        .await
    }
}
