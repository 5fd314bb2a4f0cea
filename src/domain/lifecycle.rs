//! The lifecycle state machine: staged → active → disabled → deleted → purged.
//! Pure: every function takes `now` (or `today`) from the caller's clock.

use chrono::{DateTime, NaiveDate, Utc};

use super::account::{Account, DisableReason, Status};

/// A requested change of lifecycle state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    Disable {
        reason: DisableReason,
        note: Option<String>,
    },
    Enable,
    Delete,
    Restore,
    Purge,
}

/// Why a transition is not possible from the current state (a conflict).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("{0} is already {1}")]
    Already(String, &'static str),
    #[error("{0} is deleted: restore it first")]
    Deleted(String),
    #[error("{0} is not deleted: delete it before purging")]
    NotDeleted(String),
    #[error("{0}'s end date {1} has passed: extend it first (user extend {0} --end DATE)")]
    EndPassed(String, NaiveDate),
}

/// The state an account starts in.
pub fn initial_status(start: NaiveDate, today: NaiveDate) -> Status {
    if start > today {
        Status::Staged
    } else {
        Status::Active
    }
}

/// What the account's state is *today*, whether or not the sweeper has run:
/// a staged account whose start has come is active, an active one past its
/// end date is expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effective {
    Staged,
    Active,
    Expired,
    Disabled(DisableReason),
    Deleted,
}

impl Effective {
    pub fn as_str(self) -> &'static str {
        match self {
            Effective::Staged => "staged",
            Effective::Active => "active",
            Effective::Expired => "expired",
            Effective::Disabled(_) => "disabled",
            Effective::Deleted => "deleted",
        }
    }

    /// Whether this state answers to a status filter word (one of
    /// `STATUS_WORDS`); "disabled" also takes in the expired.
    pub fn matches(self, word: &str) -> bool {
        match word {
            "disabled" => matches!(self, Effective::Disabled(_) | Effective::Expired),
            other => self.as_str() == other,
        }
    }

    /// The stored status this corresponds to (for filters).
    pub fn status(self) -> Status {
        match self {
            Effective::Staged => Status::Staged,
            Effective::Active => Status::Active,
            Effective::Expired | Effective::Disabled(_) => Status::Disabled,
            Effective::Deleted => Status::Deleted,
        }
    }
}

/// The words a status filter takes (`user list --status`, the console's `f`).
pub const STATUS_WORDS: [&str; 5] = ["staged", "active", "expired", "disabled", "deleted"];

pub fn effective(account: &Account, today: NaiveDate) -> Effective {
    effective_of(
        account.status,
        account.disable_reason,
        account.start_date,
        account.end_date,
        today,
    )
}

/// `effective` from the four facts it depends on (the search index keeps
/// only these, not whole accounts).
pub fn effective_of(
    status: Status,
    reason: Option<DisableReason>,
    start: NaiveDate,
    end: Option<NaiveDate>,
    today: NaiveDate,
) -> Effective {
    match status {
        Status::Deleted => Effective::Deleted,
        Status::Disabled => Effective::Disabled(reason.unwrap_or(DisableReason::Manual)),
        Status::Staged | Status::Active if end.is_some_and(|end| end < today) => Effective::Expired,
        Status::Staged if start > today => Effective::Staged,
        Status::Staged | Status::Active => Effective::Active,
    }
}

/// Why a login is refused, whatever the credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginRefusal {
    #[error("account is not yet active (starts {0})")]
    NotStarted(NaiveDate),
    #[error("account expired on {0}")]
    Expired(NaiveDate),
    #[error("account is disabled ({0})")]
    Disabled(DisableReason),
    #[error("account is deleted")]
    Deleted,
}

/// Login is allowed only when the account is active and today is within
/// [start, end] — checked at login, not left to the sweeper.
pub fn login_allowed(account: &Account, today: NaiveDate) -> Result<(), LoginRefusal> {
    match account.status {
        Status::Deleted => return Err(LoginRefusal::Deleted),
        Status::Disabled => {
            return Err(LoginRefusal::Disabled(
                account.disable_reason.unwrap_or(DisableReason::Manual),
            ))
        }
        Status::Staged | Status::Active => {}
    }
    if account.start_date > today {
        return Err(LoginRefusal::NotStarted(account.start_date));
    }
    if let Some(end) = account.end_date.filter(|end| *end < today) {
        return Err(LoginRefusal::Expired(end));
    }
    Ok(())
}

/// Applies a transition to a copy of the account. `Purge` returns the account
/// unchanged: the caller removes it.
pub fn apply(
    account: &Account,
    transition: &Transition,
    now: DateTime<Utc>,
) -> Result<Account, LifecycleError> {
    let today = now.date_naive();
    let name = account.username.clone();
    let mut next = account.clone();
    match (transition, account.status) {
        (Transition::Disable { .. } | Transition::Enable, Status::Deleted) => {
            return Err(LifecycleError::Deleted(name))
        }
        (Transition::Disable { .. }, Status::Disabled) => {
            return Err(LifecycleError::Already(name, "disabled"))
        }
        (Transition::Disable { reason, note }, Status::Staged | Status::Active) => {
            next.status = Status::Disabled;
            next.disable_reason = Some(*reason);
            next.disable_note = note.clone();
            next.disabled_at = Some(now);
        }
        (Transition::Enable, Status::Staged | Status::Active) => {
            return Err(LifecycleError::Already(name, "enabled"))
        }
        (Transition::Enable, Status::Disabled) => {
            if let Some(end) = account.end_date.filter(|end| *end < today) {
                return Err(LifecycleError::EndPassed(name, end));
            }
            next.status = initial_status(account.start_date, today);
            next.disable_reason = None;
            next.disable_note = None;
            next.disabled_at = None;
        }
        (Transition::Delete, Status::Staged | Status::Active | Status::Disabled) => {
            next.status = Status::Deleted;
            next.deleted_at = Some(now);
            if next.disabled_at.is_none() {
                next.disabled_at = Some(now);
                next.disable_reason = Some(DisableReason::Manual);
            }
        }
        (Transition::Restore, Status::Deleted) => {
            // A restored account comes back disabled: an admin enables it on purpose.
            next.status = Status::Disabled;
            next.deleted_at = None;
            next.disable_reason = Some(next.disable_reason.unwrap_or(DisableReason::Manual));
        }
        (Transition::Restore, _) => return Err(LifecycleError::Already(name, "not deleted")),
        (Transition::Purge, Status::Deleted) => {}
        (Transition::Purge, _) => return Err(LifecycleError::NotDeleted(name)),
        (Transition::Delete, Status::Deleted) => {
            return Err(LifecycleError::Already(name, "deleted"))
        }
    }
    Ok(next)
}

/// Moving the end date: an account disabled only because it expired comes back
/// (the reason no longer holds); any other disabled account stays disabled.
pub fn extend(account: &Account, end: NaiveDate, today: NaiveDate) -> Account {
    let mut next = account.clone();
    next.end_date = Some(end);
    if account.status == Status::Disabled
        && account.disable_reason == Some(DisableReason::Expired)
        && end >= today
    {
        next.status = initial_status(account.start_date, today);
        next.disable_reason = None;
        next.disable_note = None;
        next.disabled_at = None;
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::TimeZone;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        Utc.from_utc_datetime(&day(s).and_hms_opt(12, 0, 0).unwrap())
    }

    fn account(status: Status, start: &str, end: Option<&str>) -> Account {
        crate::domain::account::sample(status, start, end)
    }

    fn manual() -> Transition {
        Transition::Disable {
            reason: DisableReason::Manual,
            note: Some("left".into()),
        }
    }

    #[test]
    fn transitions_table() {
        use Status::*;
        // (from, transition, today, expected status or None for a conflict)
        let table: Vec<(Status, Transition, &str, Option<Status>)> = vec![
            (Staged, manual(), "2026-06-01", Some(Disabled)),
            (Active, manual(), "2026-06-01", Some(Disabled)),
            (Disabled, manual(), "2026-06-01", None),
            (Deleted, manual(), "2026-06-01", None),
            (Active, Transition::Enable, "2026-06-01", None),
            (Disabled, Transition::Enable, "2026-06-01", Some(Active)),
            (Disabled, Transition::Enable, "2025-06-01", Some(Staged)),
            (Disabled, Transition::Enable, "2027-06-01", None),
            (Deleted, Transition::Enable, "2026-06-01", None),
            (Active, Transition::Delete, "2026-06-01", Some(Deleted)),
            (Disabled, Transition::Delete, "2026-06-01", Some(Deleted)),
            (Deleted, Transition::Delete, "2026-06-01", None),
            (Deleted, Transition::Restore, "2026-06-01", Some(Disabled)),
            (Active, Transition::Restore, "2026-06-01", None),
            (Deleted, Transition::Purge, "2026-06-01", Some(Deleted)),
            (Disabled, Transition::Purge, "2026-06-01", None),
            (Active, Transition::Purge, "2026-06-01", None),
        ];
        for (from, transition, today, expected) in table {
            let before = account(from, "2026-01-01", Some("2026-12-31"));
            let result = apply(&before, &transition, at(today));
            match expected {
                Some(status) => {
                    let after = result.unwrap_or_else(|e| panic!("{from:?} {transition:?}: {e}"));
                    assert_eq!(after.status, status, "{from:?} {transition:?} on {today}");
                }
                None => assert!(result.is_err(), "{from:?} {transition:?} should conflict"),
            }
        }
    }

    #[test]
    fn future_start_date_is_staged() {
        assert_eq!(
            initial_status(day("2027-01-01"), day("2026-11-22")),
            Status::Staged
        );
        assert_eq!(
            initial_status(day("2026-11-22"), day("2026-11-22")),
            Status::Active
        );
        let staged = account(Status::Staged, "2027-01-01", Some("2027-06-01"));
        assert_eq!(
            login_allowed(&staged, day("2026-11-22")),
            Err(LoginRefusal::NotStarted(day("2027-01-01")))
        );
        // On the start date the login works even before the sweeper activates it.
        assert_eq!(login_allowed(&staged, day("2027-01-01")), Ok(()));
        assert_eq!(effective(&staged, day("2027-01-01")), Effective::Active);
    }

    #[test]
    fn end_date_passed_refuses_login_before_any_sweep() {
        let active = account(Status::Active, "2026-01-01", Some("2026-03-31"));
        assert_eq!(login_allowed(&active, day("2026-03-31")), Ok(()));
        assert_eq!(
            login_allowed(&active, day("2026-04-01")),
            Err(LoginRefusal::Expired(day("2026-03-31")))
        );
        assert_eq!(effective(&active, day("2026-04-01")), Effective::Expired);
    }

    #[test]
    fn disabled_and_deleted_never_log_in() {
        let disabled = account(Status::Disabled, "2026-01-01", None);
        assert!(matches!(
            login_allowed(&disabled, day("2026-06-01")),
            Err(LoginRefusal::Disabled(DisableReason::Manual))
        ));
        let deleted = account(Status::Deleted, "2026-01-01", None);
        assert_eq!(
            login_allowed(&deleted, day("2026-06-01")),
            Err(LoginRefusal::Deleted)
        );
    }

    #[test]
    fn extending_an_expired_account_brings_it_back_but_not_a_manual_disable() {
        let mut expired = account(Status::Disabled, "2026-01-01", Some("2026-03-31"));
        expired.disable_reason = Some(DisableReason::Expired);
        let back = extend(&expired, day("2026-09-30"), day("2026-04-10"));
        assert_eq!(back.status, Status::Active);
        let manual = account(Status::Disabled, "2026-01-01", Some("2026-03-31"));
        let still = extend(&manual, day("2026-09-30"), day("2026-04-10"));
        assert_eq!(still.status, Status::Disabled);
    }
}
