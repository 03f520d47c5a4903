//! The PostgreSQL change feed: `NOTIFY keyhold_changes` in every writing transaction, and a
//! listener on a connection of its own in every node.
//!
//! A writing transaction ends with one `pg_notify('keyhold_changes', payload)` just before
//! its commit (PostgreSQL delivers it when, and only if, the transaction commits). The
//! payload is `SEQ NODE` on its first line — a number from the sequence
//! `keyhold_change_seq` and the writing process's tag — then one [`Change`] per line.
//!
//! The listener (one task per [`ChangeFeed`]) `LISTEN`s and forwards the changes of other
//! processes (its own process already updated its caches). Every [`POLL`] it also reads the
//! sequence on the same connection, which proves the connection alive (a read that fails
//! or takes longer than [`POLL_TIMEOUT`] drops it) and tells which numbers were issued: a
//! number issued but not received within [`GRACE`] (a notification lost, or a writer that
//! took a number and then failed to commit) costs one [`Change::Everything`]. So does every
//! (re)connection, and every poll while disconnected: a node never trusts its caches for
//! longer than about a second without a working feed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_postgres::AsyncMessage;

use super::{PgConfig, pg};
use crate::Result;
use crate::changes::{Change, ChangeFeed};

/// The notification channel.
const CHANNEL: &str = "keyhold_changes";
/// How often the listener reads the sequence (and, disconnected, drops every cache).
pub const POLL: Duration = Duration::from_millis(250);
/// How long that read may take before the connection counts as lost.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a number issued by the sequence may go unannounced before the listener assumes
/// its notification is lost.
pub const GRACE: Duration = Duration::from_secs(1);
/// A payload longer than this (PostgreSQL's limit is 8000 bytes) says `all` instead.
const MAX_PAYLOAD: usize = 7000;
/// Missing numbers tracked at most; beyond, everything is dropped at once.
const MAX_MISSING: i64 = 1024;

/// Announces `changes`, made by the process tagged `node`, to every listening node when
/// the transaction `tx` commits. Call it last, just before the commit.
pub(super) async fn notify(tx: &impl GenericClient, node: &str, changes: &[Change]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut lines: Vec<String> = changes.iter().map(Change::encode).collect();
    lines.dedup();
    let mut body = lines.join("\n");
    if body.len() > MAX_PAYLOAD {
        body = Change::Everything.encode();
    }
    let body = format!("{node}\n{body}");
    tx.execute(
        "SELECT pg_notify($1, nextval('keyhold_change_seq')::TEXT || ' ' || $2)",
        &[&CHANNEL, &body],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Starts a listener for the process tagged `node` (whose own changes it skips).
pub(super) fn spawn(config: PgConfig, node: String) -> Option<ChangeFeed> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let (tx, rx) = unbounded_channel();
    runtime.spawn(run(config, node, tx));
    Some(ChangeFeed { changes: rx })
}

async fn run(config: PgConfig, node: String, out: UnboundedSender<Change>) {
    loop {
        match listen(&config, &node, &out).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(
                error = %super::causes(&e),
                "the change feed has no database connection: caches are dropped until it is back"
            ),
        }
        if out.send(Change::Everything).is_err() {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One connection's life: returns `Ok` when the feed's receiver is gone, an error when the
/// connection is lost.
async fn listen(config: &PgConfig, node: &str, out: &UnboundedSender<Change>) -> Result<()> {
    let (client, mut connection) = tokio::time::timeout(POLL_TIMEOUT, config.connect())
        .await
        .map_err(|_| timed_out("connecting"))?
        .map_err(pg)?;
    let (messages, mut incoming) = unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if messages.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "the change feed's connection failed");
                    return;
                }
            }
        }
    });
    let _stop_driver = AbortOnDrop(driver);
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(pg)?;
    let mut seen = Seen::new(issued(&client).await?);
    // Whatever changed before LISTEN took effect was not heard.
    if out.send(Change::Everything).is_err() {
        return Ok(());
    }
    tracing::info!("the change feed is listening");
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            payload = incoming.recv() => {
                let Some(payload) = payload else {
                    return Err(timed_out("listening (the connection closed)"));
                };
                for change in seen.receive(&payload, node) {
                    if out.send(change).is_err() {
                        return Ok(());
                    }
                }
            }
            _ = ticker.tick() => {
                if out.is_closed() {
                    return Ok(());
                }
                let last = issued(&client).await?;
                if seen.check(last, Instant::now()) && out.send(Change::Everything).is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// The last number the sequence issued (0 before the first).
async fn issued(client: &tokio_postgres::Client) -> Result<i64> {
    let row = tokio::time::timeout(
        POLL_TIMEOUT,
        client.query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM keyhold_change_seq",
            &[],
        ),
    )
    .await
    .map_err(|_| timed_out("reading keyhold_change_seq"))?
    .map_err(pg)?;
    row.try_get(0).map_err(pg)
}

fn timed_out(what: &str) -> crate::StoreError {
    crate::StoreError::Backend(format!("change feed: {what} timed out").into())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Which sequence numbers were announced: the highest, and those below it not (yet) heard
/// of, with when they were first known to be issued.
struct Seen {
    high: i64,
    missing: BTreeMap<i64, Instant>,
}

impl Seen {
    fn new(high: i64) -> Self {
        Self {
            high,
            missing: BTreeMap::new(),
        }
    }

    /// The changes a notification announces (none of this process's own); records its
    /// number. An unreadable notification announces [`Change::Everything`].
    fn receive(&mut self, payload: &str, own_node: &str) -> Vec<Change> {
        let Some((head, body)) = payload.split_once(' ') else {
            return vec![Change::Everything];
        };
        let Ok(seq) = head.parse::<i64>() else {
            return vec![Change::Everything];
        };
        let mut everything = false;
        if seq > self.high {
            everything = self.mark_issued(seq - 1, Instant::now());
            self.high = seq;
        }
        self.missing.remove(&seq);
        let mut lines = body.lines();
        let node = lines.next().unwrap_or_default();
        let mut changes = Vec::new();
        if everything {
            changes.push(Change::Everything);
        }
        if node == own_node {
            return changes;
        }
        for line in lines {
            changes.push(Change::decode(line).unwrap_or(Change::Everything));
        }
        changes
    }

    /// Records that every number up to `last` was issued (at `now`); returns whether some
    /// issued number went unannounced for longer than [`GRACE`] (then forgets them all).
    fn check(&mut self, last: i64, now: Instant) -> bool {
        let mut everything = false;
        if last > self.high {
            everything = self.mark_issued(last, now);
            self.high = last;
        }
        let overdue = self
            .missing
            .values()
            .any(|since| now.duration_since(*since) > GRACE);
        if overdue {
            self.missing.clear();
        }
        everything || overdue
    }

    /// Marks `high + 1 ..= upto` missing; returns true (and marks none) when that is too
    /// many to track.
    fn mark_issued(&mut self, upto: i64, now: Instant) -> bool {
        if upto.saturating_sub(self.high) > MAX_MISSING {
            self.missing.clear();
            return true;
        }
        for n in self.high.saturating_add(1)..=upto {
            self.missing.entry(n).or_insert(now);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_of_other_nodes_pass_and_own_are_skipped() {
        let mut seen = Seen::new(0);
        assert_eq!(
            seen.receive("1 other\nkey\tk1\niam", "me"),
            vec![Change::Key("k1".into()), Change::Iam]
        );
        assert_eq!(seen.receive("2 me\nkey\tk2", "me"), vec![]);
        assert!(!seen.check(2, Instant::now()), "nothing is missing");
    }

    #[test]
    fn a_number_never_announced_drops_everything_after_the_grace() {
        let mut seen = Seen::new(0);
        let start = Instant::now();
        assert!(!seen.check(3, start), "issued, not overdue yet");
        seen.receive("1 other\nkey\ta", "me");
        seen.receive("3 other\nkey\tc", "me");
        assert!(!seen.check(3, start + GRACE / 2));
        assert!(seen.check(3, start + GRACE * 2), "number 2 never came");
        assert!(!seen.check(3, start + GRACE * 3), "reported once");
    }

    #[test]
    fn a_late_notification_is_still_applied_and_clears_its_number() {
        let mut seen = Seen::new(0);
        let start = Instant::now();
        seen.receive("2 other\nkey\tb", "me");
        assert_eq!(
            seen.receive("1 other\nkey\ta", "me"),
            vec![Change::Key("a".into())]
        );
        assert!(!seen.check(2, start + GRACE * 2));
    }

    #[test]
    fn garbage_and_huge_gaps_drop_everything() {
        let mut seen = Seen::new(0);
        assert_eq!(seen.receive("garbage", "me"), vec![Change::Everything]);
        assert_eq!(
            seen.receive("5000 other\nkey\tx", "me"),
            vec![Change::Everything, Change::Key("x".into())]
        );
        assert_eq!(
            seen.receive("5001 other\nnonsense", "me"),
            vec![Change::Everything]
        );
    }
}
