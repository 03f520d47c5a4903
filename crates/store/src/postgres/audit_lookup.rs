//! [`SharedAuditIndex`] on PostgreSQL (migration 8): `audit_lookup_events` (one row per
//! published event, keyed by node and sequence, with the record), `audit_lookup_resources`
//! (one row per resource of an event, carrying the event's time so that a lookup by
//! resource name walks one B-tree newest first) and `audit_lookup_nodes` (each node's
//! progress).
//!
//! Every lookup walks a B-tree in the listing's order — (time, node, sequence) descending —
//! through the attribute's own index where it has one (event id, event name, resource name)
//! and the time index otherwise; the other attributes, the account and the Region filter the
//! rows met, as on the node's SQLite index. Only plain B-trees, multi-row `INSERT ... ON
//! CONFLICT` and row comparisons: SQL that CockroachDB and YugabyteDB also accept.

use std::borrow::Cow;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::{PgStore, has_nul, limit_i64, pg, snapshot};
use crate::audit::{AuditAttribute, AuditRow};
use crate::audit_lookup::{Published, SharedAuditIndex, SharedEvent, SharedQuery};
use crate::{Result, StoreError};

/// Events per `INSERT` statement (12 parameters each, far below PostgreSQL's 65,535).
const EVENTS_PER_STATEMENT: usize = 256;
/// Resources per `INSERT` statement (5 parameters each).
const RESOURCES_PER_STATEMENT: usize = 1024;
/// Sequences per `DELETE` transaction when events are forgotten: retention removes whole
/// digest periods, which may be millions of events (CockroachDB limits a transaction's size).
const FORGET_CHUNK: i64 = 10_000;

#[async_trait]
impl SharedAuditIndex for PgStore {
    async fn published(&self, node: &str) -> Result<Option<Published>> {
        if has_nul(&[node]) {
            return Ok(None);
        }
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT n.published_through, e.event_id FROM audit_lookup_nodes n \
                 LEFT JOIN audit_lookup_events e \
                 ON e.node = n.node AND e.seq = n.published_through \
                 WHERE n.node = $1",
                &[&node],
            )
            .await
            .map_err(pg)?;
        row.map(|r| {
            Ok(Published {
                through: r.try_get(0).map_err(pg)?,
                event_id: r.try_get(1).map_err(pg)?,
            })
        })
        .transpose()
    }

    async fn publish(&self, node: &str, after: i64, events: &[AuditRow]) -> Result<()> {
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(());
        };
        if has_nul(&[node]) {
            return Err(StoreError::Corrupt("a node id holds a NUL character"));
        }
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // The progress first: its row lock orders two processes publishing as one node (a
        // misconfiguration), and the one that finds the progress moved writes nothing.
        let moved = if after == 0 {
            tx.execute(
                "INSERT INTO audit_lookup_nodes (node, published_through) VALUES ($1, $2) \
                 ON CONFLICT (node) DO NOTHING",
                &[&node, &last],
            )
            .await
        } else {
            tx.execute(
                "UPDATE audit_lookup_nodes SET published_through = $3 \
                 WHERE node = $1 AND published_through = $2",
                &[&node, &after, &last],
            )
            .await
        }
        .map_err(pg)?;
        if moved != 1 {
            return Err(StoreError::Conflict);
        }
        for chunk in events.chunks(EVENTS_PER_STATEMENT) {
            insert_events(&tx, node, chunk).await?;
        }
        let resources: Vec<ResourceRow<'_>> = events
            .iter()
            .flat_map(|e| {
                e.resources
                    .iter()
                    .enumerate()
                    .map(move |(i, (kind, name))| ResourceRow {
                        seq: e.seq,
                        ord: i32::try_from(i).unwrap_or(i32::MAX),
                        kind: text(kind),
                        name: text(name),
                        time_ms: e.time_ms,
                    })
            })
            .collect();
        for chunk in resources.chunks(RESOURCES_PER_STATEMENT) {
            insert_resources(&tx, node, chunk).await?;
        }
        tx.commit().await.map_err(pg)
    }

    async fn forget_before(&self, node: &str, seq: i64) -> Result<u64> {
        if has_nul(&[node]) {
            return Ok(0);
        }
        let c = self.client().await?;
        let oldest: Option<i64> = c
            .query_one(
                "SELECT min(seq) FROM audit_lookup_events WHERE node = $1",
                &[&node],
            )
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        drop(c);
        let mut removed = 0;
        let mut from = oldest.unwrap_or(seq);
        while from < seq {
            let to = from.saturating_add(FORGET_CHUNK).min(seq);
            removed += self.forget_range(node, from, to).await?;
            from = to;
        }
        Ok(removed)
    }

    async fn forget_node(&self, node: &str) -> Result<()> {
        if has_nul(&[node]) {
            return Ok(());
        }
        let newest: Option<i64> = self
            .client()
            .await?
            .query_one(
                "SELECT max(seq) FROM audit_lookup_events WHERE node = $1",
                &[&node],
            )
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        if let Some(newest) = newest {
            self.forget_before(node, newest.saturating_add(1)).await?;
        }
        self.client()
            .await?
            .execute("DELETE FROM audit_lookup_nodes WHERE node = $1", &[&node])
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn lookup(&self, q: &SharedQuery) -> Result<Vec<SharedEvent>> {
        let value = q.attribute.as_ref().map(|(_, v)| v.as_str());
        let after_node = q.page.as_ref().map(|a| a.node.as_str());
        if has_nul(&[
            &q.account,
            &q.region,
            value.unwrap_or_default(),
            after_node.unwrap_or_default(),
        ]) {
            return Ok(Vec::new());
        }
        let attribute = q.attribute.as_ref().map(|(a, _)| *a);
        let read_only = value == Some("true");
        let limit = limit_i64(q.limit);
        // The table whose (time, node, seq) the walk follows: the resource rows for a lookup
        // by resource name (their own B-tree), the events otherwise.
        let (from, t) = match attribute {
            Some(AuditAttribute::ResourceName) => (
                "audit_lookup_resources r JOIN audit_lookup_events e \
                 ON e.node = r.node AND e.seq = r.seq",
                "r",
            ),
            _ => ("audit_lookup_events e", "e"),
        };
        let mut sql = format!(
            "SELECT e.node, e.seq, e.time_ms, e.event_id, e.event_name, e.event_source, \
             e.read_only, e.username, e.access_key_id, e.record FROM {from} \
             WHERE (e.account = $1 OR e.recipient = $1) AND e.region = $2"
        );
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&q.account, &q.region];
        let arg = |sql: &mut String, args: &mut Vec<&(dyn ToSql + Sync)>, clause: &str| {
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        };
        if let Some(attribute) = attribute {
            let clause = match attribute {
                AuditAttribute::ResourceName => " AND r.name = ?",
                AuditAttribute::ResourceType => {
                    " AND EXISTS (SELECT 1 FROM audit_lookup_resources t \
                     WHERE t.node = e.node AND t.seq = e.seq AND t.type = ?)"
                }
                AuditAttribute::EventId => " AND e.event_id = ?",
                AuditAttribute::EventName => " AND e.event_name = ?",
                AuditAttribute::ReadOnly => " AND e.read_only = ?",
                AuditAttribute::Username => " AND e.username = ?",
                AuditAttribute::EventSource => " AND e.event_source = ?",
                AuditAttribute::AccessKeyId => " AND e.access_key_id = ?",
            };
            match attribute {
                AuditAttribute::ReadOnly => args.push(&read_only),
                _ => args.push(&value),
            }
            arg(&mut sql, &mut args, clause);
        }
        if let Some(after) = &q.page {
            args.push(&after.time_ms);
            let time = args.len();
            args.push(&after.node);
            args.push(&after.seq);
            sql.push_str(&format!(
                " AND ({t}.time_ms, {t}.node, {t}.seq) < (${time}, ${}, ${})",
                time + 1,
                time + 2
            ));
        }
        if let Some(start) = &q.start_ms {
            args.push(start);
            arg(&mut sql, &mut args, &format!(" AND {t}.time_ms >= ?"));
        }
        if let Some(end) = &q.end_ms {
            args.push(end);
            arg(&mut sql, &mut args, &format!(" AND {t}.time_ms <= ?"));
        }
        args.push(&limit);
        arg(
            &mut sql,
            &mut args,
            &format!(" ORDER BY {t}.time_ms DESC, {t}.node DESC, {t}.seq DESC LIMIT ?"),
        );

        let mut c = self.client().await?;
        // One snapshot for the events and their resources.
        let tx = snapshot(&mut c).await?;
        let rows = tx.query(&sql, &args).await.map_err(pg)?;
        let mut events = Vec::with_capacity(rows.len());
        for r in &rows {
            events.push(SharedEvent {
                node: r.try_get(0).map_err(pg)?,
                seq: r.try_get(1).map_err(pg)?,
                time_ms: r.try_get(2).map_err(pg)?,
                event_id: r.try_get(3).map_err(pg)?,
                event_name: r.try_get(4).map_err(pg)?,
                event_source: r.try_get(5).map_err(pg)?,
                read_only: r.try_get(6).map_err(pg)?,
                username: r.try_get(7).map_err(pg)?,
                access_key_id: r.try_get(8).map_err(pg)?,
                record: r.try_get(9).map_err(pg)?,
                resources: Vec::new(),
            });
        }
        // An event naming the resource twice is met twice (next to each other).
        events.dedup_by(|a, b| a.node == b.node && a.seq == b.seq);
        add_resources(&tx, &mut events).await?;
        tx.commit().await.map_err(pg)?;
        Ok(events)
    }
}

impl PgStore {
    /// Removes `node`'s events with `from <= seq < to`, with their resources, in one
    /// transaction.
    async fn forget_range(&self, node: &str, from: i64, to: i64) -> Result<u64> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        tx.execute(
            "DELETE FROM audit_lookup_resources WHERE node = $1 AND seq >= $2 AND seq < $3",
            &[&node, &from, &to],
        )
        .await
        .map_err(pg)?;
        let removed = tx
            .execute(
                "DELETE FROM audit_lookup_events WHERE node = $1 AND seq >= $2 AND seq < $3",
                &[&node, &from, &to],
            )
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(removed)
    }
}

/// An event's columns as stored: text without NUL characters (PostgreSQL's TEXT cannot hold
/// one; a lookup for a value with one finds nothing anyway).
struct EventRow<'a> {
    seq: i64,
    time_ms: i64,
    account: Cow<'a, str>,
    recipient: Cow<'a, str>,
    region: Cow<'a, str>,
    event_id: Cow<'a, str>,
    event_name: Cow<'a, str>,
    event_source: Cow<'a, str>,
    read_only: bool,
    username: Option<Cow<'a, str>>,
    access_key_id: Option<Cow<'a, str>>,
    record: Cow<'a, str>,
}

struct ResourceRow<'a> {
    seq: i64,
    ord: i32,
    kind: Cow<'a, str>,
    name: Cow<'a, str>,
    time_ms: i64,
}

fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(s)
    }
}

async fn insert_events(
    tx: &deadpool_postgres::Transaction<'_>,
    node: &str,
    events: &[AuditRow],
) -> Result<()> {
    let rows: Vec<EventRow<'_>> = events
        .iter()
        .map(|e| EventRow {
            seq: e.seq,
            time_ms: e.time_ms,
            account: text(&e.account),
            recipient: text(&e.recipient_account),
            region: text(&e.region),
            event_id: text(&e.event_id),
            event_name: text(&e.event_name),
            event_source: text(&e.event_source),
            read_only: e.read_only,
            username: e.username.as_deref().map(text),
            access_key_id: e.access_key_id.as_deref().map(text),
            record: text(&e.record),
        })
        .collect();
    let mut sql = String::from(
        "INSERT INTO audit_lookup_events (node, seq, time_ms, account, recipient, region, \
         event_id, event_name, event_source, read_only, username, access_key_id, record) VALUES ",
    );
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(1 + rows.len() * 12);
    args.push(&node);
    for (i, r) in rows.iter().enumerate() {
        push_row(
            &mut sql,
            &mut args,
            i,
            [
                &r.seq as &(dyn ToSql + Sync),
                &r.time_ms,
                &r.account,
                &r.recipient,
                &r.region,
                &r.event_id,
                &r.event_name,
                &r.event_source,
                &r.read_only,
                &r.username,
                &r.access_key_id,
                &r.record,
            ],
        );
    }
    // A row already there is this event (the progress, checked above, says which events
    // are published); a retried batch does not duplicate it.
    sql.push_str(" ON CONFLICT (node, seq) DO NOTHING");
    tx.execute(&sql, &args).await.map_err(pg)?;
    Ok(())
}

/// Appends the `i`-th row of a multi-row `VALUES` list: the node (`$1`) and `values`, whose
/// placeholders follow the arguments already given.
fn push_row<'a, const N: usize>(
    sql: &mut String,
    args: &mut Vec<&'a (dyn ToSql + Sync)>,
    i: usize,
    values: [&'a (dyn ToSql + Sync); N],
) {
    if i > 0 {
        sql.push(',');
    }
    sql.push_str("($1");
    for value in values {
        args.push(value);
        sql.push_str(&format!(",${}", args.len()));
    }
    sql.push(')');
}

async fn insert_resources(
    tx: &deadpool_postgres::Transaction<'_>,
    node: &str,
    rows: &[ResourceRow<'_>],
) -> Result<()> {
    let mut sql = String::from(
        "INSERT INTO audit_lookup_resources (node, seq, ord, type, name, time_ms) VALUES ",
    );
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(1 + rows.len() * 5);
    args.push(&node);
    for (i, r) in rows.iter().enumerate() {
        push_row(
            &mut sql,
            &mut args,
            i,
            [
                &r.seq as &(dyn ToSql + Sync),
                &r.ord,
                &r.kind,
                &r.name,
                &r.time_ms,
            ],
        );
    }
    sql.push_str(" ON CONFLICT (node, seq, ord) DO NOTHING");
    tx.execute(&sql, &args).await.map_err(pg)?;
    Ok(())
}

/// Reads the resources of `events` (one query per node among them), in each record's order.
async fn add_resources(
    tx: &deadpool_postgres::Transaction<'_>,
    events: &mut [SharedEvent],
) -> Result<()> {
    let mut nodes: Vec<String> = events.iter().map(|e| e.node.clone()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    for node in nodes {
        let seqs: Vec<i64> = events
            .iter()
            .filter(|e| e.node == node)
            .map(|e| e.seq)
            .collect();
        let rows = tx
            .query(
                "SELECT seq, type, name FROM audit_lookup_resources \
                 WHERE node = $1 AND seq = ANY($2) ORDER BY seq, ord",
                &[&node, &seqs],
            )
            .await
            .map_err(pg)?;
        for r in rows {
            let seq: i64 = r.try_get(0).map_err(pg)?;
            if let Some(e) = events.iter_mut().find(|e| e.node == node && e.seq == seq) {
                e.resources
                    .push((r.try_get(1).map_err(pg)?, r.try_get(2).map_err(pg)?));
            }
        }
    }
    Ok(())
}
