//! The lifecycle sweep and its preview. The sweep reads the due-date index up
//! to today (cost proportional to what is due), applies each action as its
//! own transaction with its audit event, and catches up after downtime: an
//! action takes effect as of its due date, so the next one in the chain
//! (delete after disable, purge after delete) falls due on time too.

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use super::admins::{keep_an_admin, reachable_admin};
use super::authz::{allowed, Permission};
use super::{Actor, Error, Result, Services};
use crate::domain::lifecycle::{self, Transition};
use crate::domain::plan::{next_action, warnings, Planned, PlannedKind};
use crate::domain::{Account, DisableReason, Status};

/// Safety net: no account takes more steps than this in one pass.
const MAX_STEPS: usize = 4;
/// Due accounts per transaction (and flush).
const CHUNK: usize = 500;

/// Sends the most urgent expiry warning due for one account, if any.
fn warn_one(tx: &mut super::Tx<'_>, name: &str, thresholds: &[u32]) -> Result<Option<PreviewItem>> {
    let Some(account) = tx.get(name)? else {
        return Ok(None);
    };
    let Some(end) = account.end_date else {
        return Ok(None);
    };
    if !matches!(account.status, Status::Active | Status::Staged) {
        return Ok(None);
    }
    let reached: Vec<u32> = thresholds
        .iter()
        .copied()
        .filter(|d| end - Duration::days(i64::from(*d)) <= tx.today())
        .filter(|d| !account.warnings_sent.contains(&(end, *d)))
        .collect();
    let Some(most_urgent) = reached.iter().copied().min() else {
        return Ok(None);
    };
    let mut new = account.clone();
    for d in &reached {
        new.warnings_sent.insert((end, *d));
    }
    let days_left = (end - tx.today()).num_days();
    tx.stage(Some(&account), Some(new.clone()));
    tx.event(
        "lifecycle.warn",
        Some(name),
        vec![],
        Some(format!(
            "ends {end}: {days_left} days left ({most_urgent}-day warning)"
        )),
    );
    tx.notify(
        "expiry_warning",
        &new,
        &[("threshold", most_urgent.to_string())],
    )?;
    Ok(Some(PreviewItem {
        username: name.to_string(),
        date: tx.today(),
        action: format!("warn sponsor ({days_left} days left)"),
        why: format!("end date {end}"),
    }))
}

/// Applies the next due action of one account, if any, within `tx`.
fn apply_due_step(tx: &mut super::Tx<'_>, name: &str) -> Result<Option<PreviewItem>> {
    let Some(account) = tx.get(name)? else {
        return Ok(None);
    };
    let Some(planned) = next_action(&account, &tx.config().policy) else {
        return Ok(None);
    };
    if planned.due > tx.today() {
        return Ok(None);
    }
    let action = match planned.action {
        PlannedKind::Activate => "lifecycle.activate",
        PlannedKind::Disable(_) => "lifecycle.disable",
        PlannedKind::Delete => "lifecycle.delete",
        PlannedKind::Purge => "lifecycle.purge",
    };
    let new = simulate(&account, &planned).map(|mut new| {
        new.updated_by = tx.actor.name.clone();
        new
    });
    let detail = format!(
        "{} due {}: {}",
        planned.action.describe(),
        planned.due,
        planned.why
    );
    if let Err(refusal) = keep_an_admin(tx, &account, new.as_ref(), "this sweep") {
        return keep_last_admin(tx, &account, &planned, &refusal.to_string());
    }
    match &new {
        Some(next) => tx.put(action, Some(&account), Some(next.clone()), Some(detail)),
        None => super::accounts::purge_in(tx, &account, action, Some(detail))?,
    }
    if let Some(new) = &new {
        match planned.action {
            PlannedKind::Disable(_) => tx.notify("disabled", new, &[])?,
            PlannedKind::Delete => tx.notify("deleted", new, &[])?,
            _ => {}
        }
    }
    Ok(Some(PreviewItem {
        username: name.to_string(),
        date: planned.due,
        action: planned.action.describe(),
        why: planned.why,
    }))
}

/// The sweep never locks the last active admin out: instead of disabling it
/// for inactivity it exempts it from that rule (as the first admin is from
/// the start), recorded as `lifecycle.keep` with the reason. Anything else
/// that would cut it off is skipped and recorded as `lifecycle.skip`.
fn keep_last_admin(
    tx: &mut super::Tx<'_>,
    account: &Account,
    planned: &Planned,
    refusal: &str,
) -> Result<Option<PreviewItem>> {
    let inactivity = matches!(
        planned.action,
        PlannedKind::Disable(DisableReason::Inactive | DisableReason::NeverLoggedIn)
    );
    let not_applied = format!(
        "{} due {} not applied: {refusal}",
        planned.action.describe(),
        planned.due
    );
    if inactivity && !account.inactivity_exempt {
        let mut kept = account.clone();
        kept.inactivity_exempt = true;
        kept.updated_at = tx.now;
        kept.updated_by = tx.actor.name.clone();
        tx.put(
            "lifecycle.keep",
            Some(account),
            Some(kept),
            Some(format!("{not_applied}; exempted from the inactivity rule")),
        );
        return Ok(Some(PreviewItem {
            username: account.username.clone(),
            date: tx.today(),
            action: "keep: exempt from inactivity".into(),
            why: "the last active admin who can log in".into(),
        }));
    }
    tx.event(
        "lifecycle.skip",
        Some(&account.username),
        vec![],
        Some(not_applied),
    );
    Ok(None)
}

fn inactivity(reason: DisableReason) -> bool {
    matches!(
        reason,
        DisableReason::Inactive | DisableReason::NeverLoggedIn
    )
}

/// An admin who can log in today and the first disable the plan holds for
/// it, if any: (due date, whether for inactivity).
struct AdminCutoff {
    name: String,
    cut: Option<(NaiveDate, bool)>,
}

/// Whether the sweep will keep `name` instead of disabling it for
/// inactivity as `planned`: it is an admin who can log in, and every other
/// such admin is cut off earlier — the sweep takes due accounts by date,
/// then name, so among those due together the last one is kept.
fn kept_by_the_sweep(cutoffs: &[AdminCutoff], name: &str, planned: &Planned) -> bool {
    let PlannedKind::Disable(reason) = planned.action else {
        return false;
    };
    if !inactivity(reason) || !cutoffs.iter().any(|c| c.name == name) {
        return false;
    }
    !cutoffs.iter().any(|other| {
        other.name != name
            && other
                .cut
                .is_none_or(|(due, _)| (due, other.name.as_str()) > (planned.due, name))
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct PreviewItem {
    pub username: String,
    pub date: NaiveDate,
    pub action: String,
    pub why: String,
}

fn as_of(date: NaiveDate) -> chrono::DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// The account after `planned` takes effect (as of its due date).
fn simulate(account: &Account, planned: &Planned) -> Option<Account> {
    let when = as_of(planned.due);
    let mut next = match planned.action {
        PlannedKind::Activate => {
            let mut a = account.clone();
            a.status = Status::Active;
            a
        }
        PlannedKind::Disable(reason) => lifecycle::apply(
            account,
            &Transition::Disable {
                reason,
                note: Some(planned.why.clone()),
            },
            when,
        )
        .ok()?,
        PlannedKind::Delete => lifecycle::apply(account, &Transition::Delete, when).ok()?,
        PlannedKind::Purge => return None,
    };
    next.updated_at = when;
    Some(next)
}

/// What the policies will do to one account up to `until`: its steps in
/// order (each as of its due date), then the expiry warnings sent while it
/// is still active.
fn plan_of(
    mut account: Account,
    name: &str,
    until: NaiveDate,
    today: NaiveDate,
    policy: &crate::domain::Policy,
    cutoffs: &[AdminCutoff],
) -> Vec<PreviewItem> {
    let mut out = Vec::new();
    // Taken before the steps change the account.
    let warned = warnings(&account, policy, today);
    let end_date = account.end_date;
    let mut cutoff = None;
    for _ in 0..MAX_STEPS {
        let Some(planned) = next_action(&account, policy) else {
            break;
        };
        if planned.due > until {
            break;
        }
        if kept_by_the_sweep(cutoffs, name, &planned) {
            out.push(PreviewItem {
                username: name.to_string(),
                date: planned.due.max(today),
                action: "keep: exempt from inactivity".into(),
                why: format!(
                    "{} due: the last active admin who can log in",
                    planned.action.describe()
                ),
            });
            account.inactivity_exempt = true;
            continue;
        }
        cutoff = cutoff.or(Some(planned.due.max(today)));
        out.push(PreviewItem {
            username: name.to_string(),
            date: planned.due.max(today),
            action: planned.action.describe(),
            why: planned.why.clone(),
        });
        match simulate(&account, &planned) {
            Some(next) => account = next,
            None => break,
        }
    }
    // Warnings only while the account is still active by then.
    for (date, days) in warned {
        if date <= until && cutoff.is_none_or(|c| date < c) {
            out.push(PreviewItem {
                username: name.to_string(),
                date,
                action: format!("warn sponsor ({days} days left)"),
                why: format!("end date {}", end_date.unwrap_or(date)),
            });
        }
    }
    out
}

impl Services {
    /// Expiry warnings: for accounts ending within the largest threshold, the
    /// most urgent threshold reached and not yet warned about is sent once;
    /// thresholds passed during downtime are marked as covered by it.
    fn send_expiry_warnings(&self, actor: &Actor) -> Result<Vec<PreviewItem>> {
        let today = self.today();
        let thresholds = self.config().policy.expiry_warning_days.clone();
        let Some(max) = thresholds.iter().copied().max() else {
            return Ok(vec![]);
        };
        let names: Vec<String> = {
            let guard = self.indexes()?;
            let indexes = guard
                .as_ref()
                .ok_or_else(|| Error::Failed("indexes not loaded".into()))?;
            indexes.ending_between(today, today + Duration::days(i64::from(max)))
        };
        let mut done = Vec::new();
        for chunk in names.chunks(CHUNK) {
            let items = self.write(actor, |tx| {
                let mut items = Vec::new();
                for name in chunk {
                    items.extend(warn_one(tx, name, &thresholds)?);
                }
                Ok(items)
            })?;
            done.extend(items);
        }
        Ok(done)
    }

    fn require_lifecycle(&self, actor: &Actor) -> Result<()> {
        if allowed(actor, Permission::RunLifecycle, None) {
            Ok(())
        } else {
            Err(self.deny(actor, Permission::RunLifecycle, None))
        }
    }

    /// Every action the policies will take up to `until`, in date order.
    pub fn lifecycle_preview(&self, actor: &Actor, until: NaiveDate) -> Result<Vec<PreviewItem>> {
        let mut out = Vec::new();
        self.lifecycle_preview_each(actor, until, &mut |item| {
            out.push(item);
            Ok(())
        })?;
        Ok(out)
    }

    /// `lifecycle_preview`, handed to `visit` item by item in (date,
    /// account) order, never as a list of every item. The accounts are read
    /// once, in username order (sequential reads: a read in date order
    /// scattered over the store cost sled a page per account, and held
    /// those pages), each planned as it comes; the items are put in date
    /// order in bounded runs (see `runs`). The first error `visit` returns
    /// ends the walk.
    pub fn lifecycle_preview_each(
        &self,
        actor: &Actor,
        until: NaiveDate,
        visit: &mut dyn FnMut(PreviewItem) -> Result<()>,
    ) -> Result<()> {
        self.preview_in_runs(actor, until, super::runs::RUN, visit)
    }

    /// `lifecycle_preview_each` with runs of `run` items.
    fn preview_in_runs(
        &self,
        actor: &Actor,
        until: NaiveDate,
        run: usize,
        visit: &mut dyn FnMut(PreviewItem) -> Result<()>,
    ) -> Result<()> {
        // Not ListAccounts: a sponsor lists only its own accounts, and the
        // plan names every account.
        if !allowed(actor, Permission::PreviewLifecycle, None) {
            return Err(self.deny(actor, Permission::PreviewLifecycle, None));
        }
        let today = self.today();
        let policy = &self.config().policy;
        let cutoffs = self.admin_cutoffs(until)?;
        let mut runs = super::runs::DateRuns::new(run);
        self.each_account(None, None, &mut |account| {
            let name = account.username.clone();
            for item in plan_of(account, &name, until, today, policy, &cutoffs) {
                runs.push(item)?;
            }
            Ok(true)
        })?;
        runs.finish(visit)
    }

    /// The admins who can log in today, each with the first planned
    /// disable up to `until` (due date, and whether for inactivity).
    fn admin_cutoffs(&self, until: NaiveDate) -> Result<Vec<AdminCutoff>> {
        let today = self.today();
        let admins: Vec<String> = {
            let guard = self.indexes()?;
            let indexes = guard
                .as_ref()
                .ok_or_else(|| Error::Failed("indexes not loaded".into()))?;
            indexes.admins().map(str::to_string).collect()
        };
        let policy = &self.config().policy;
        let mut out = Vec::new();
        for name in admins {
            let Some(mut account) = self.store().account(&name)? else {
                continue;
            };
            if !reachable_admin(&account, self.config(), today) {
                continue;
            }
            let mut cut = None;
            for _ in 0..MAX_STEPS {
                let Some(planned) = next_action(&account, policy).filter(|p| p.due <= until) else {
                    break;
                };
                if let PlannedKind::Disable(reason) = planned.action {
                    cut = Some((planned.due, inactivity(reason)));
                    break;
                }
                match simulate(&account, &planned) {
                    Some(next) => account = next,
                    None => break,
                }
            }
            out.push(AdminCutoff { name, cut });
        }
        Ok(out)
    }

    /// One pass: applies every action due today or earlier. With `dry_run`
    /// it only lists them.
    pub fn lifecycle_run(&self, actor: &Actor, dry_run: bool) -> Result<Vec<PreviewItem>> {
        self.require_lifecycle(actor)?;
        let today = self.today();
        if dry_run {
            return self.lifecycle_preview(actor, today);
        }
        let due: Vec<String> = {
            let guard = self.indexes()?;
            let indexes = guard
                .as_ref()
                .ok_or_else(|| Error::Failed("indexes not loaded".into()))?;
            indexes.due_until(today)
        };
        // Due accounts are handled in chunks: one transaction and one flush
        // per chunk, each account's steps with their own audit events.
        let mut done = Vec::new();
        for chunk in due.chunks(CHUNK) {
            let items = self.write(actor, |tx| {
                let mut items = Vec::new();
                for name in chunk {
                    for _ in 0..MAX_STEPS {
                        match apply_due_step(tx, name)? {
                            Some(item) => items.push(item),
                            None => break,
                        }
                    }
                }
                Ok(items)
            })?;
            done.extend(items);
        }
        done.extend(self.send_expiry_warnings(actor)?);
        done.extend(self.password_warnings_hourly(actor)?);
        done.extend(self.expire_requests(actor)?);
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Duration, TimeZone, Utc};

    use super::*;

    use crate::domain::{DisableReason, Kind};
    use crate::service::accounts::AccountInput;
    use crate::service::FixedClock;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap()
    }

    fn setup() -> (Services, Arc<FixedClock>, Actor) {
        crate::service::testkit::services()
    }

    fn create(s: &Services, admin: &Actor, name: &str, start: i64, end: Option<i64>, exempt: bool) {
        let today = s.today();
        let input = AccountInput {
            email: Some(format!("{name}@x.io")),
            display_name: Some(name.into()),
            kind: Some(if end.is_some() {
                Kind::Contractor
            } else {
                Kind::Employee
            }),
            start_date: Some(today + Duration::days(start)),
            end_date: end.map(|d| today + Duration::days(d)),
            inactivity_exempt: Some(exempt),
            ..Default::default()
        };
        s.create(admin, name, input).unwrap();
    }

    #[test]
    fn the_streamed_preview_is_every_account_plan_in_date_then_name_order() {
        let (s, clock, admin) = setup();
        // Accounts of every shape: starting later, ending soon or late, no
        // end, exempt, logged in or never, some disabled by hand.
        for i in 0..120i64 {
            let name = format!("u{:03}", (i * 37) % 120);
            let end = match i % 5 {
                0 => None,
                1 => Some(16 + i % 20),
                2 => Some(30 + i * 2),
                3 => Some(200 + i),
                _ => Some(340 + i % 20),
            };
            create(&s, &admin, &name, i % 4 * 5, end, i % 11 == 0);
            if i % 3 == 0 {
                s.login_succeeded(&name, "127.0.0.1".parse().unwrap(), "publickey", None, None)
                    .unwrap();
            }
            if i % 13 == 0 {
                s.disable(&admin, &name, DisableReason::Manual, Some("left".into()))
                    .unwrap();
            }
        }
        clock.advance(Duration::days(20));
        let until = s.today() + Duration::days(365);
        let streamed = s.lifecycle_preview(&admin, until).unwrap();
        // The same plans, account by account, sorted as a whole.
        let cutoffs = s.admin_cutoffs(until).unwrap();
        let mut expected = Vec::new();
        for i in 0..120 {
            let name = format!("u{i:03}");
            let account = s.store().account(&name).unwrap().unwrap();
            expected.extend(plan_of(
                account,
                &name,
                until,
                s.today(),
                &s.config().policy,
                &cutoffs,
            ));
        }
        expected.sort_by(|a, b| (a.date, &a.username).cmp(&(b.date, &b.username)));
        let show = |v: &[PreviewItem]| {
            v.iter()
                .map(|i| format!("{} {} {} ({})", i.date, i.username, i.action, i.why))
                .collect::<Vec<_>>()
        };
        assert!(expected.len() > 200, "{}", expected.len());
        assert_eq!(show(&streamed), show(&expected));
        // Sorted through runs spilled to files (as at a million accounts),
        // the same plan.
        let mut spilled = Vec::new();
        s.preview_in_runs(&admin, until, 7, &mut |i| {
            spilled.push(i);
            Ok(())
        })
        .unwrap();
        assert_eq!(show(&spilled), show(&expected));
    }

    fn state(s: &Services, name: &str) -> Option<(Status, Option<DisableReason>)> {
        s.store()
            .account(name)
            .unwrap()
            .map(|a| (a.status, a.disable_reason))
    }

    fn sweep(s: &Services) -> Vec<PreviewItem> {
        s.lifecycle_run(&Actor::system("lifecycle"), false).unwrap()
    }

    #[test]
    fn scenarios_over_time() {
        let (s, clock, admin) = setup();
        create(&s, &admin, "future", 10, Some(100), true);
        create(&s, &admin, "ending", 0, Some(20), true);
        create(&s, &admin, "never", 0, None, false);
        create(&s, &admin, "exempt", 0, None, true);
        create(&s, &admin, "worker", 0, None, false);
        s.login_succeeded(
            "worker",
            "127.0.0.1".parse().unwrap(),
            "publickey",
            None,
            None,
        )
        .unwrap();
        assert!(sweep(&s).is_empty(), "nothing is due on day 0");

        clock.advance(Duration::days(10));
        sweep(&s);
        assert_eq!(
            state(&s, "future"),
            Some((Status::Active, None)),
            "activated on its start date"
        );

        clock.advance(Duration::days(11)); // day 21: the end date (day 20) has passed
        sweep(&s);
        assert_eq!(
            state(&s, "ending"),
            Some((Status::Disabled, Some(DisableReason::Expired)))
        );
        assert_eq!(
            state(&s, "never"),
            Some((Status::Active, None)),
            "30 days not yet over"
        );

        clock.advance(Duration::days(10)); // day 31
        sweep(&s);
        assert_eq!(
            state(&s, "never"),
            Some((Status::Disabled, Some(DisableReason::NeverLoggedIn)))
        );
        assert_eq!(
            state(&s, "exempt"),
            Some((Status::Active, None)),
            "exempt from never-logged-in"
        );

        clock.advance(Duration::days(60)); // day 91: worker last logged in on day 0
        sweep(&s);
        assert_eq!(
            state(&s, "worker"),
            Some((Status::Disabled, Some(DisableReason::Inactive)))
        );
        assert_eq!(
            state(&s, "root"),
            Some((Status::Active, None)),
            "the first admin is exempt"
        );

        clock.advance(Duration::days(20)); // day 111: 90 days after the expiry took effect
        sweep(&s);
        assert_eq!(state(&s, "ending").map(|x| x.0), Some(Status::Deleted));
        assert_eq!(
            state(&s, "never").map(|x| x.0),
            Some(Status::Disabled),
            "its 90 days end on day 120"
        );
        assert!(s.check(&admin).unwrap().problems.is_empty());

        // And purged after the retention period; the trail keeps the story.
        clock.advance(Duration::days(366));
        sweep(&s);
        assert_eq!(state(&s, "ending"), None);
        let events = s
            .audit_tail(
                &admin,
                &crate::service::integrity::AuditFilter {
                    limit: 1000,
                    target: Some("ending".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "user.create",
                "lifecycle.warn",
                "lifecycle.disable",
                "lifecycle.delete",
                "lifecycle.purge"
            ]
        );
        assert!(s.check(&admin).unwrap().problems.is_empty());
    }

    #[test]
    fn one_pass_catches_up_after_downtime_as_of_each_due_date() {
        let (s, clock, admin) = setup();
        create(&s, &admin, "gone", 0, Some(5), true);
        // The server was down for 120 days: expiry (day 6) and delete (day 96) both fell due.
        clock.advance(Duration::days(120));
        let done = sweep(&s);
        let names: Vec<(&str, &str)> = done
            .iter()
            .map(|d| (d.username.as_str(), d.action.as_str()))
            .collect();
        assert!(
            names.contains(&("gone", "disable (expired)")) && names.contains(&("gone", "delete")),
            "{names:?}"
        );
        let account = s.store().account("gone").unwrap().unwrap();
        assert_eq!(account.status, Status::Deleted);
        assert_eq!(
            account.disabled_at.map(|d| d.date_naive()),
            Some(t0().date_naive() + Duration::days(6))
        );
        assert!(sweep(&s).is_empty(), "a second pass finds nothing");
    }

    #[test]
    fn preview_lists_what_will_happen_and_changes_nothing() {
        let (s, _clock, admin) = setup();
        create(&s, &admin, "ending", 0, Some(20), true);
        let until = s.today() + Duration::days(200);
        let items = s.lifecycle_preview(&admin, until).unwrap();
        let ending: Vec<&str> = items
            .iter()
            .filter(|i| i.username == "ending")
            .map(|i| i.action.as_str())
            .collect();
        assert_eq!(
            ending,
            [
                "warn sponsor (14 days left)",
                "warn sponsor (7 days left)",
                "warn sponsor (1 days left)",
                "disable (expired)",
                "delete"
            ]
        );
        assert_eq!(state(&s, "ending"), Some((Status::Active, None)));
    }

    #[test]
    fn of_two_admins_due_the_same_day_the_sweep_keeps_the_second_as_previewed() {
        let (s, clock, admin) = setup();
        for (name, byte) in [("amy", 3u8), ("bea", 4u8)] {
            create(&s, &admin, name, 0, None, false);
            s.update(
                &admin,
                name,
                AccountInput {
                    roles: Some(vec![crate::domain::Role::Admin]),
                    ..Default::default()
                },
            )
            .unwrap();
            use base64::Engine;
            let mut blob = Vec::new();
            for part in [&b"ssh-ed25519"[..], &[byte; 32][..]] {
                blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
                blob.extend_from_slice(part);
            }
            let line = format!(
                "ssh-ed25519 {}",
                base64::engine::general_purpose::STANDARD.encode(blob)
            );
            s.key_add(&admin, name, &line, None).unwrap();
        }
        // root (testkit) has no key: amy and bea are the admins who can log in.
        let plan = s
            .lifecycle_preview(&admin, s.today() + Duration::days(40))
            .unwrap();
        let of = |items: &[PreviewItem], who: &str| -> Vec<String> {
            items
                .iter()
                .filter(|i| i.username == who)
                .map(|i| i.action.clone())
                .collect()
        };
        assert_eq!(of(&plan, "amy"), ["disable (never_logged_in)"]);
        assert_eq!(of(&plan, "bea"), ["keep: exempt from inactivity"]);
        clock.advance(Duration::days(31));
        let done = sweep(&s);
        assert_eq!(of(&done, "amy"), of(&plan, "amy"));
        assert_eq!(of(&done, "bea"), of(&plan, "bea"));
        assert_eq!(state(&s, "bea"), Some((Status::Active, None)));
    }

    #[test]
    fn the_sweep_keeps_the_last_admin_reachable_and_records_why() {
        let (s, clock, admin) = setup();
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a@x";
        s.key_add(&admin, "root", key, None).unwrap();
        s.update(
            &admin,
            "root",
            AccountInput {
                inactivity_exempt: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        // A second admin who never logs in and has no way in: not reachable.
        create(&s, &admin, "idle", 0, None, false);
        s.update(
            &admin,
            "idle",
            AccountInput {
                roles: Some(vec![crate::domain::Role::Admin]),
                ..Default::default()
            },
        )
        .unwrap();
        // The preview says what the sweep will do.
        let plan = s
            .lifecycle_preview(&admin, s.today() + Duration::days(40))
            .unwrap();
        let planned = |who: &str| -> Vec<String> {
            plan.iter()
                .filter(|i| i.username == who)
                .map(|i| i.action.clone())
                .collect()
        };
        assert_eq!(planned("root"), ["keep: exempt from inactivity"]);
        assert_eq!(planned("idle")[0], "disable (never_logged_in)");
        clock.advance(Duration::days(31));
        let done = sweep(&s);
        // idle is disabled (never logged in); root is kept and exempted.
        assert_eq!(
            state(&s, "idle"),
            Some((Status::Disabled, Some(DisableReason::NeverLoggedIn)))
        );
        assert_eq!(state(&s, "root"), Some((Status::Active, None)));
        let root = s.load("root").unwrap();
        assert!(root.inactivity_exempt);
        assert!(
            done.iter()
                .any(|i| i.username == "root" && i.action.starts_with("keep")),
            "{done:?}"
        );
        let events = s
            .audit_tail(
                &admin,
                &crate::service::integrity::AuditFilter {
                    limit: 50,
                    action: Some("lifecycle.keep".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("last active admin"));
        // The next pass has nothing left to do for root.
        clock.advance(Duration::days(1));
        assert!(sweep(&s).iter().all(|i| i.username != "root"));
    }
}

#[cfg(test)]
mod session_tests {

    use chrono::Duration;

    use crate::domain::Kind;
    use crate::service::accounts::AccountInput;
    use crate::service::sessions::{Closing, SessionInfo, SessionKind};
    use crate::service::Actor;

    #[test]
    fn the_sweep_closes_the_live_session_of_an_account_that_expires() {
        let (s, clock, admin) = crate::service::testkit::services();
        let input = AccountInput {
            email: Some("bob@x.io".into()),
            display_name: Some("Bob".into()),
            kind: Some(Kind::Contractor),
            end_date: Some(s.today() + Duration::days(3)),
            ..Default::default()
        };
        s.create(&admin, "bob", input).unwrap();
        let now = s.now();
        let ticket = s.session_open(SessionInfo {
            id: 0,
            account: "bob".into(),
            address: "127.0.0.1".into(),
            method: "publickey".into(),
            fingerprint: None,
            started: now,
            last_input: now,
            kind: SessionKind::Exec,
            command: None,
        });
        clock.advance(Duration::days(3));
        s.lifecycle_run(&Actor::system("lifecycle"), false).unwrap();
        assert_eq!(
            *ticket.closing.borrow(),
            Closing::Open,
            "the end date itself is still a working day"
        );
        clock.advance(Duration::days(1));
        s.lifecycle_run(&Actor::system("lifecycle"), false).unwrap();
        assert!(
            matches!(&*ticket.closing.borrow(), Closing::Close(why) if why.contains("expired"))
        );
    }
}
