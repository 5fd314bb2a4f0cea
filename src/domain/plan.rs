//! What the lifecycle policies will do to an account, and when: the one
//! rule set behind `lifecycle preview`, `lifecycle run` and the scheduler.
//! Pure: `today` is passed in.

use chrono::{Duration, NaiveDate};
use serde::Serialize;

use super::account::{Account, DisableReason, Status};
use super::policy::Policy;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannedKind {
    Activate,
    Disable(DisableReason),
    Delete,
    Purge,
}

impl PlannedKind {
    pub fn describe(self) -> String {
        match self {
            PlannedKind::Activate => "activate".into(),
            PlannedKind::Disable(r) => format!("disable ({r})"),
            PlannedKind::Delete => "delete".into(),
            PlannedKind::Purge => "purge".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Planned {
    pub username: String,
    /// The day the action falls due (it runs on the first pass on or after it).
    pub due: NaiveDate,
    pub action: PlannedKind,
    pub why: String,
}

fn days(n: u32) -> Duration {
    Duration::days(i64::from(n))
}

/// The next state-changing action the policies will take for this account, if any.
/// Only the earliest matters: once it runs, the account is in a new state with new rules.
pub fn next_action(account: &Account, policy: &Policy) -> Option<Planned> {
    let plan = |due: NaiveDate, action: PlannedKind, why: String| Planned {
        username: account.username.clone(),
        due,
        action,
        why,
    };
    match account.status {
        Status::Deleted => {
            let deleted = account.deleted_at?.date_naive();
            (policy.retention_days > 0).then(|| {
                plan(
                    deleted + days(policy.retention_days),
                    PlannedKind::Purge,
                    format!(
                        "deleted on {deleted}; retention is {} days",
                        policy.retention_days
                    ),
                )
            })
        }
        Status::Disabled => {
            let disabled = account.disabled_at?.date_naive();
            (policy.delete_after_disable_days > 0).then(|| {
                plan(
                    disabled + days(policy.delete_after_disable_days),
                    PlannedKind::Delete,
                    format!(
                        "disabled on {disabled}; deleted {} days after disable",
                        policy.delete_after_disable_days
                    ),
                )
            })
        }
        Status::Staged | Status::Active => {
            let mut candidates: Vec<Planned> = Vec::new();
            if account.status == Status::Staged {
                candidates.push(plan(
                    account.start_date,
                    PlannedKind::Activate,
                    format!("starts on {}", account.start_date),
                ));
            }
            if let Some(end) = account.end_date {
                candidates.push(plan(
                    end + days(1),
                    PlannedKind::Disable(DisableReason::Expired),
                    format!("end date {end}"),
                ));
            }
            let started = account.start_date.max(account.created_at.date_naive());
            match account.last_login {
                Some(last) if policy.inactivity_days > 0 && !account.inactivity_exempt => {
                    let last = last.date_naive();
                    candidates.push(plan(
                        last + days(policy.inactivity_days),
                        PlannedKind::Disable(DisableReason::Inactive),
                        format!(
                            "last login {last}; inactivity limit {} days",
                            policy.inactivity_days
                        ),
                    ));
                }
                None if policy.never_logged_in_days > 0 && !account.inactivity_exempt => {
                    candidates.push(plan(
                        started + days(policy.never_logged_in_days),
                        PlannedKind::Disable(DisableReason::NeverLoggedIn),
                        format!(
                            "never logged in since {started}; limit {} days",
                            policy.never_logged_in_days
                        ),
                    ));
                }
                _ => {}
            }
            // Activation comes first on its day; otherwise the earliest wins.
            candidates
                .into_iter()
                .min_by_key(|p| (p.due, p.action != PlannedKind::Activate))
        }
    }
}

/// Expiry warnings still to come for this account (each threshold once).
pub fn warnings(account: &Account, policy: &Policy, today: NaiveDate) -> Vec<(NaiveDate, u32)> {
    let Some(end) = account.end_date else {
        return vec![];
    };
    if !matches!(account.status, Status::Active | Status::Staged) {
        return vec![];
    }
    let mut out: Vec<(NaiveDate, u32)> = policy
        .expiry_warning_days
        .iter()
        .map(|d| (end - days(*d), *d))
        .filter(|(date, _)| *date >= today)
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::{TimeZone, Utc};

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn account(status: Status, start: &str, end: Option<&str>) -> Account {
        crate::domain::account::sample(status, start, end)
    }

    fn policy() -> Policy {
        Policy {
            inactivity_days: 90,
            never_logged_in_days: 30,
            delete_after_disable_days: 90,
            retention_days: 365,
            ..Policy::default()
        }
    }

    #[test]
    fn table_of_next_actions() {
        let at = |s: &str| Utc.from_utc_datetime(&day(s).and_hms_opt(8, 0, 0).unwrap());
        let mut staged = account(Status::Staged, "2026-03-01", Some("2026-09-01"));
        staged.inactivity_exempt = true;
        let mut active = account(Status::Active, "2026-01-01", Some("2026-03-31"));
        active.last_login = Some(at("2026-03-01"));
        let never = account(Status::Active, "2026-01-01", None);
        let mut idle = account(Status::Active, "2026-01-01", None);
        idle.last_login = Some(at("2026-02-01"));
        let mut exempt = idle.clone();
        exempt.inactivity_exempt = true;
        let mut disabled = account(Status::Disabled, "2026-01-01", None);
        disabled.disabled_at = Some(at("2026-02-01"));
        let mut deleted = account(Status::Deleted, "2026-01-01", None);
        deleted.deleted_at = Some(at("2026-02-01"));
        let table: Vec<(&Account, Option<(&str, PlannedKind)>)> = vec![
            (&staged, Some(("2026-03-01", PlannedKind::Activate))),
            (
                &active,
                Some(("2026-04-01", PlannedKind::Disable(DisableReason::Expired))),
            ),
            (
                &never,
                Some((
                    "2026-01-31",
                    PlannedKind::Disable(DisableReason::NeverLoggedIn),
                )),
            ),
            (
                &idle,
                Some(("2026-05-02", PlannedKind::Disable(DisableReason::Inactive))),
            ),
            (&exempt, None),
            (&disabled, Some(("2026-05-02", PlannedKind::Delete))),
            (&deleted, Some(("2027-02-01", PlannedKind::Purge))),
        ];
        for (account, expected) in table {
            let got = next_action(account, &policy()).map(|p| (p.due, p.action));
            assert_eq!(
                got,
                expected.map(|(d, k)| (day(d), k)),
                "{:?} {:?}",
                account.status,
                account.last_login
            );
        }
    }

    #[test]
    fn warnings_fall_at_each_threshold_before_the_end() {
        let a = account(Status::Active, "2026-01-01", Some("2026-03-31"));
        let w = warnings(&a, &policy(), day("2026-03-20"));
        assert_eq!(w, vec![(day("2026-03-24"), 7), (day("2026-03-30"), 1)]);
    }
}
