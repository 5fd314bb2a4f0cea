//! Failure counters per source address and per account, with lockout and
//! exponential backoff. Time is passed in.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Clone, Debug)]
pub struct ThrottleConfig {
    /// Failures within `window` that lock the address or account.
    pub max_failures: u32,
    pub window: Duration,
    /// First lockout; each further lockout doubles, up to `max_lockout`.
    pub lockout: Duration,
    pub max_lockout: Duration,
}

#[derive(Clone, Debug, Default)]
struct Counter {
    failures: u32,
    window_start: Option<DateTime<Utc>>,
    locked_until: Option<DateTime<Utc>>,
    lockouts: u32,
}

#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    counters: HashMap<String, Counter>,
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Self {
        Throttle {
            config,
            counters: HashMap::new(),
        }
    }

    /// `Some(until)` while `key` is locked out.
    pub fn locked(&self, key: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.counters
            .get(key)?
            .locked_until
            .filter(|until| *until > now)
    }

    /// Counts a failure; returns `Some(until)` if this failure locked the key.
    /// A failure while the key is already locked counts for nothing: attempts
    /// refused by a lockout neither extend nor double it (else anyone could
    /// keep an account locked for ever by knocking).
    pub fn fail(&mut self, key: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let window = chrono::Duration::from_std(self.config.window).unwrap_or_default();
        let counter = self.counters.entry(key.to_string()).or_default();
        if counter.locked_until.is_some_and(|until| until > now) {
            return None;
        }
        if counter
            .window_start
            .is_none_or(|start| now - start > window)
        {
            counter.window_start = Some(now);
            counter.failures = 0;
        }
        counter.failures += 1;
        if counter.failures < self.config.max_failures {
            return None;
        }
        counter.lockouts += 1;
        counter.failures = 0;
        counter.window_start = None;
        let factor = 2u32.saturating_pow(counter.lockouts.saturating_sub(1).min(16));
        let lock = self
            .config
            .lockout
            .saturating_mul(factor)
            .min(self.config.max_lockout);
        let until = now + chrono::Duration::from_std(lock).unwrap_or_default();
        counter.locked_until = Some(until);
        Some(until)
    }

    /// A success clears the failures (not the backoff history of an address).
    pub fn succeed(&mut self, key: &str) {
        if let Some(counter) = self.counters.get_mut(key) {
            counter.failures = 0;
            counter.window_start = None;
            counter.locked_until = None;
        }
    }

    /// Every key locked right now, with its end.
    pub fn lockouts(&self, now: DateTime<Utc>) -> Vec<(String, DateTime<Utc>)> {
        let mut list: Vec<(String, DateTime<Utc>)> = self
            .counters
            .iter()
            .filter_map(|(k, c)| c.locked_until.filter(|u| *u > now).map(|u| (k.clone(), u)))
            .collect();
        list.sort();
        list
    }

    /// Lifts a lockout and forgets its history. Returns whether there was one.
    pub fn unlock(&mut self, key: &str, now: DateTime<Utc>) -> bool {
        match self.counters.remove(key) {
            Some(c) => c.locked_until.is_some_and(|u| u > now),
            None => false,
        }
    }

    /// Drops counters with nothing left to remember (bounded memory under a flood of addresses).
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let window = chrono::Duration::from_std(self.config.window).unwrap_or_default();
        self.counters.retain(|_, c| {
            c.locked_until.is_some_and(|u| u > now)
                || c.window_start.is_some_and(|s| now - s <= window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(ThrottleConfig {
            max_failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(10),
            max_lockout: Duration::from_secs(25),
        })
    }

    #[test]
    fn locks_after_max_failures_and_backs_off_exponentially() {
        let mut t = throttle();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(t.fail("ip", t0), None);
        assert_eq!(t.fail("ip", t0), None);
        let until = t.fail("ip", t0).unwrap();
        assert_eq!((until - t0).num_seconds(), 10);
        assert!(t.locked("ip", t0).is_some());
        assert!(t.locked("ip", until).is_none());
        for _ in 0..2 {
            t.fail("ip", until);
        }
        assert_eq!((t.fail("ip", until).unwrap() - until).num_seconds(), 20);
        let later = until + chrono::Duration::seconds(100);
        for _ in 0..2 {
            t.fail("ip", later);
        }
        assert_eq!(
            (t.fail("ip", later).unwrap() - later).num_seconds(),
            25,
            "capped"
        );
    }

    #[test]
    fn attempts_during_a_lockout_neither_extend_nor_double_it() {
        let mut t = throttle();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for _ in 0..2 {
            t.fail("user:root", t0);
        }
        let until = t.fail("user:root", t0).unwrap();
        for s in 0..50 {
            assert_eq!(
                t.fail("user:root", t0 + chrono::Duration::seconds(s % 9)),
                None
            );
        }
        assert_eq!(t.locked("user:root", t0), Some(until));
        assert_eq!(t.lockouts(t0), vec![("user:root".to_string(), until)]);
        assert!(t.unlock("user:root", t0));
        assert!(t.locked("user:root", t0).is_none());
        assert!(!t.unlock("user:root", t0));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let mut t = throttle();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        t.fail("a", t0);
        t.fail("a", t0);
        assert_eq!(t.fail("a", t0 + chrono::Duration::seconds(61)), None);
        t.succeed("a");
        assert!(t.locked("a", t0).is_none());
    }
}
