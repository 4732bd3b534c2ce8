//! Ids for server events, items and responses (`evt_…`, `item_…`, `resp_…`).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Gives each generator its own tag, so ids from two connections never collide in one process.
static NEXT_GENERATOR_TAG: AtomicU32 = AtomicU32::new(1);

/// Makes ids `{prefix}_{generator tag:08x}{counter:08x}`, unique within the process. Shareable
/// between tasks (`&self`, atomic counter).
#[derive(Debug)]
pub struct IdGenerator {
    tag: u32,
    counter: AtomicU64,
}

impl IdGenerator {
    pub fn new() -> Self {
        IdGenerator {
            tag: NEXT_GENERATOR_TAG.fetch_add(1, Ordering::Relaxed),
            counter: AtomicU64::new(0),
        }
    }

    /// The next id with `prefix`, e.g. `next("evt")` -> `evt_0000000300000001`.
    pub fn next(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{prefix}_{:08x}{n:08x}", self.tag)
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_generators_and_calls() {
        let a = IdGenerator::new();
        let b = IdGenerator::new();
        let ids: std::collections::HashSet<String> = (0..100)
            .flat_map(|_| [a.next("evt"), b.next("evt")])
            .collect();
        assert_eq!(ids.len(), 200);
        assert!(a.next("item").starts_with("item_"));
    }
}
