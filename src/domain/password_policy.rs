//! The password rules (`[passwords]`): length, not a common password, not
//! the username, and how long a password lasts. Pure: the caller passes `now`.

use std::collections::HashSet;
use std::sync::OnceLock;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

/// The 10,000 most common passwords, most common first, one a line
/// (shipped in the repo, compiled in: read once, no file to lose).
const COMMON: &str = include_str!("../../assets/common-passwords.txt");

/// `[passwords]` in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Fewest characters (at least 8). Unset: `[policy] password_min_length`.
    #[serde(default)]
    pub min_length: Option<usize>,
    /// Refuse the 10,000 most common passwords (compared case-insensitively).
    #[serde(default = "yes")]
    pub refuse_common: bool,
    /// A password older than this must be changed at the next login (unset or 0: never).
    #[serde(default)]
    pub max_age_days: Option<u32>,
    /// Tell the holder this many days before the password expires (0: no warning).
    #[serde(default = "default_warn_days")]
    pub warn_days: u32,
}

fn yes() -> bool {
    true
}

fn default_warn_days() -> u32 {
    7
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: None,
            refuse_common: true,
            max_age_days: None,
            warn_days: default_warn_days(),
        }
    }
}

/// The common-password list, lower-cased, built on first use.
fn common() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON
            .lines()
            .map(|l| l.trim().to_lowercase())
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// Whether `password` is one of the common passwords (any case).
pub fn is_common(password: &str) -> bool {
    common().contains(&password.to_lowercase())
}

/// How many passwords the shipped list holds.
pub fn common_count() -> usize {
    common().len()
}

impl PasswordPolicy {
    /// The rule a new password for `name` breaks, as one line; `None` if it
    /// passes. `fallback_min` is `[policy] password_min_length`.
    pub fn broken_rule(&self, fallback_min: usize, name: &str, password: &str) -> Option<String> {
        let min = self.min_length.unwrap_or(fallback_min);
        if password.chars().count() < min {
            return Some(format!("password too short: at least {min} characters"));
        }
        if password.chars().any(char::is_control) {
            return Some("password refused: it must not contain control characters".into());
        }
        if password.eq_ignore_ascii_case(name) {
            return Some("password refused: it must not be the username".into());
        }
        if self.refuse_common && is_common(password) {
            return Some("password refused: it is one of the 10,000 most common passwords".into());
        }
        None
    }

    /// When a password set at `set_at` expires (`None`: it does not).
    pub fn expires_at(&self, set_at: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let days = self.max_age_days.filter(|d| *d > 0)?;
        Some(set_at? + Duration::days(i64::from(days)))
    }

    /// The password line of `user show` and the console's detail.
    pub fn describe(
        &self,
        creds: &super::account::Credentials,
        now: DateTime<Utc>,
        zone: crate::locale::Zone,
    ) -> String {
        if creds.password_hash.is_none() {
            return "not set".into();
        }
        let at = |t: DateTime<Utc>| zone.minute(t);
        let set = creds
            .password_set_at
            .map_or_else(|| "set".to_string(), |t| format!("set {}", at(t)));
        if creds.password_temporary {
            return format!("{set}, temporary: to be changed at the next login");
        }
        match self.expires_at(creds.password_set_at) {
            Some(t) if t <= now => {
                format!("{set}, expired {}: to be changed at the next login", at(t))
            }
            Some(t) => format!("{set}, expires {}", at(t)),
            None => set,
        }
    }

    /// Whether a password set at `set_at` has expired by `now`.
    pub fn expired(&self, set_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        self.expires_at(set_at).is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_shipped_list_holds_ten_thousand_and_matches_any_case() {
        assert_eq!(common_count(), 10_000);
        assert!(is_common("password1"));
        assert!(is_common("PassWord1"));
        assert!(is_common("Qwertyuiop"));
        assert!(!is_common("violet staple orbit 42"));
    }

    #[test]
    fn each_rule_is_named() {
        let p = PasswordPolicy::default();
        assert_eq!(
            p.broken_rule(12, "bob", "short").unwrap(),
            "password too short: at least 12 characters"
        );
        let p = PasswordPolicy {
            min_length: Some(8),
            ..Default::default()
        };
        assert!(p
            .broken_rule(12, "bob", "Password123")
            .unwrap()
            .contains("most common"));
        assert!(p
            .broken_rule(12, "bobbybobby", "BobbyBobby")
            .unwrap()
            .contains("username"));
        assert!(p
            .broken_rule(12, "bob", "tab\there ok")
            .unwrap()
            .contains("control"));
        assert_eq!(p.broken_rule(12, "bob", "violet staple orbit"), None);
        let off = PasswordPolicy {
            refuse_common: false,
            min_length: Some(8),
            ..Default::default()
        };
        assert_eq!(off.broken_rule(12, "bob", "password123"), None);
    }

    #[test]
    fn a_password_expires_after_max_age_days() {
        let set = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let p = PasswordPolicy {
            max_age_days: Some(90),
            ..Default::default()
        };
        assert_eq!(p.expires_at(Some(set)), Some(set + Duration::days(90)));
        assert!(!p.expired(Some(set), set + Duration::days(89)));
        assert!(p.expired(Some(set), set + Duration::days(90)));
        assert_eq!(PasswordPolicy::default().expires_at(Some(set)), None);
        assert_eq!(p.expires_at(None), None);
    }
}
