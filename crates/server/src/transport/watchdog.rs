//! Per-connection deadlines: how long a client may take to send a request's head, and how
//! long a kept-alive connection may sit idle between requests.
//!
//! hyper's own `header_read_timeout` starts whenever the server waits for a head, which
//! includes the idle time between keep-alive requests, so it cannot give the two limits
//! different values. Here the connection is in one of three phases:
//!
//! - [`Phase::Head`]: from accept (or from the first byte after an idle period) until the
//!   head is parsed: at most `header_read_timeout`, however slowly the bytes trickle in.
//! - [`Phase::Busy`]: a request is being handled; its body read has its own timeout in the
//!   handler (`body_read_timeout`), so the watchdog does not interfere.
//! - [`Phase::Idle`]: the response is out and no byte of the next request has arrived: at
//!   most `idle_timeout`.
//!
//! [`TimedIo`] notices the first byte after an idle period; the service marks a request's
//! start and end; [`Watch::expired`] completes when the current phase's deadline passes.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Head(Instant),
    Busy,
    Idle(Instant),
}

/// Which deadline closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    HeaderRead,
    Idle,
}

/// The phase of one connection, shared by its IO, its service and its watchdog.
pub struct Watch {
    phase: Mutex<Phase>,
    changed: Notify,
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

impl Watch {
    /// A new connection: its first head must arrive within `header_read_timeout`.
    pub fn new(header_read_timeout: Duration, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            phase: Mutex::new(Phase::Head(Instant::now() + header_read_timeout)),
            changed: Notify::new(),
            header_read_timeout,
            idle_timeout,
        })
    }

    fn set(&self, update: impl FnOnce(Phase) -> Option<Phase>) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(next) = update(*phase) {
            *phase = next;
            drop(phase);
            self.changed.notify_one();
        }
    }

    fn current(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request's head has been parsed.
    pub fn request_started(&self) {
        self.set(|_| Some(Phase::Busy));
    }

    /// The response has been handed to the connection.
    pub fn request_finished(&self) {
        let deadline = Instant::now() + self.idle_timeout;
        self.set(|_| Some(Phase::Idle(deadline)));
    }

    /// Bytes arrived: after an idle period they start the next request's head.
    fn bytes_read(&self) {
        let deadline = Instant::now() + self.header_read_timeout;
        self.set(|p| matches!(p, Phase::Idle(_)).then_some(Phase::Head(deadline)));
    }

    /// Completes when the current phase's deadline has passed (never while busy).
    /// Cancel-safe: it only reads the phase.
    pub async fn expired(&self) -> Expired {
        loop {
            let (deadline, kind) = match self.current() {
                Phase::Head(d) => (d, Expired::HeaderRead),
                Phase::Idle(d) => (d, Expired::Idle),
                Phase::Busy => {
                    self.changed.notified().await;
                    continue;
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    // The phase may have moved on at the same moment; look again.
                    if self.current() == match kind {
                        Expired::HeaderRead => Phase::Head(deadline),
                        Expired::Idle => Phase::Idle(deadline),
                    } {
                        return kind;
                    }
                }
                _ = self.changed.notified() => {}
            }
        }
    }
}

/// A stream that tells its [`Watch`] when bytes arrive.
pub struct TimedIo<S> {
    inner: S,
    watch: Arc<Watch>,
}

impl<S> TimedIo<S> {
    pub fn new(inner: S, watch: Arc<Watch>) -> Self {
        Self { inner, watch }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.bytes_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: Duration = Duration::from_millis(100);
    const IDLE: Duration = Duration::from_millis(300);

    fn about(elapsed: Duration, expected: Duration) -> bool {
        elapsed >= expected && elapsed < expected + Duration::from_millis(80)
    }

    #[tokio::test]
    async fn phases_have_their_own_deadlines() {
        let w = Watch::new(HEAD, IDLE);
        let start = Instant::now();
        assert_eq!(w.expired().await, Expired::HeaderRead);
        assert!(about(start.elapsed(), HEAD), "{:?}", start.elapsed());

        w.request_started();
        assert!(
            tokio::time::timeout(IDLE * 2, w.expired()).await.is_err(),
            "a busy connection never expires"
        );
        w.request_finished();
        let idle_from = Instant::now();
        assert_eq!(w.expired().await, Expired::Idle);
        assert!(
            about(idle_from.elapsed(), IDLE),
            "{:?}",
            idle_from.elapsed()
        );

        // A byte after an idle spell starts the head deadline (shorter than what is left
        // of the idle one).
        w.request_finished();
        tokio::time::sleep(Duration::from_millis(50)).await;
        w.bytes_read();
        let head_from = Instant::now();
        assert_eq!(w.expired().await, Expired::HeaderRead);
        assert!(
            about(head_from.elapsed(), HEAD),
            "{:?}",
            head_from.elapsed()
        );
    }
}
