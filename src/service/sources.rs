//! Directory sync (`[[sources]]`): a run reads the whole scope through the
//! `SourceReader` (the I/O lives in `crate::sources`), decides what to
//! change with `domain::source::plan`, and writes each account change as
//! one transaction with its audit event by `system:source:NAME`, then one
//! summary event. A run that changes nothing writes nothing.
//!
//! Never deprovisions on a failed read (the reader returns an error for a
//! refused bind, a timeout, a page sequence cut short) or on an empty
//! result; refuses, alerts and changes nothing when more than
//! `max_deprovision_percent` would be disabled, unless forced.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::accounts::{create_group_in, create_in, transition_in, validate_in, AccountInput};
use super::admins::keep_an_admin;
use super::authz::Permission;
use super::notify::Delivery;
use super::{Actor, Error, Result, Services, Tx};
use crate::config::SourceConfig;
use crate::domain::lifecycle::{self, Transition};
use crate::domain::source::{self, DirEntry, SourceLink, Step, Wanted};
use crate::domain::{Account, DisableReason, Status};

/// Problems and actions kept in a stored run (the dry run prints them all).
const KEPT: usize = 200;

/// Account changes committed together (each with its own audit event).
const BATCH: usize = 256;

/// Reads a source's whole scope: every entry, or an error — never a part.
/// Implemented by `crate::sources::LdapReader`; tests give their own.
pub trait SourceReader: Send + Sync {
    fn read(&self, source: &SourceConfig) -> std::result::Result<Vec<DirEntry>, String>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Read in full and applied (problems with single entries are listed).
    #[default]
    Ok,
    /// Read in full; nothing written (`--dry-run`).
    DryRun,
    /// Nothing changed: too many disables, or an empty result.
    Refused,
    /// The directory could not be read in full: nothing changed.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::DryRun => "dry_run",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// One run: what it read, did (or would do) and what went wrong.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceRun {
    pub source: String,
    pub at: DateTime<Utc>,
    pub seconds: f64,
    /// Who started it (`system:source:NAME` for the schedule).
    pub by: String,
    pub outcome: Outcome,
    #[serde(default)]
    pub forced: bool,
    pub read: usize,
    pub created: usize,
    pub updated: usize,
    pub disabled: usize,
    pub enabled: usize,
    pub unchanged: usize,
    /// Why the run failed or was refused.
    #[serde(default)]
    pub error: Option<String>,
    /// Entries skipped or changes refused, one line each.
    #[serde(default)]
    pub problems: Vec<String>,
    /// What it changed (or, dry, would change), one line each.
    #[serde(default)]
    pub actions: Vec<String>,
}

impl SourceRun {
    /// The counts in one line.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "read {}: created {}, updated {}, disabled {}, enabled {}, unchanged {}",
            self.read, self.created, self.updated, self.disabled, self.enabled, self.unchanged
        );
        if !self.problems.is_empty() {
            s.push_str(&format!("; {} problems", self.problems.len()));
        }
        s
    }

    fn changes(&self) -> usize {
        self.created + self.updated + self.disabled + self.enabled
    }

    /// Whether this run is worth keeping after `stored`: it changed
    /// something, or its outcome, error or problems differ (a repeat of
    /// the same is not written again).
    fn is_news(&self, stored: Option<&SourceRun>) -> bool {
        if self.changes() > 0 {
            return true;
        }
        match stored {
            Some(s) => {
                s.outcome != self.outcome || s.error != self.error || s.problems != self.problems
            }
            None => self.outcome != Outcome::Ok || !self.problems.is_empty(),
        }
    }
}

/// `source list`: one row per configured source.
#[derive(Clone, Debug, Serialize)]
pub struct SourceSummary {
    pub name: String,
    #[serde(rename = "type")]
    pub kind_of_source: &'static str,
    pub url: String,
    pub base_dn: String,
    pub kind: String,
    pub interval_minutes: Option<u32>,
    pub max_deprovision_percent: u32,
    pub last_run: Option<SourceRun>,
}

/// `source status NAME`.
#[derive(Clone, Debug, Serialize)]
pub struct SourceStatus {
    #[serde(flatten)]
    pub summary: SourceSummary,
    pub filter: String,
    pub scope: &'static str,
    pub page_size: i32,
    /// The last run that changed something or went wrong (kept in the database).
    pub last_change: Option<SourceRun>,
}

/// `source sync` options.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncOptions {
    pub dry_run: bool,
    pub force: bool,
}

fn status_key(name: &str) -> String {
    format!("source_status:{name}")
}

/// Releases a source's run slot when dropped.
pub(crate) struct Running<'a> {
    services: &'a Services,
    name: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.services.inner.source_running.lock() {
            running.remove(&self.name);
        }
    }
}

impl Services {
    /// Gives the service what reads the directories (once).
    pub fn set_source_reader(&self, reader: Arc<dyn SourceReader>) {
        let _ = self.inner.source_reader.set(reader);
    }

    fn source_reader(&self) -> Result<Arc<dyn SourceReader>> {
        self.inner
            .source_reader
            .get()
            .cloned()
            .ok_or_else(|| Error::Failed("no directory reader in this process".into()))
    }

    fn source_config(&self, name: &str) -> Result<SourceConfig> {
        self.config().source(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self
                .config()
                .sources
                .iter()
                .map(|s| s.rules.name.as_str())
                .collect();
            Error::NotFound(if known.is_empty() {
                format!(
                    "no source named '{name}' (none is configured: see [[sources]] in the config)"
                )
            } else {
                format!(
                    "no source named '{name}' (configured: {})",
                    known.join(", ")
                )
            })
        })
    }

    /// The last run that changed something or failed (stored).
    fn stored_run(&self, name: &str) -> Result<Option<SourceRun>> {
        Ok(self
            .store()
            .meta(&status_key(name))?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// The latest run in this process, else the stored one.
    pub fn source_last_run(&self, name: &str) -> Result<Option<SourceRun>> {
        let latest = self
            .inner
            .source_last
            .lock()
            .map_err(|_| Error::Failed("source state poisoned".into()))?
            .get(name)
            .cloned();
        match latest {
            Some(r) => Ok(Some(r)),
            None => self.stored_run(name),
        }
    }

    fn source_summary(&self, cfg: &SourceConfig) -> Result<SourceSummary> {
        Ok(SourceSummary {
            name: cfg.rules.name.clone(),
            kind_of_source: "ldap",
            url: cfg.url.clone(),
            base_dn: cfg.base_dn.clone(),
            kind: cfg.rules.kind.to_string(),
            interval_minutes: cfg.interval_minutes,
            max_deprovision_percent: cfg.rules.max_deprovision_percent,
            last_run: self.source_last_run(&cfg.rules.name)?,
        })
    }

    /// `source list`.
    pub fn source_list(&self, actor: &Actor) -> Result<Vec<SourceSummary>> {
        self.authorize(actor, Permission::ReadSources, None)?;
        self.config()
            .sources
            .iter()
            .map(|c| self.source_summary(c))
            .collect()
    }

    /// `source status NAME`.
    pub fn source_status(&self, actor: &Actor, name: &str) -> Result<SourceStatus> {
        self.authorize(actor, Permission::ReadSources, None)?;
        let cfg = self.source_config(name)?;
        Ok(SourceStatus {
            summary: self.source_summary(&cfg)?,
            filter: cfg.filter.clone(),
            scope: cfg.scope.as_str(),
            page_size: cfg.page_size,
            last_change: self.stored_run(name)?,
        })
    }

    fn source_slot(&self, name: &str) -> Result<Running<'_>> {
        let mut running = self
            .inner
            .source_running
            .lock()
            .map_err(|_| Error::Failed("source state poisoned".into()))?;
        if !running.insert(name.to_string()) {
            return Err(Error::Conflict(format!(
                "a sync of source {name} is already running"
            )));
        }
        Ok(Running {
            services: self,
            name: name.to_string(),
        })
    }

    /// Every account linked to source `name` (any status).
    fn source_linked(&self, name: &str) -> Result<Vec<Account>> {
        let mut out = Vec::new();
        let mut bad = None;
        self.store()
            .scan_accounts(&mut |key, account| match account {
                Ok(a) => {
                    if a.source.as_ref().is_some_and(|l| l.source == name) {
                        out.push(a);
                    }
                }
                Err(why) => bad = Some(format!("{key}: {why}")),
            })?;
        if let Some(why) = bad {
            return Err(Error::Failed(format!(
                "an account record is unreadable: {why}"
            )));
        }
        Ok(out)
    }

    /// Sources whose interval has passed since their last run (the scheduler asks).
    pub fn sources_due(&self) -> Vec<String> {
        let now = self.now();
        let last = self
            .inner
            .source_last
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        self.config()
            .sources
            .iter()
            .filter(|s| {
                let Some(minutes) = s.interval_minutes else {
                    return false;
                };
                match last.get(&s.rules.name) {
                    Some(r) => now - r.at >= Duration::minutes(i64::from(minutes)),
                    None => true,
                }
            })
            .map(|s| s.rules.name.clone())
            .collect()
    }

    /// `source sync NAME [--dry-run] [--force]`: one run. A refused run is
    /// an `Error::Conflict` (exit 5), a failed read an `Error::Failed`
    /// (exit 1); `source status` shows both.
    pub fn source_sync(
        &self,
        actor: &Actor,
        name: &str,
        options: SyncOptions,
    ) -> Result<SourceRun> {
        self.authorize(actor, Permission::SyncSource, None)?;
        let cfg = self.source_config(name)?;
        let reader = self.source_reader()?;
        let _slot = self.source_slot(name)?;
        let started = std::time::Instant::now();
        let mut run = SourceRun {
            source: name.to_string(),
            at: self.now(),
            by: actor.name.clone(),
            forced: options.force,
            ..SourceRun::default()
        };
        let entries = match reader.read(&cfg) {
            Ok(entries) => entries,
            Err(why) => {
                run.outcome = Outcome::Failed;
                run.error = Some(format!("{why}; nothing was changed"));
                run.seconds = started.elapsed().as_secs_f64();
                self.source_record(&cfg, &run, options.dry_run, false)?;
                return Err(Error::Failed(format!(
                    "source {name}: {why}; nothing was changed"
                )));
            }
        };
        run.read = entries.len();
        let linked = self.source_linked(name)?;
        let lookup = |n: &str| self.store().account(n).ok().flatten();
        let plan = source::plan(&cfg.rules, &entries, &linked, &lookup);
        run.unchanged = plan.unchanged;
        run.problems = plan.problems.clone();
        let disables = plan.count("disable");
        let refusal = if entries.is_empty() && plan.live_before > 0 {
            Some(format!(
                "the directory returned no entries under {} with {}: refusing to disable the {} accounts of source {name} (an empty result is never trusted)",
                cfg.base_dn, cfg.filter, plan.live_before
            ))
        } else if source::threshold_exceeded(
            disables,
            plan.live_before,
            cfg.rules.max_deprovision_percent,
        ) && !options.force
        {
            Some(format!(
                "the run would disable {disables} of the {} live accounts of source {name} ({}%), more than max_deprovision_percent {}%: nothing was changed (look with `source sync {name} --dry-run`, then `source sync {name} --force` applies it)",
                plan.live_before,
                disables * 100 / plan.live_before.max(1),
                cfg.rules.max_deprovision_percent
            ))
        } else {
            None
        };
        if options.dry_run {
            run.outcome = Outcome::DryRun;
            run.error = refusal.map(|r| format!("a real run would be refused: {r}"));
            for step in &plan.steps {
                run.actions.push(step.describe());
                count(&mut run, step);
            }
            run.seconds = started.elapsed().as_secs_f64();
            return Ok(run);
        }
        if let Some(why) = refusal {
            run.outcome = Outcome::Refused;
            run.error = Some(why.clone());
            run.seconds = started.elapsed().as_secs_f64();
            self.source_record(&cfg, &run, false, true)?;
            return Err(Error::Conflict(format!("source {name}: {why}")));
        }
        let as_source = Actor::system(&format!("source:{name}"));
        // Changes go in batches, each account's change with its audit event;
        // a batch that fails is applied again one change at a time, so one
        // bad entry costs only itself.
        for chunk in plan.steps.chunks(BATCH) {
            let together = self.write(&as_source, |tx| {
                for step in chunk {
                    apply_in(tx, &cfg, step)?;
                }
                Ok(())
            });
            let outcomes: Vec<Result<()>> = match together {
                Ok(()) => chunk.iter().map(|_| Ok(())).collect(),
                Err(_) => chunk
                    .iter()
                    .map(|step| self.write(&as_source, |tx| apply_in(tx, &cfg, step)))
                    .collect(),
            };
            for (step, outcome) in chunk.iter().zip(outcomes) {
                match outcome {
                    Ok(()) => {
                        count(&mut run, step);
                        if run.actions.len() < KEPT {
                            run.actions.push(step.describe());
                        }
                    }
                    Err(e) => {
                        run.problems
                            .push(format!("{} {}: {e}", step.verb(), step.username()))
                    }
                }
            }
        }
        run.seconds = started.elapsed().as_secs_f64();
        self.source_record(&cfg, &run, false, false)?;
        Ok(run)
    }

    /// Keeps a finished run: in memory always; in the database (with one
    /// summary event, and an alert when refused) only when it changed
    /// something or says something the stored run does not.
    fn source_record(
        &self,
        cfg: &SourceConfig,
        run: &SourceRun,
        dry_run: bool,
        alert: bool,
    ) -> Result<()> {
        if dry_run {
            return Ok(());
        }
        let name = &cfg.rules.name;
        let mut kept = run.clone();
        kept.problems.truncate(KEPT);
        kept.actions.truncate(KEPT);
        if let Ok(mut last) = self.inner.source_last.lock() {
            last.insert(name.clone(), kept.clone());
        }
        let stored = self.stored_run(name)?;
        if !kept.is_news(stored.as_ref()) {
            return Ok(());
        }
        let as_source = Actor::system(&format!("source:{name}"));
        let text =
            serde_json::to_string(&kept).map_err(|e| Error::Failed(format!("encode: {e}")))?;
        self.write(&as_source, |tx| {
            tx.set_meta(&status_key(name), &text);
            let detail = match &kept.error {
                Some(e) => format!("{}: {e} (run by {})", kept.outcome.as_str(), kept.by),
                None => format!("{} (run by {})", kept.summary(), kept.by),
            };
            let action = match kept.outcome {
                Outcome::Refused => "source.refused",
                Outcome::Failed => "source.failed",
                _ => "source.sync",
            };
            tx.event(action, Some(name), vec![], Some(detail.clone()));
            if alert {
                source_alert(tx, name, &detail)?;
            }
            Ok(())
        })
    }
}

/// One step of a run inside a transaction by the source.
fn apply_in(tx: &mut Tx<'_>, cfg: &SourceConfig, step: &Step) -> Result<()> {
    let rules = &cfg.rules;
    match step {
        Step::Create { wanted, sponsor } => create_from(tx, cfg, wanted, sponsor.as_deref()),
        Step::Update {
            username,
            wanted,
            sponsor,
            ..
        } => {
            let old = tx.load(username)?;
            let mut new = source::apply(rules, &old, wanted, sponsor.as_deref());
            if new == old {
                return Ok(());
            }
            for g in rules.managed_groups() {
                if new.groups.contains(&g) {
                    create_group_in(tx, &g, Some(format!("from source {}", rules.name)))?;
                }
            }
            validate_in(tx, username, &new, Some(&old), &[])?;
            if new.start_date != old.start_date
                && matches!(old.status, Status::Staged | Status::Active)
            {
                new.status = lifecycle::initial_status(new.start_date, tx.today());
            }
            keep_an_admin(tx, &old, Some(&new), "this change")?;
            new.updated_at = tx.now;
            new.updated_by = tx.actor.name.clone();
            let detail = if old.source.is_none() {
                format!("linked to {} in source {}", wanted.dn, rules.name)
            } else {
                format!("from source {}", rules.name)
            };
            tx.put("user.update", Some(&old), Some(new), Some(detail));
            Ok(())
        }
        Step::Disable { username, why } => {
            transition_in(
                tx,
                username,
                "user.disable",
                &Transition::Disable {
                    reason: DisableReason::SourceRemoved,
                    note: Some(why.clone()),
                },
                Some(why.clone()),
            )?;
            Ok(())
        }
        Step::Enable { username } => {
            transition_in(
                tx,
                username,
                "user.enable",
                &Transition::Enable,
                Some(format!("back in source {}", rules.name)),
            )?;
            Ok(())
        }
    }
}

fn count(run: &mut SourceRun, step: &Step) {
    match step {
        Step::Create { .. } => run.created += 1,
        Step::Update { .. } => run.updated += 1,
        Step::Disable { .. } => run.disabled += 1,
        Step::Enable { .. } => run.enabled += 1,
    }
}

/// A new account from an entry: the source's kind and template; a missing
/// end date comes from the template's duration, else the kind's longest.
fn create_from(
    tx: &mut Tx<'_>,
    cfg: &SourceConfig,
    wanted: &Wanted,
    sponsor: Option<&str>,
) -> Result<()> {
    let rules = &cfg.rules;
    let start = wanted.start_date.unwrap_or_else(|| tx.today());
    let template = rules
        .template
        .as_ref()
        .and_then(|t| tx.config().templates.get(t));
    let end = wanted.end_date.or_else(|| {
        if template.and_then(|t| t.duration_days).is_some() {
            return None;
        }
        let days = tx.config().policy.max_duration(rules.kind)?;
        Some(start + Duration::days(i64::from(days)))
    });
    if let Some(end) = wanted.end_date {
        if end < tx.today() {
            return Err(Error::Invalid(format!(
                "its end date {end} has passed: not created"
            )));
        }
    }
    for g in &wanted.groups {
        create_group_in(tx, g, Some(format!("from source {}", rules.name)))?;
    }
    let input = AccountInput {
        display_name: wanted.display_name.clone(),
        email: wanted.email.clone(),
        kind: Some(rules.kind),
        company: wanted.company.clone(),
        project: wanted.project.clone(),
        sponsor: sponsor.map(str::to_string),
        start_date: Some(start),
        end_date: end,
        groups: Some(wanted.groups.iter().cloned().collect()),
        fields: wanted.fields.clone(),
        template: rules.template.clone(),
        source: Some(SourceLink {
            source: rules.name.clone(),
            id: wanted.id.clone(),
            dn: wanted.dn.clone(),
            owned: BTreeSet::new(),
        }),
        ..Default::default()
    };
    let created = create_in(tx, &wanted.username, &input)?;
    // The link's list of directory-owned fields, as a later run would set it.
    let full = source::apply(rules, &created, wanted, sponsor);
    if full != created {
        tx.stage(Some(&created), Some(full));
    }
    Ok(())
}

/// The alert of a refused run: mail to the notify recipients, and the
/// webhooks that want `source_alert`.
fn source_alert(tx: &mut Tx<'_>, name: &str, detail: &str) -> Result<()> {
    let notify = tx.config().notify.clone();
    let subject = format!("[tenure] source {name}: sync refused, nothing changed");
    let about = format!("source:{name}");
    if notify.smtp.is_some() && !notify.recipients.is_empty() {
        tx.enqueue(
            "source_alert",
            &about,
            Delivery::Email {
                to: notify.recipients.clone(),
                subject: subject.clone(),
                body: format!("{detail}\n"),
                sealed_code: None,
            },
        )?;
    }
    for hook in &notify.webhooks {
        if !hook.events.is_empty() && !hook.events.iter().any(|e| e == "source_alert") {
            continue;
        }
        let payload = json!({
            "event": "source_alert",
            "at": tx.now,
            "actor": tx.actor.name,
            "source": name,
            "details": { "message": detail, "subject": subject },
        });
        tx.enqueue(
            "source_alert",
            &about,
            Delivery::Webhook {
                url: hook.url.clone(),
                secret_file: hook.secret_file.clone(),
                payload,
            },
        )?;
    }
    Ok(())
}

/// Refuses a change by someone else than the source to a field the source
/// owns (`user update`, SCIM, the console, `user extend`, `group add`).
pub(crate) fn refuse_owned(actor: &Actor, old: &Account, fields: &[String]) -> Result<()> {
    let Some(link) = &old.source else {
        return Ok(());
    };
    if actor.name == format!("system:source:{}", link.source) {
        return Ok(());
    }
    let locked: Vec<&String> = fields.iter().filter(|f| link.owns(f)).collect();
    if locked.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = locked
        .iter()
        .map(|f| f.replace("group:", "group "))
        .collect();
    Err(Error::Conflict(format!(
        "{} of {} comes from source {} (read-only in tenure: change it in the directory)",
        names.join(", "),
        old.username,
        link.source
    )))
}

/// The owned-field names an `AccountInput` would change on `old`.
pub(crate) fn touched_fields(old: &Account, input: &AccountInput) -> Vec<String> {
    let mut out = Vec::new();
    let text = |v: &Option<String>, cur: &Option<String>| {
        v.as_ref()
            .is_some_and(|v| v.trim() != cur.as_deref().unwrap_or(""))
    };
    if input
        .display_name
        .as_ref()
        .is_some_and(|v| v.trim() != old.display_name)
    {
        out.push("display_name".to_string());
    }
    if input.email.as_ref().is_some_and(|v| v.trim() != old.email) {
        out.push("email".into());
    }
    if text(&input.company, &old.company) {
        out.push("company".into());
    }
    if text(&input.project, &old.project) {
        out.push("project".into());
    }
    if text(&input.sponsor, &old.sponsor) {
        out.push("sponsor".into());
    }
    if input.start_date.is_some_and(|d| d != old.start_date) {
        out.push("start_date".into());
    }
    if input.end_date.is_some_and(|d| Some(d) != old.end_date) {
        out.push("end_date".into());
    }
    for (k, v) in &input.fields {
        if old.fields.get(k).map(String::as_str).unwrap_or("") != v.trim() {
            out.push(format!("fields.{k}"));
        }
    }
    if let Some(groups) = &input.groups {
        let new: HashSet<&str> = groups.iter().map(|g| g.trim()).collect();
        let old_set: HashSet<&str> = old.groups.iter().map(String::as_str).collect();
        for g in new.symmetric_difference(&old_set) {
            out.push(format!("group:{g}"));
        }
    }
    out
}

/// For the console: which of an account's fields are read-only here.
pub fn locked_fields(account: &Account) -> HashMap<String, String> {
    account
        .source
        .as_ref()
        .map(|l| {
            l.owned
                .iter()
                .map(|f| (f.clone(), l.source.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// A directory for tests: the entries (or the error) it was last given.
#[cfg(test)]
pub(crate) struct FixedReader(std::sync::Mutex<std::result::Result<Vec<DirEntry>, String>>);

#[cfg(test)]
impl FixedReader {
    pub(crate) fn new(read: std::result::Result<Vec<DirEntry>, String>) -> FixedReader {
        FixedReader(std::sync::Mutex::new(read))
    }

    pub(crate) fn set(&self, read: std::result::Result<Vec<DirEntry>, String>) {
        *self.0.lock().unwrap() = read;
    }
}

#[cfg(test)]
impl SourceReader for FixedReader {
    fn read(&self, _source: &SourceConfig) -> std::result::Result<Vec<DirEntry>, String> {
        self.0.lock().unwrap().clone()
    }
}

/// An inetOrgPerson-like entry `uid=NAME` with entryUUID `id`.
#[cfg(test)]
pub(crate) fn test_entry(uid: &str, id: &str) -> DirEntry {
    DirEntry {
        dn: format!("uid={uid},ou=vendors,dc=example,dc=com"),
        attrs: [
            ("entryuuid", id.to_string()),
            ("uid", uid.to_string()),
            ("cn", format!("{uid} Example")),
            ("mail", format!("{uid}@example.com")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), vec![v]))
        .collect(),
    }
}

#[cfg(test)]
mod tests;
