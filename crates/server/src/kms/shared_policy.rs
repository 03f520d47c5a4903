//! Parsed key policies shared by every key whose policy text is the same.
//!
//! Most keys keep the policy CreateKey gives them (the default key policy of their account),
//! so most keys' policies are one text. Parsing it once per key cost memory and CPU
//! caches with every key in memory (100,000 keys were 100,000 copies of one parsed
//! document), and parsing on every key load. Keys of one text share one [`Policy`] here:
//! the map holds weak references, so a policy no key uses any more is dropped with its
//! last key, and its dead entry is swept when the map has doubled since the last sweep (at
//! [`SWEEP_FLOOR`] entries at the least).
//!
//! Sharing is sound because a parsed policy is a function of its text and kind alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use keyhold_policy::{Policy, PolicyError, PolicyKind};

/// Entries the map may hold before its first sweep.
const SWEEP_FLOOR: usize = 64;

struct Shared {
    by_text: HashMap<Box<str>, Weak<Policy>>,
    /// The size at which dead entries are swept next.
    sweep_at: usize,
}

static SHARED: Mutex<Option<Shared>> = Mutex::new(None);

/// The key policy `text`, parsed, shared with every other live key of the same text.
pub fn key_policy(text: &str) -> Result<Arc<Policy>, PolicyError> {
    if let Some(policy) = lookup(text) {
        return Ok(policy);
    }
    // Parsed outside the lock: two loads of one new text may both parse it; whichever
    // takes the lock second finds the other's entry and uses that one.
    let policy = Arc::new(Policy::parse(text, PolicyKind::Resource)?);
    let mut guard = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    let shared = guard.get_or_insert_with(|| Shared {
        by_text: HashMap::new(),
        sweep_at: SWEEP_FLOOR,
    });
    if let Some(live) = shared.by_text.get(text).and_then(Weak::upgrade) {
        return Ok(live);
    }
    if shared.by_text.len() >= shared.sweep_at {
        shared.by_text.retain(|_, policy| policy.strong_count() > 0);
        shared.sweep_at = (shared.by_text.len() * 2).max(SWEEP_FLOOR);
    }
    shared.by_text.insert(text.into(), Arc::downgrade(&policy));
    Ok(policy)
}

fn lookup(text: &str) -> Option<Arc<Policy>> {
    let guard = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    guard.as_ref()?.by_text.get(text).and_then(Weak::upgrade)
}

#[cfg(test)]
fn entries() -> usize {
    let guard = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    guard.as_ref().map_or(0, |s| s.by_text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(account: &str) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
        )
    }

    #[test]
    fn keys_of_one_policy_text_share_one_parsed_policy_while_any_holds_it() {
        // Accounts no other test uses: the map is process-wide.
        let text = policy("900000000001");
        let first = key_policy(&text).unwrap();
        let second = key_policy(&text).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        let other = key_policy(&policy("900000000002")).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert!(key_policy("{not json").is_err());

        // Once no key holds it, the next key of that text parses it again.
        let weak = Arc::downgrade(&first);
        drop((first, second));
        assert!(weak.upgrade().is_none());
        let again = key_policy(&text).unwrap();
        assert_eq!(Arc::strong_count(&again), 1);
    }

    #[test]
    fn dead_entries_are_swept_as_the_map_grows() {
        for i in 0..10 * SWEEP_FLOOR {
            // Each parsed and dropped at once: every entry but the newest is dead.
            drop(key_policy(&policy(&format!("91{i:010}"))).unwrap());
        }
        assert!(
            entries() <= 2 * SWEEP_FLOOR + 8,
            "{} entries for policies no key holds",
            entries()
        );
    }
}
