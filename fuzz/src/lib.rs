//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! The targets depend on the smallest crates that hold the code under test
//! (`keyhold-crypto`, `keyhold-proto`, `keyhold-policy`); instrumented builds of
//! `keyhold-server` (axum, tokio, bundled SQLite) would cost minutes per build. The audit
//! trail's decoder lives in `keyhold-server`, so [`audit`] compiles its two source files here.

pub mod audit;
pub mod keys;
pub mod null;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Drives a future that never waits (the generated dispatch with a trait whose every method
/// is the default "unsupported" answer) to completion without a runtime. `None` if it ever
/// returned `Pending`, which would mean the code under test now awaits something real.
pub fn run_ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// Splits `data` at the first line that is exactly `marker` (`"\n%%\n"` style): the text
/// before and after it. Without the marker, everything is the first part.
pub fn split_at_marker<'a>(data: &'a [u8], marker: &[u8]) -> (&'a [u8], &'a [u8]) {
    match data.windows(marker.len()).position(|w| w == marker) {
        Some(at) => (&data[..at], &data[at + marker.len()..]),
        None => (data, &[]),
    }
}

/// A stable, cheap hash of a name, used to map any operation name onto some operation so
/// that mutated names still reach a decoder.
pub fn name_hash(name: &[u8]) -> usize {
    name.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    }) as usize
}
