//! [`AuditClusterStore`] on PostgreSQL: the `audit_cluster_digests` table, shared by the
//! nodes; its primary key settles two nodes appending the same sequence.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{PgStore, pg};
use crate::Result;
use crate::audit_cluster::{AuditClusterStore, ClusterDigestRow, is_anchor_name};

fn from_row(r: &Row) -> Result<ClusterDigestRow> {
    Ok(ClusterDigestRow {
        seq: r.try_get(0).map_err(pg)?,
        time_ms: r.try_get(1).map_err(pg)?,
        document: r.try_get(2).map_err(pg)?,
        signature: r.try_get(3).map_err(pg)?,
    })
}

#[async_trait]
impl AuditClusterStore for PgStore {
    async fn audit_anchors(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let c = self.client().await?;
        // LIKE compares characters, not collation order (the prefix has no `_` or `%`).
        let rows = c
            .query(
                "SELECT name, value FROM meta WHERE name LIKE 'audit.anchor%' ORDER BY name",
                &[],
            )
            .await
            .map_err(pg)?;
        let mut out = Vec::new();
        for r in rows {
            let name: String = r.try_get(0).map_err(pg)?;
            if is_anchor_name(&name) {
                out.push((name, r.try_get(1).map_err(pg)?));
            }
        }
        Ok(out)
    }

    async fn last_cluster_digest(&self) -> Result<Option<ClusterDigestRow>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT seq, time_ms, document, signature FROM audit_cluster_digests \
                 ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .await
            .map_err(pg)?;
        row.as_ref().map(from_row).transpose()
    }

    async fn append_cluster_digest(&self, row: &ClusterDigestRow) -> Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                "INSERT INTO audit_cluster_digests (seq, time_ms, document, signature) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (seq) DO NOTHING",
                &[&row.seq, &row.time_ms, &row.document, &row.signature],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    async fn cluster_digests(&self, after: i64, limit: usize) -> Result<Vec<ClusterDigestRow>> {
        let c = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = c
            .query(
                "SELECT seq, time_ms, document, signature FROM audit_cluster_digests \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &limit],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(from_row).collect()
    }

    fn shared_audit_index(&self) -> Option<std::sync::Arc<dyn crate::SharedAuditIndex>> {
        Some(std::sync::Arc::new(self.clone()))
    }
}
