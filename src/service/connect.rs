//! Provisioning out, first slice (issue 11): connectors, links and jobs.
//!
//! A job is queued in the same transaction as the account change that causes
//! it (the outbox pattern of notices): a change that fails queues nothing, a
//! committed change is never lost. A worker (`crate::connect`) applies the
//! jobs of each (connector, account) in order; a failed job blocks the later
//! ones of its account until it succeeds, retrying with backoff. Results are
//! recorded here, in one transaction each: the job leaves, the link is
//! updated, the trail gets `connector.apply` or `connector.fail`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::authz::Permission;
use super::{Actor, Error, Result, Services, Tx};
use crate::config::{ConnectorConfig, ConnectorType};
use crate::domain::{Account, Status};
use crate::store::Collection;

/// First retry after this many seconds, doubling per attempt…
pub const BACKOFF_BASE_SECONDS: i64 = 5;
/// …up to this.
pub const BACKOFF_CAP_SECONDS: i64 = 3600;
/// How many job outcomes one transaction records at most…
const RECORD_BATCH: usize = 200;
/// …and how long applied jobs wait to be recorded at most (so a crash
/// re-applies at most this much work, and a slow target records each job).
const RECORD_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// A job, what applying it gave, whether the round holds later jobs of
/// its account, and whether it should have carried a password that was no
/// longer in memory.
type Outcome = (Job, std::result::Result<Option<String>, String>, bool, bool);

/// How long a password waits in memory for its connectors (a target down
/// longer than this gets the change without it, and the link says so).
pub const PASSWORD_HANDOFF_MINUTES: u64 = 30;

/// What the link of a password job says when the password was gone.
pub const PASSWORD_NOT_DELIVERED: &str =
    "password not delivered (tenure restarted, or the target was unreachable for longer than it is kept in memory) — set it again";

/// An error from an applier that starts with this means the target object
/// belongs to someone else: tenure does not overwrite it (the link is
/// `disputed`) until an admin adopts it (`connector retry NAME --user U --adopt`).
pub const DISPUTED: &str = "disputed: ";

/// `Err(disputed("why"))` from an applier.
pub fn disputed(why: impl std::fmt::Display) -> String {
    format!("{DISPUTED}{why}")
}

/// Passwords on their way to the connectors that take them, in this
/// process's memory only: job id → (password, when it was handed over).
/// Never written to the store, the audit, a log or a status.
#[derive(Default)]
pub struct Handoff {
    waiting: std::sync::Mutex<
        std::collections::HashMap<u64, (zeroize::Zeroizing<String>, std::time::Instant)>,
    >,
}

impl Handoff {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<u64, (zeroize::Zeroizing<String>, std::time::Instant)>,
    > {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn put(&self, jobs: Vec<(u64, zeroize::Zeroizing<String>)>) {
        let now = std::time::Instant::now();
        let mut w = self.lock();
        for (id, pw) in jobs {
            w.insert(id, (pw, now));
        }
    }

    /// The password for a job, if it is still here (expired ones are dropped).
    pub(crate) fn get(&self, id: u64) -> Option<zeroize::Zeroizing<String>> {
        let keep = std::time::Duration::from_secs(PASSWORD_HANDOFF_MINUTES * 60);
        let mut w = self.lock();
        w.retain(|_, (_, at)| at.elapsed() < keep);
        w.get(&id).map(|(pw, _)| pw.clone())
    }

    pub(crate) fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// How many passwords wait (tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The most of a target's stderr kept as the error.
pub const ERROR_BYTES: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobAction {
    Create,
    Update,
    Disable,
    Enable,
    Delete,
    Purge,
}

impl JobAction {
    pub fn as_str(self) -> &'static str {
        match self {
            JobAction::Create => "create",
            JobAction::Update => "update",
            JobAction::Disable => "disable",
            JobAction::Enable => "enable",
            JobAction::Delete => "delete",
            JobAction::Purge => "purge",
        }
    }

    /// What a change from `old` to `new` means to a target.
    fn of(old: Option<&Account>, new: Option<&Account>) -> Option<JobAction> {
        Some(match (old, new) {
            (None, None) => return None,
            (None, Some(_)) => JobAction::Create,
            (Some(_), None) => JobAction::Purge,
            (Some(o), Some(n)) => match (o.status, n.status) {
                (a, Status::Deleted) if a != Status::Deleted => JobAction::Delete,
                (a, Status::Disabled) if a != Status::Disabled => JobAction::Disable,
                (Status::Disabled | Status::Deleted, Status::Active | Status::Staged) => {
                    JobAction::Enable
                }
                _ => JobAction::Update,
            },
        })
    }
}

/// One change waiting for one connector. `state` and `previous` are the
/// account as a target sees it after and before the change, so the jobs of
/// an account replay its changes in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub id: u64,
    pub connector: String,
    pub account: String,
    pub action: JobAction,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub state: Option<Value>,
    #[serde(default)]
    pub previous: Option<Value>,
    /// The password was set by this change and waits in memory for this
    /// job (never in the job itself).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub password: bool,
    /// An admin said to take over the object found in the target even if
    /// it looks like someone else's (`connector retry --adopt`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    Pending,
    InSync,
    Failed,
    /// The object the target holds under this account's name is someone
    /// else's (another uidNumber or externalId, or two candidates): tenure
    /// does not overwrite it until an admin adopts it.
    Disputed,
}

impl LinkStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkStatus::Pending => "pending",
            LinkStatus::InSync => "in_sync",
            LinkStatus::Failed => "failed",
            LinkStatus::Disputed => "disputed",
        }
    }
}

/// (connector, account) → what the target holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Link {
    pub connector: String,
    pub account: String,
    #[serde(default)]
    pub target_id: Option<String>,
    /// sha256 of the JSON state last applied.
    #[serde(default)]
    pub applied_hash: Option<String>,
    pub status: LinkStatus,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_success: Option<DateTime<Utc>>,
    /// Something the admin should know although the job applied (e.g. the
    /// password did not reach the target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// `connector list`: one row per configured connector.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectorSummary {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub scope: Vec<String>,
    pub in_sync: usize,
    pub pending: usize,
    pub failed: usize,
    pub disputed: usize,
    /// Links whose password did not reach the target.
    pub notices: usize,
    pub jobs_queued: usize,
    pub last_error: Option<String>,
    pub last_reconcile: Option<ReconcileBrief>,
}

/// The last reconcile of a connector, in a line.
#[derive(Clone, Debug, Serialize)]
pub struct ReconcileBrief {
    pub at: DateTime<Utc>,
    pub in_sync: usize,
    /// Drifted, missing, enabled in target, unwanted.
    pub not_in_sync: usize,
    pub unmatched: usize,
    pub error: Option<String>,
}

/// `connector status NAME`.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectorStatus {
    pub name: String,
    pub links: Vec<Link>,
    pub jobs: Vec<Job>,
}

/// Applies one job document to a target. `Ok(Some(id))` names the target's
/// id for the account; `Err` is the one-line reason it failed.
pub trait Applier: Send + Sync {
    fn apply(
        &self,
        connector: &ConnectorConfig,
        document: &Value,
    ) -> std::result::Result<Option<String>, String>;

    /// Every object in the connector's scope in the target, or `None` for a
    /// target that cannot be read back (a command).
    fn read_all(
        &self,
        _connector: &ConnectorConfig,
    ) -> std::result::Result<Option<Vec<TargetObject>>, String> {
        Ok(None)
    }

    /// How `found` (the object matched to the account, if any) differs from
    /// what the job document says the target should hold.
    fn compare(
        &self,
        _connector: &ConnectorConfig,
        _document: &Value,
        _found: Option<&TargetObject>,
    ) -> std::result::Result<Verdict, String> {
        Err("this target cannot be compared".into())
    }

    /// Disables an object tenure does not know (`--disable-unmatched`).
    fn disable_object(
        &self,
        _connector: &ConnectorConfig,
        _id: &str,
    ) -> std::result::Result<(), String> {
        Err("this target cannot disable objects".into())
    }
}

/// One object read back from a target.
#[derive(Clone, Debug, Default)]
pub struct TargetObject {
    /// The target's id (a DN, a SCIM id).
    pub id: String,
    /// The login name it carries (uid, userName).
    pub username: Option<String>,
    /// Whether it can be used (not locked, active).
    pub enabled: bool,
    /// Lower-cased attribute → values.
    pub attrs: BTreeMap<String, Vec<String>>,
    /// Lower-cased names of the groups (that tenure manages) it is in.
    pub groups: std::collections::BTreeSet<String>,
    /// Lower-cased attributes the target would not show tenure (e.g. a bind
    /// DN without read access to userPassword): not compared.
    pub unreadable: std::collections::BTreeSet<String>,
}

impl TargetObject {
    pub fn values(&self, attr: &str) -> Vec<String> {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }
}

/// One difference between a target and tenure. Secrets are never shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub field: String,
    pub tenure: String,
    pub target: String,
}

/// What a target holds for one account, against what it should.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    InSync,
    Drifted(Vec<Drift>),
    /// Should be there, is not.
    Missing,
    /// What is there under the account's name is someone else's.
    Disputed(String),
    /// Is there, should not be (deleted or disabled with "delete").
    Unwanted,
}

/// `connector reconcile` options.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReconcileOptions {
    pub dry_run: bool,
    pub disable_unmatched: bool,
}

/// One account that is not in sync in the target.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReconcileRow {
    pub account: String,
    /// drifted, missing, enabled_in_target (disabled/deleted in tenure but
    /// usable there), unwanted (deleted in tenure, still there).
    pub class: String,
    #[serde(default)]
    pub target_id: Option<String>,
    #[serde(default)]
    pub drift: Vec<Drift>,
    /// Why a `disputed` object is not tenure's to overwrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// A job was queued to fix it (false in a dry run, or when one waits already).
    pub fixing: bool,
}

/// An object in the target that no account in tenure accounts for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TargetOrphan {
    pub connector: String,
    pub object: String,
    #[serde(default)]
    pub username: Option<String>,
    pub why: String,
    pub enabled: bool,
    /// Disabled by this run (`--disable-unmatched`).
    pub disabled: bool,
}

/// What `connector reconcile` found (and did).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub connector: String,
    pub at: DateTime<Utc>,
    pub dry_run: bool,
    /// False for a target that cannot be read back: every account was resent.
    pub readable: bool,
    pub objects: usize,
    pub in_sync: usize,
    pub rows: Vec<ReconcileRow>,
    pub unmatched: Vec<TargetOrphan>,
    /// Jobs queued by this run.
    pub queued: usize,
    #[serde(default)]
    pub error: Option<String>,
    /// What the run could not check, in a sentence each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ReconcileReport {
    pub fn count(&self, class: &str) -> usize {
        self.rows.iter().filter(|r| r.class == class).count()
    }

    pub fn summary(&self) -> String {
        if !self.readable {
            return format!(
                "{}: the target cannot be read back; {} accounts resent",
                self.connector, self.queued
            );
        }
        format!(
            "{}: {} objects, {} in sync, {} drifted, {} missing, {} enabled in target, {} unwanted, {} disputed, {} unmatched{}",
            self.connector,
            self.objects,
            self.in_sync,
            self.count("drifted"),
            self.count("missing"),
            self.count("enabled_in_target"),
            self.count("unwanted"),
            self.count("disputed"),
            self.unmatched.len(),
            if self.dry_run {
                " (dry run: nothing changed)".to_string()
            } else {
                format!(
                    "; {} jobs queued, {} unmatched disabled",
                    self.queued,
                    self.unmatched.iter().filter(|u| u.disabled).count()
                )
            }
        )
    }
}

/// The most unmatched objects a stored reconcile keeps for `report orphans`.
const ORPHANS_KEPT: usize = 10_000;

/// What a queued job carries besides the change.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct JobExtra {
    /// A password waits in memory for it.
    pub password: bool,
    /// It takes over a disputed object.
    pub adopt: bool,
}

fn job_key(id: u64) -> String {
    format!("{id:012}")
}

fn link_key(connector: &str, account: &str) -> String {
    format!("{connector}/{account}")
}

/// The account as a target sees it: no secrets (the LDAP connector gets the
/// password hash when a job is applied, never in the stored job), no
/// bookkeeping. `password_set_at` makes a password change a change here.
pub fn target_state(a: &Account) -> Value {
    let keys: Vec<String> = a
        .credentials
        .keys
        .iter()
        .map(|k| {
            if k.comment.is_empty() {
                k.public_key.clone()
            } else {
                format!("{} {}", k.public_key, k.comment)
            }
        })
        .collect();
    json!({
        "username": a.username, "display_name": a.display_name, "email": a.email,
        "kind": a.kind, "company": a.company, "sponsor": a.sponsor, "project": a.project,
        "start_date": a.start_date, "end_date": a.end_date, "status": a.status,
        "groups": a.groups, "fields": a.fields, "uid_number": a.uid_number,
        "ssh_keys": keys, "password_set_at": a.credentials.password_set_at,
    })
}

fn hash_of(state: &Option<Value>) -> String {
    let bytes = serde_json::to_vec(state).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

fn backoff(attempts: u32) -> Duration {
    let secs = BACKOFF_BASE_SECONDS
        .saturating_mul(1i64 << attempts.saturating_sub(1).min(20))
        .min(BACKOFF_CAP_SECONDS);
    Duration::seconds(secs)
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Failed(format!("{what} {key}: {e}")))
}

impl Tx<'_> {
    fn next_job_id(&mut self) -> Result<u64> {
        let next = match self.jobs_next {
            Some(n) => n,
            None => self
                .services
                .store()
                .meta("next_job_id")?
                .and_then(|b| String::from_utf8_lossy(&b).parse().ok())
                .unwrap_or(1),
        };
        self.jobs_next = Some(next + 1);
        self.set_meta("next_job_id", &(next + 1).to_string());
        Ok(next)
    }

    /// Hands out the next uidNumber (at least every LDAP connector's
    /// `uid_number_start`).
    fn next_uid_number(&mut self) -> Result<u32> {
        let floor = self
            .services
            .config()
            .connectors
            .iter()
            .filter_map(|c| match &c.kind {
                ConnectorType::Ldap(l) => Some(l.uid_number_start),
                _ => None,
            })
            .max()
            .unwrap_or(10000);
        let next = match self.uid_next {
            Some(n) => n,
            None => self
                .services
                .store()
                .meta("next_uid_number")?
                .and_then(|b| String::from_utf8_lossy(&b).parse().ok())
                .unwrap_or(floor),
        }
        .max(floor);
        let after = next
            .checked_add(1)
            .ok_or_else(|| Error::Failed("uidNumbers are exhausted".into()))?;
        self.uid_next = Some(after);
        self.set_meta("next_uid_number", &after.to_string());
        Ok(next)
    }

    /// Gives every account this transaction writes that an LDAP connector
    /// covers a uidNumber, once.
    fn allocate_uid_numbers(&mut self) -> Result<()> {
        let ldap: Vec<&ConnectorConfig> = self
            .services
            .config()
            .connectors
            .iter()
            .filter(|c| matches!(c.kind, ConnectorType::Ldap(_)))
            .collect();
        if ldap.is_empty() {
            return Ok(());
        }
        let needing: Vec<String> = self
            .accounts
            .iter()
            .filter(|(_, (_, new))| {
                new.as_ref()
                    .is_some_and(|a| a.uid_number.is_none() && ldap.iter().any(|c| c.covers(a)))
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in needing {
            let n = self.next_uid_number()?;
            if let Some((_, Some(a))) = self.accounts.get_mut(&name) {
                a.uid_number = Some(n);
            }
        }
        Ok(())
    }

    /// Queues a job for every connector that cares about an account this
    /// transaction changes, and marks its link pending. Called once per
    /// transaction, just before it commits; returns how many were queued.
    pub(crate) fn queue_connector_jobs(&mut self) -> Result<usize> {
        if self.services.config().connectors.is_empty() {
            return Ok(0);
        }
        self.allocate_uid_numbers()?;
        let connectors = &self.services.config().connectors;
        let mut planned = Vec::new();
        for (name, (old, new)) in &self.accounts {
            let (before, after) = (
                old.as_ref().map(target_state),
                new.as_ref().map(target_state),
            );
            if before == after {
                continue;
            }
            let Some(action) = JobAction::of(old.as_ref(), new.as_ref()) else {
                continue;
            };
            for c in connectors {
                let covered = old.as_ref().is_some_and(|a| c.covers(a))
                    || new.as_ref().is_some_and(|a| c.covers(a));
                if covered {
                    planned.push((
                        c.name.clone(),
                        name.clone(),
                        action,
                        after.clone(),
                        before.clone(),
                    ));
                }
            }
        }
        let queued = planned.len();
        let takes_password = |name: &str| connectors.iter().any(|c| c.name == name && c.passwords);
        for (connector, account, action, state, previous) in planned {
            // The password set by this change goes, in memory, with the job
            // of each connector that takes passwords (not with a purge).
            let password = state.is_some()
                && takes_password(&connector)
                && self
                    .password_for
                    .as_ref()
                    .is_some_and(|(who, _)| *who == account);
            let id = self.enqueue_job(
                connector,
                account,
                action,
                state,
                previous,
                JobExtra {
                    password,
                    adopt: false,
                },
            )?;
            if password {
                if let Some((_, pw)) = &self.password_for {
                    self.handed.push((id, pw.clone()));
                }
            }
        }
        Ok(queued)
    }

    /// The plaintext of the password this transaction sets for `account`,
    /// handed (after the commit, in memory only) to the connectors that
    /// take passwords.
    pub(crate) fn hand_password(&mut self, account: &str, password: &str) {
        if self
            .services
            .config()
            .connectors
            .iter()
            .any(|c| c.passwords)
        {
            self.password_for = Some((
                account.to_string(),
                zeroize::Zeroizing::new(password.to_string()),
            ));
        }
    }

    /// Stores one job and marks its link pending; returns the job's id.
    pub(crate) fn enqueue_job(
        &mut self,
        connector: String,
        account: String,
        action: JobAction,
        state: Option<Value>,
        previous: Option<Value>,
        extra: JobExtra,
    ) -> Result<u64> {
        {
            let id = self.next_job_id()?;
            let job = Job {
                id,
                connector: connector.clone(),
                account: account.clone(),
                action,
                created_at: self.now,
                attempts: 0,
                next_attempt: self.now,
                last_error: None,
                state,
                previous,
                password: extra.password,
                adopt: extra.adopt,
            };
            self.put_record(Collection::Jobs, &job_key(id), Some(&job))?;
            let key = link_key(&connector, &account);
            let mut link = match self.services.store().record(Collection::Links, &key)? {
                Some(bytes) => decode::<Link>("link", &key, &bytes)?,
                None => Link {
                    connector,
                    account,
                    target_id: None,
                    applied_hash: None,
                    status: LinkStatus::Pending,
                    attempts: 0,
                    last_error: None,
                    last_success: None,
                    notice: None,
                },
            };
            // A failed or disputed link stays so (with its error) until its
            // jobs go through.
            if link.status == LinkStatus::InSync {
                link.status = LinkStatus::Pending;
            }
            self.put_record(Collection::Links, &key, Some(&link))?;
            Ok(id)
        }
    }
}

impl Services {
    /// The job document a target gets for `state` (the LDAP connector also
    /// gets the account's password hash, read now, never stored in a job).
    fn job_document(
        &self,
        config: &ConnectorConfig,
        job: &Job,
        link_id: Option<&str>,
        password_hash: Option<String>,
    ) -> Value {
        let mut document = json!({
            "action": job.action,
            "connector": config.name,
            "account": job.state,
            "previous": job.previous,
            "link_id": link_id,
            "job": job.id,
        });
        if job.adopt {
            document["adopt"] = Value::Bool(true);
        }
        if matches!(config.kind, ConnectorType::Ldap(_)) && job.state.is_some() {
            if let Some(hash) = password_hash {
                document["password_hash"] = Value::String(hash);
            }
        }
        document
    }

    /// `connector reconcile NAME`: reads every object in the target and
    /// classifies each against tenure (in sync, drifted, missing, enabled in
    /// the target though disabled here, unwanted, unmatched). Unless a dry
    /// run, queues a job for each account not in sync (the worker fixes it,
    /// in order with the account's other jobs), disables unmatched objects
    /// with `disable_unmatched`, and records the result and an audit event.
    /// A target that cannot be read back (a command) gets every account resent.
    pub fn connector_reconcile(
        &self,
        actor: &Actor,
        name: &str,
        options: ReconcileOptions,
        applier: &dyn Applier,
    ) -> Result<ReconcileReport> {
        self.authorize(actor, Permission::ReconcileConnector, None)?;
        let config = self.connector_named(name)?.clone();
        let objects = applier
            .read_all(&config)
            .map_err(|e| Error::Failed(format!("{name}: cannot read the target: {e}")))?;
        let links: BTreeMap<String, Link> = self
            .links_all()?
            .into_iter()
            .filter(|l| l.connector == name)
            .map(|l| (l.account.clone(), l))
            .collect();
        let waiting: std::collections::HashSet<String> = self
            .jobs_all()?
            .into_iter()
            .filter(|j| j.connector == name)
            .map(|j| j.account)
            .collect();
        let mut accounts: Vec<Account> = Vec::new();
        let mut known: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut scan_error = None;
        self.store().scan_accounts(&mut |_, a| match a {
            Ok(a) => {
                known.insert(a.username.clone());
                if config.covers(&a) {
                    accounts.push(a);
                }
            }
            Err(e) => scan_error = Some(e),
        })?;
        if let Some(e) = scan_error {
            return Err(Error::Failed(e));
        }
        let mut report = ReconcileReport {
            connector: name.to_string(),
            at: self.now(),
            dry_run: options.dry_run,
            readable: objects.is_some(),
            objects: objects.as_ref().map_or(0, Vec::len),
            in_sync: 0,
            rows: Vec::new(),
            unmatched: Vec::new(),
            queued: 0,
            error: None,
            notes: Vec::new(),
        };
        let unreadable: std::collections::BTreeSet<String> = objects
            .iter()
            .flatten()
            .flat_map(|o| o.unreadable.iter().cloned())
            .collect();
        for attr in unreadable {
            report.notes.push(format!(
                "the target does not let tenure read {attr}: it was not compared"
            ));
        }
        // (account, whether its record must be rewritten to get a uidNumber)
        let mut fix: Vec<(String, bool)> = Vec::new();
        match &objects {
            None => {
                for a in &accounts {
                    if !waiting.contains(&a.username) {
                        fix.push((a.username.clone(), false));
                    }
                }
            }
            Some(objects) => {
                let mut by_id: std::collections::HashMap<String, usize> =
                    std::collections::HashMap::new();
                let mut by_name: std::collections::HashMap<String, usize> =
                    std::collections::HashMap::new();
                let mut named: std::collections::HashMap<String, usize> =
                    std::collections::HashMap::new();
                for (i, o) in objects.iter().enumerate() {
                    by_id.insert(o.id.to_ascii_lowercase(), i);
                    if let Some(u) = &o.username {
                        by_name.entry(u.clone()).or_insert(i);
                        *named.entry(u.clone()).or_default() += 1;
                    }
                }
                let mut matched = vec![false; objects.len()];
                let ldap = matches!(config.kind, ConnectorType::Ldap(_));
                for a in &accounts {
                    let link = links.get(&a.username);
                    let link_id = link.and_then(|l| l.target_id.as_deref());
                    let by_link = link_id
                        .and_then(|id| by_id.get(&id.to_ascii_lowercase()))
                        .copied();
                    let at = by_link.or_else(|| by_name.get(&a.username).copied());
                    if let Some(i) = at {
                        matched[i] = true;
                    }
                    let found = at.and_then(|i| objects.get(i));
                    let needs_uid = ldap && a.uid_number.is_none();
                    let twins = named.get(&a.username).copied().unwrap_or(0);
                    let verdict = if let Some(l) = link.filter(|l| l.status == LinkStatus::Disputed)
                    {
                        Verdict::Disputed(l.last_error.clone().unwrap_or_default())
                    } else if by_link.is_none() && twins > 1 {
                        Verdict::Disputed(format!(
                            "{twins} objects in the target carry the name '{}'",
                            a.username
                        ))
                    } else if needs_uid {
                        if found.is_some() {
                            Verdict::Drifted(vec![Drift {
                                field: "uidNumber".into(),
                                tenure: "(not yet given)".into(),
                                target: found
                                    .map(|f| f.values("uidNumber").join(", "))
                                    .unwrap_or_default(),
                            }])
                        } else {
                            Verdict::Missing
                        }
                    } else {
                        let job = Job {
                            id: 0,
                            connector: name.to_string(),
                            account: a.username.clone(),
                            action: JobAction::Update,
                            created_at: self.now(),
                            attempts: 0,
                            next_attempt: self.now(),
                            last_error: None,
                            state: Some(target_state(a)),
                            previous: None,
                            password: false,
                            adopt: false,
                        };
                        let document = self.job_document(
                            &config,
                            &job,
                            link_id,
                            a.credentials.password_hash.clone(),
                        );
                        applier
                            .compare(&config, &document, found)
                            .map_err(|e| Error::Failed(format!("{name}: {}: {e}", a.username)))?
                    };
                    let off_here = matches!(a.status, Status::Disabled | Status::Deleted);
                    let class = match verdict {
                        Verdict::InSync => {
                            report.in_sync += 1;
                            continue;
                        }
                        Verdict::Drifted(_) if off_here && found.is_some_and(|f| f.enabled) => {
                            "enabled_in_target"
                        }
                        Verdict::Drifted(_) => "drifted",
                        Verdict::Missing => "missing",
                        Verdict::Unwanted if off_here && found.is_some_and(|f| f.enabled) => {
                            "enabled_in_target"
                        }
                        Verdict::Unwanted => "unwanted",
                        Verdict::Disputed(_) => "disputed",
                    };
                    let drift = match &verdict {
                        Verdict::Drifted(d) => d.clone(),
                        _ => vec![],
                    };
                    let why = match &verdict {
                        Verdict::Disputed(w) => Some(w.clone()),
                        _ => None,
                    };
                    // A disputed object is not tenure's to overwrite.
                    let fixing =
                        !options.dry_run && why.is_none() && !waiting.contains(&a.username);
                    if fixing {
                        fix.push((a.username.clone(), needs_uid));
                    }
                    report.rows.push(ReconcileRow {
                        account: a.username.clone(),
                        class: class.to_string(),
                        target_id: found.map(|f| f.id.clone()),
                        drift,
                        why,
                        fixing,
                    });
                }
                for (i, o) in objects.iter().enumerate() {
                    if matched[i] {
                        continue;
                    }
                    let why = match &o.username {
                        Some(u) if known.contains(u) => {
                            format!("account '{u}' is not in this connector's scope")
                        }
                        Some(u) if links.contains_key(u) => {
                            format!("account '{u}' was purged in tenure")
                        }
                        Some(u) => format!("no account '{u}' in tenure"),
                        None => "no login name".to_string(),
                    };
                    let mut disabled = false;
                    if options.disable_unmatched && !options.dry_run && o.enabled {
                        applier
                            .disable_object(&config, &o.id)
                            .map_err(|e| Error::Failed(format!("{name}: disable {}: {e}", o.id)))?;
                        disabled = true;
                    }
                    report.unmatched.push(TargetOrphan {
                        connector: name.to_string(),
                        object: o.id.clone(),
                        username: o.username.clone(),
                        why,
                        enabled: o.enabled && !disabled,
                        disabled,
                    });
                }
            }
        }
        if options.dry_run {
            if objects.is_none() {
                report.queued = fix.len();
            }
            return Ok(report);
        }
        let by_name: std::collections::HashMap<&str, &Account> =
            accounts.iter().map(|a| (a.username.as_str(), a)).collect();
        let queued = self.write(actor, |tx| {
            let mut queued = 0;
            for (account, needs_uid) in &fix {
                let Some(a) = by_name.get(account.as_str()) else {
                    continue;
                };
                if *needs_uid {
                    // Rewriting the record gives it its uidNumber, and the
                    // change queues the job itself.
                    tx.stage(Some(a), Some((*a).clone()));
                } else {
                    tx.enqueue_job(
                        name.to_string(),
                        account.clone(),
                        JobAction::Update,
                        Some(target_state(a)),
                        None,
                        JobExtra::default(),
                    )?;
                }
                queued += 1;
            }
            let mut kept = report.clone();
            kept.queued = queued;
            tx.event("connector.reconcile", None, vec![], Some(kept.summary()));
            kept.rows.truncate(ORPHANS_KEPT);
            kept.unmatched.truncate(ORPHANS_KEPT);
            let stored =
                serde_json::to_string(&kept).map_err(|e| Error::Failed(format!("encode: {e}")))?;
            tx.set_meta(&format!("reconcile/{name}"), &stored);
            Ok(queued)
        })?;
        report.queued = queued;
        if queued > 0 {
            self.wake_connectors();
        }
        Ok(report)
    }

    /// Runs the reconciles whose `reconcile_hours` have passed since the last
    /// one (actor `system:reconcile`). Returns one line per reconcile run.
    pub fn reconcile_due(&self, applier: &dyn Applier) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.config().connectors {
            let Some(hours) = c.reconcile_hours else {
                continue;
            };
            let last = self.last_reconcile(&c.name).ok().flatten().map(|r| r.at);
            if last.is_some_and(|at| self.now() < at + Duration::hours(i64::from(hours))) {
                continue;
            }
            let actor = Actor::system("reconcile");
            match self.connector_reconcile(&actor, &c.name, ReconcileOptions::default(), applier) {
                Ok(report) => out.push(report.summary()),
                Err(e) => {
                    // Recorded, so the next try waits its turn too.
                    let failed = ReconcileReport {
                        connector: c.name.clone(),
                        at: self.now(),
                        dry_run: false,
                        readable: true,
                        objects: 0,
                        in_sync: 0,
                        rows: vec![],
                        unmatched: vec![],
                        queued: 0,
                        error: Some(e.to_string()),
                        notes: Vec::new(),
                    };
                    let stored = serde_json::to_string(&failed).unwrap_or_default();
                    let _ = self.write(&actor, |tx| {
                        tx.set_meta(&format!("reconcile/{}", c.name), &stored);
                        tx.event(
                            "connector.reconcile",
                            None,
                            vec![],
                            Some(format!("{}: failed: {e}", c.name)),
                        );
                        Ok(())
                    });
                    out.push(format!("{}: reconcile failed: {e}", c.name));
                }
            }
        }
        out
    }

    /// The last reconcile of each connector (`report orphans`, the console).
    pub fn last_reconcile(&self, name: &str) -> Result<Option<ReconcileReport>> {
        Ok(self
            .store()
            .meta(&format!("reconcile/{name}"))?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// The id of the last job ever queued (0 before any).
    fn last_job_id(&self) -> Result<u64> {
        Ok(self
            .store()
            .meta("next_job_id")?
            .and_then(|b| String::from_utf8_lossy(&b).parse::<u64>().ok())
            .map_or(0, |n| n.saturating_sub(1)))
    }

    fn jobs_all(&self) -> Result<Vec<Job>> {
        self.store()
            .records(Collection::Jobs)?
            .into_iter()
            .map(|(k, v)| decode("job", &k, &v))
            .collect()
    }

    pub(crate) fn links_all(&self) -> Result<Vec<Link>> {
        self.store()
            .records(Collection::Links)?
            .into_iter()
            .map(|(k, v)| decode("link", &k, &v))
            .collect()
    }

    fn connector_named(&self, name: &str) -> Result<&ConnectorConfig> {
        self.config()
            .connectors
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::NotFound(format!("no connector named '{name}'")))
    }

    /// `connector list`.
    pub fn connector_list(&self, actor: &Actor) -> Result<Vec<ConnectorSummary>> {
        self.authorize(actor, Permission::ReadConnectors, None)?;
        let (links, jobs) = (self.links_all()?, self.jobs_all()?);
        Ok(self
            .config()
            .connectors
            .iter()
            .map(|c| {
                let mine: Vec<&Link> = links.iter().filter(|l| l.connector == c.name).collect();
                let count = |s: LinkStatus| mine.iter().filter(|l| l.status == s).count();
                ConnectorSummary {
                    name: c.name.clone(),
                    kind: c.kind.as_str().to_string(),
                    scope: c.kinds.iter().map(|k| k.to_string()).collect(),
                    in_sync: count(LinkStatus::InSync),
                    pending: count(LinkStatus::Pending),
                    failed: count(LinkStatus::Failed),
                    disputed: count(LinkStatus::Disputed),
                    notices: mine.iter().filter(|l| l.notice.is_some()).count(),
                    jobs_queued: jobs.iter().filter(|j| j.connector == c.name).count(),
                    last_error: jobs
                        .iter()
                        .filter(|j| j.connector == c.name)
                        .find_map(|j| j.last_error.clone()),
                    last_reconcile: self.last_reconcile(&c.name).ok().flatten().map(|r| {
                        ReconcileBrief {
                            at: r.at,
                            in_sync: r.in_sync,
                            not_in_sync: r.rows.len(),
                            unmatched: r.unmatched.len(),
                            error: r.error,
                        }
                    }),
                }
            })
            .collect())
    }

    /// `connector status NAME`: every link of the connector and its queued jobs.
    pub fn connector_status(&self, actor: &Actor, name: &str) -> Result<ConnectorStatus> {
        self.authorize(actor, Permission::ReadConnectors, None)?;
        self.connector_named(name)?;
        Ok(ConnectorStatus {
            name: name.to_string(),
            links: self
                .links_all()?
                .into_iter()
                .filter(|l| l.connector == name)
                .collect(),
            jobs: self
                .jobs_all()?
                .into_iter()
                .filter(|j| j.connector == name)
                .collect(),
        })
    }

    /// The links of one account (`user show`), for whoever may read it.
    pub fn account_links(&self, name: &str) -> Result<Vec<Link>> {
        Ok(self
            .links_all()?
            .into_iter()
            .filter(|l| l.account == name)
            .collect())
    }

    /// `connector retry NAME [--user U]`: the waiting jobs are due now.
    pub fn connector_retry(&self, actor: &Actor, name: &str, user: Option<&str>) -> Result<usize> {
        self.connector_retry_adopting(actor, name, user, false)
    }

    /// `connector retry NAME --user U --adopt`: as retry, and the account's
    /// next job takes over the object found in the target even though it
    /// looked like someone else's (a disputed link). Admins only.
    pub fn connector_retry_adopting(
        &self,
        actor: &Actor,
        name: &str,
        user: Option<&str>,
        adopt: bool,
    ) -> Result<usize> {
        self.authorize(actor, Permission::RetryConnector, None)?;
        if adopt {
            self.authorize(actor, Permission::ReconcileConnector, None)?;
            if user.is_none() {
                return Err(Error::Invalid(
                    "--adopt needs --user U (one account at a time)".into(),
                ));
            }
        }
        self.connector_named(name)?;
        if let Some(u) = user {
            if !self.account_links(u)?.iter().any(|l| l.connector == name) {
                return Err(Error::NotFound(format!(
                    "connector '{name}' has nothing for '{u}'"
                )));
            }
        }
        let n = self.write(actor, |tx| {
            let now = tx.now;
            let mut n = 0;
            for mut job in tx.services.jobs_all()? {
                if job.connector != name || user.is_some_and(|u| u != job.account) {
                    continue;
                }
                if job.next_attempt > now || (adopt && !job.adopt) {
                    job.next_attempt = job.next_attempt.min(now);
                    job.adopt |= adopt;
                    tx.put_record(Collection::Jobs, &job_key(job.id), Some(&job))?;
                }
                n += 1;
            }
            if adopt && n == 0 {
                // Nothing waits: queue a job to take the object over.
                if let Some(u) = user {
                    if let Some(a) = tx.get(u)? {
                        tx.enqueue_job(
                            name.to_string(),
                            u.to_string(),
                            JobAction::Update,
                            Some(target_state(&a)),
                            None,
                            JobExtra {
                                password: false,
                                adopt: true,
                            },
                        )?;
                        n = 1;
                    }
                }
            }
            let detail = match (user, adopt) {
                (Some(u), true) => {
                    format!("{name}: {n} jobs of {u} due now, adopting what the target holds")
                }
                (Some(u), false) => format!("{name}: {n} jobs of {u} due now"),
                (None, _) => format!("{name}: {n} jobs due now"),
            };
            tx.event("connector.retry", user, vec![], Some(detail));
            Ok(n)
        })?;
        self.wake_connectors();
        Ok(n)
    }

    /// One worker round: for each (connector, account), its jobs in id order
    /// while they are due and succeed; a failure stops that account's queue
    /// until its backoff passes. Returns (applied, failed).
    pub fn connector_round(&self, applier: &dyn Applier) -> Result<(usize, usize)> {
        let mut queues: BTreeMap<(String, String), Vec<Job>> = BTreeMap::new();
        let last_id = self.last_job_id()?;
        for job in self.jobs_all()? {
            queues
                .entry((job.connector.clone(), job.account.clone()))
                .or_default()
                .push(job);
        }
        let (mut applied, mut failed) = (0, 0);
        // Outcomes are recorded a batch at a time, in one transaction each:
        // one flush per batch, not per job. A crash before a batch is
        // recorded applies its jobs again (at least once; applying is
        // idempotent).
        let mut outcomes: Vec<Outcome> = Vec::new();
        let mut recorded = std::time::Instant::now();
        for ((connector, account), jobs) in queues {
            let Some(config) = self
                .config()
                .connectors
                .iter()
                .find(|c| c.name == connector)
            else {
                // A connector taken out of the config: its jobs wait for it.
                continue;
            };
            let mut link_id = self
                .store()
                .record(Collection::Links, &link_key(&connector, &account))?
                .map(|b| decode::<Link>("link", &connector, &b))
                .transpose()?
                .and_then(|l| l.target_id);
            let count = jobs.len();
            for (i, job) in jobs.into_iter().enumerate() {
                // A job never tried is due whatever its time says (a clock
                // set back must not hold it); a failed one waits its backoff.
                if job.attempts > 0 && job.next_attempt > self.now() {
                    break;
                }
                let more = i + 1 < count;
                // The directory verifies tenure's own argon2 hash; it is
                // read now, not kept in the job.
                let hash = if matches!(config.kind, ConnectorType::Ldap(_)) && job.state.is_some() {
                    self.store()
                        .account(&account)?
                        .and_then(|a| a.credentials.password_hash)
                } else {
                    None
                };
                let mut document = self.job_document(config, &job, link_id.as_deref(), hash);
                // A password set with this change rides along, from memory,
                // for this one job; gone (a restart, a long outage), the job
                // applies without it and the link says so.
                let mut undelivered = false;
                if job.password {
                    match self.inner.handoff.get(job.id) {
                        Some(pw) => document["password"] = Value::String(pw.to_string()),
                        None => undelivered = true,
                    }
                }
                let outcome = applier.apply(config, &document);
                drop(document);
                let ok = outcome.is_ok();
                if ok && job.password {
                    self.inner.handoff.forget(job.id);
                }
                if let Ok(Some(id)) = &outcome {
                    link_id = Some(id.clone());
                }
                outcomes.push((job, outcome, more, undelivered));
                if !ok || outcomes.len() >= RECORD_BATCH || recorded.elapsed() >= RECORD_EVERY {
                    self.connector_record(&std::mem::take(&mut outcomes), last_id)?;
                    recorded = std::time::Instant::now();
                }
                if ok {
                    applied += 1;
                } else {
                    failed += 1;
                    break;
                }
            }
        }
        if !outcomes.is_empty() {
            self.connector_record(&outcomes, last_id)?;
        }
        Ok((applied, failed))
    }

    /// Records what applying each job did, in one transaction: on success
    /// the job leaves and the link is in sync (or pending, if more jobs
    /// wait); on failure the job waits for its backoff and the link is
    /// failed. `more` says whether the round holds later jobs of that
    /// account; `last_id` is the last job id when the round began (a job
    /// queued since may be the account's too).
    fn connector_record(&self, outcomes: &[Outcome], last_id: u64) -> Result<()> {
        let in_batch: std::collections::HashSet<u64> =
            outcomes.iter().map(|(j, _, _, _)| j.id).collect();
        self.write(&Actor::system("connector"), |tx| {
            let newer = tx.services.last_job_id()? > last_id;
            let waiting = if newer {
                tx.services
                    .jobs_all()?
                    .into_iter()
                    .filter(|j| !in_batch.contains(&j.id))
                    .map(|j| (j.connector, j.account))
                    .collect()
            } else {
                std::collections::HashSet::new()
            };
            let mut links: BTreeMap<String, Link> = BTreeMap::new();
            for (job, outcome, more, undelivered) in outcomes {
                let key = job_key(job.id);
                let Some(bytes) = tx.services.store().record(Collection::Jobs, &key)? else {
                    continue;
                };
                let mut stored: Job = decode("job", &key, &bytes)?;
                let lkey = link_key(&job.connector, &job.account);
                let mut link = match links.remove(&lkey) {
                    Some(l) => l,
                    None => match tx.services.store().record(Collection::Links, &lkey)? {
                        Some(b) => decode::<Link>("link", &lkey, &b)?,
                        None => Link {
                            connector: job.connector.clone(),
                            account: job.account.clone(),
                            target_id: None,
                            applied_hash: None,
                            status: LinkStatus::Pending,
                            attempts: 0,
                            last_error: None,
                            last_success: None,
                            notice: None,
                        },
                    },
                };
                match outcome {
                    Ok(target_id) => {
                        tx.put_record::<Job>(Collection::Jobs, &key, None)?;
                        let more = *more
                            || waiting.contains(&(job.connector.clone(), job.account.clone()));
                        if target_id.is_some() {
                            link.target_id = target_id.clone();
                        }
                        link.applied_hash = Some(hash_of(&stored.state));
                        link.status = if more {
                            LinkStatus::Pending
                        } else {
                            LinkStatus::InSync
                        };
                        link.attempts = 0;
                        link.last_error = None;
                        link.last_success = Some(tx.now);
                        if stored.password {
                            link.notice = undelivered.then(|| PASSWORD_NOT_DELIVERED.to_string());
                        }
                        if stored.action == JobAction::Purge && !more {
                            tx.put_record::<Link>(Collection::Links, &lkey, None)?;
                        } else {
                            tx.put_record(Collection::Links, &lkey, Some(&link))?;
                            links.insert(lkey, link);
                        }
                        tx.event(
                            "connector.apply",
                            Some(&job.account),
                            vec![],
                            Some(format!(
                                "{} {} #{}{}",
                                job.connector,
                                stored.action.as_str(),
                                job.id,
                                match (stored.password, *undelivered) {
                                    (true, false) => " (with the password)",
                                    (true, true) => " (password not delivered)",
                                    _ => "",
                                }
                            )),
                        );
                    }
                    Err(why) if why.starts_with(DISPUTED) => {
                        // Not retried on its own: it waits for an admin
                        // (`connector retry --user U [--adopt]`).
                        let why = why[DISPUTED.len()..].to_string();
                        stored.attempts += 1;
                        stored.last_error = Some(format!("disputed: {why}"));
                        stored.next_attempt = tx.now + Duration::days(36500);
                        stored.adopt = false;
                        tx.put_record(Collection::Jobs, &key, Some(&stored))?;
                        link.status = LinkStatus::Disputed;
                        link.attempts = stored.attempts;
                        link.last_error = Some(why.clone());
                        tx.put_record(Collection::Links, &lkey, Some(&link))?;
                        tx.event(
                            "connector.disputed",
                            Some(&job.account),
                            vec![],
                            Some(format!(
                                "{} {} #{}: {why}; not overwritten (adopt it with `connector retry {} --user {} --adopt`)",
                                job.connector,
                                stored.action.as_str(),
                                job.id,
                                job.connector,
                                job.account
                            )),
                        );
                        links.insert(lkey, link);
                    }
                    Err(why) => {
                        stored.attempts += 1;
                        stored.last_error = Some(why.clone());
                        stored.next_attempt = tx.now + backoff(stored.attempts);
                        tx.put_record(Collection::Jobs, &key, Some(&stored))?;
                        link.status = LinkStatus::Failed;
                        link.attempts = stored.attempts;
                        link.last_error = Some(why.clone());
                        tx.put_record(Collection::Links, &lkey, Some(&link))?;
                        tx.event(
                            "connector.fail",
                            Some(&job.account),
                            vec![],
                            Some(format!(
                                "{} {} #{} attempt {}: {why}",
                                job.connector,
                                stored.action.as_str(),
                                job.id,
                                stored.attempts
                            )),
                        );
                        links.insert(lkey, link);
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::config::EXAMPLE;
    use crate::domain::{DisableReason, Kind};
    use crate::service::accounts::AccountInput;

    /// Fails while `down`; records the documents it applied.
    #[derive(Default)]
    struct Fake {
        down: Mutex<bool>,
        seen: Mutex<Vec<Value>>,
    }

    impl Applier for Fake {
        fn apply(
            &self,
            _c: &ConnectorConfig,
            d: &Value,
        ) -> std::result::Result<Option<String>, String> {
            if *self.down.lock().unwrap() {
                return Err("target down".into());
            }
            self.seen.lock().unwrap().push(d.clone());
            Ok(Some(format!(
                "t-{}",
                d["account"]["username"].as_str().unwrap_or("-")
            )))
        }
    }

    fn setup() -> (Services, std::sync::Arc<crate::service::FixedClock>, Actor) {
        let text = format!(
            "{EXAMPLE}\n[[connectors]]\nname = \"hr\"\ntype = \"command\"\ncommand = [\"/bin/true\"]\n"
        );
        crate::service::testkit::services_with(&text, Some("root@x.io"))
    }

    fn input(email: &str, kind: Kind) -> AccountInput {
        AccountInput {
            email: Some(email.into()),
            display_name: Some("Someone".into()),
            kind: Some(kind),
            company: Some("Acme".into()),
            sponsor: Some("root".into()),
            end_date: Some(crate::service::testkit::t0().date_naive() + Duration::days(30)),
            ..Default::default()
        }
    }

    fn jobs(s: &Services, admin: &Actor) -> Vec<Job> {
        s.connector_status(admin, "hr").unwrap().jobs
    }

    #[test]
    fn a_job_is_queued_with_the_change_and_a_failed_change_queues_nothing() {
        let (s, _clock, admin) = setup();
        s.create(&admin, "bob", input("bob@x.io", Kind::Contractor))
            .unwrap();
        let queued = jobs(&s, &admin);
        assert_eq!(queued.len(), 1);
        assert_eq!(
            (queued[0].account.as_str(), queued[0].action),
            ("bob", JobAction::Create)
        );
        // Same email: the change fails, and no job or link appears for it.
        let err = s
            .create(&admin, "bea", input("bob@x.io", Kind::Contractor))
            .unwrap_err();
        assert_eq!(err.exit_code(), 5, "{err}");
        assert_eq!(jobs(&s, &admin).len(), 1);
        assert!(s.account_links("bea").unwrap().is_empty());
        // The root account (an employee) is out of the default scope.
        assert!(s.account_links("root").unwrap().is_empty());
    }

    /// Says every object it is given is someone else's, unless adopted.
    struct Claimed;

    impl Applier for Claimed {
        fn apply(
            &self,
            _connector: &ConnectorConfig,
            document: &Value,
        ) -> std::result::Result<Option<String>, String> {
            if document["adopt"] == true {
                Ok(Some("t-adopted".into()))
            } else {
                Err(disputed("uid=bob carries uidNumber 1"))
            }
        }
    }

    #[test]
    fn a_disputed_job_waits_for_an_admin_and_only_an_admin_adopts() {
        let (s, clock, admin) = setup();
        s.create(&admin, "bob", input("bob@x.io", Kind::Contractor))
            .unwrap();
        assert_eq!(s.connector_round(&Claimed).unwrap(), (0, 1));
        let link = &s.account_links("bob").unwrap()[0];
        assert_eq!(link.status, LinkStatus::Disputed);
        assert_eq!(
            link.last_error.as_deref(),
            Some("uid=bob carries uidNumber 1")
        );
        // Not retried on its own, whatever time passes.
        clock.advance(Duration::days(30));
        assert_eq!(s.connector_round(&Claimed).unwrap(), (0, 0));
        let olga = AccountInput {
            roles: Some(vec![crate::domain::Role::Operator]),
            ..input("olga@x.io", Kind::Employee)
        };
        let olga = s.create(&admin, "olga", olga).unwrap();
        let olga = Actor::account(&olga, crate::service::Source::Cli, None);
        assert!(matches!(
            s.connector_retry_adopting(&olga, "hr", Some("bob"), true),
            Err(Error::Denied(_))
        ));
        assert!(matches!(
            s.connector_retry_adopting(&admin, "hr", None, true),
            Err(Error::Invalid(_))
        ));
        // A plain retry asks again and is refused again.
        s.connector_retry(&olga, "hr", Some("bob")).unwrap();
        assert_eq!(s.connector_round(&Claimed).unwrap(), (0, 1));
        // Adopted: applied, in sync, and the next job is not an adoption.
        s.connector_retry_adopting(&admin, "hr", Some("bob"), true)
            .unwrap();
        assert_eq!(s.connector_round(&Claimed).unwrap(), (1, 0));
        let link = &s.account_links("bob").unwrap()[0];
        assert_eq!(
            (link.status, link.target_id.as_deref()),
            (LinkStatus::InSync, Some("t-adopted"))
        );
        assert!(jobs(&s, &admin).is_empty());
    }

    #[test]
    fn jobs_apply_in_order_and_a_failure_blocks_its_account_until_retried() {
        let (s, clock, admin) = setup();
        s.create(&admin, "bob", input("bob@x.io", Kind::Contractor))
            .unwrap();
        let fake = Fake::default();
        *fake.down.lock().unwrap() = true;
        assert_eq!(s.connector_round(&fake).unwrap(), (0, 1));
        s.disable(&admin, "bob", DisableReason::Manual, Some("x".into()))
            .unwrap();
        let status = s.connector_status(&admin, "hr").unwrap();
        assert_eq!(status.links[0].status, LinkStatus::Failed);
        assert_eq!(status.links[0].last_error.as_deref(), Some("target down"));
        assert_eq!(status.jobs.len(), 2);
        *fake.down.lock().unwrap() = false;
        // Not before the backoff (5 s), then both in order.
        assert_eq!(s.connector_round(&fake).unwrap(), (0, 0));
        clock.advance(Duration::seconds(6));
        assert_eq!(s.connector_round(&fake).unwrap(), (2, 0));
        let seen = fake.seen.lock().unwrap();
        let actions: Vec<&str> = seen.iter().map(|d| d["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["create", "disable"]);
        assert_eq!(seen[1]["link_id"], "t-bob");
        let link = &s.account_links("bob").unwrap()[0];
        assert_eq!(
            (link.status, link.target_id.as_deref()),
            (LinkStatus::InSync, Some("t-bob"))
        );
        assert!(jobs(&s, &admin).is_empty());
    }

    #[test]
    fn an_import_queues_a_create_job_per_account_in_scope_with_increasing_ids() {
        use crate::service::import::{ImportOptions, ImportRow};
        let (s, _clock, admin) = setup();
        s.create(&admin, "bob", input("bob@x.io", Kind::Contractor))
            .unwrap();
        let rows = vec![
            ImportRow {
                line: 2,
                username: "cat".into(),
                input: input("cat@x.io", Kind::Vendor),
            },
            ImportRow {
                line: 3,
                username: "dan".into(),
                input: input("dan@x.io", Kind::Employee),
            },
        ];
        let report = s
            .import(&admin, ImportOptions::default(), || {
                Ok(Box::new(rows.into_iter().map(Ok)))
            })
            .unwrap();
        assert_eq!(report.imported, 2);
        let queued = jobs(&s, &admin);
        let seen: Vec<(u64, &str, JobAction)> = queued
            .iter()
            .map(|j| (j.id, j.account.as_str(), j.action))
            .collect();
        assert_eq!(
            seen,
            [(1, "bob", JobAction::Create), (2, "cat", JobAction::Create)],
            "the employee is out of scope"
        );
        // The next change after the import continues the numbering.
        s.disable(&admin, "cat", DisableReason::Manual, Some("x".into()))
            .unwrap();
        let last = jobs(&s, &admin).pop().unwrap();
        assert_eq!((last.id, last.action), (3, JobAction::Disable));
    }

    #[test]
    fn a_scheduled_reconcile_runs_when_its_hours_have_passed_and_resends_to_a_command_target() {
        let text = format!(
            "{EXAMPLE}\n[[connectors]]\nname = \"hr\"\ntype = \"command\"\ncommand = [\"/bin/true\"]\nreconcile_hours = 1\n"
        );
        let (s, clock, admin) = crate::service::testkit::services_with(&text, Some("root@x.io"));
        s.create(&admin, "bob", input("bob@x.io", Kind::Contractor))
            .unwrap();
        let fake = Fake::default();
        assert_eq!(s.connector_round(&fake).unwrap(), (1, 0));
        // Never reconciled: due now. A command target cannot be read back,
        // so every account in scope is sent again.
        let ran = s.reconcile_due(&fake);
        assert_eq!(
            ran,
            ["hr: the target cannot be read back; 1 accounts resent"]
        );
        assert_eq!(s.connector_round(&fake).unwrap(), (1, 0));
        let last = s.last_reconcile("hr").unwrap().unwrap();
        assert_eq!((last.readable, last.queued), (false, 1));
        // Not again within the hour; again after it.
        assert!(s.reconcile_due(&fake).is_empty());
        clock.advance(Duration::minutes(61));
        assert_eq!(s.reconcile_due(&fake).len(), 1);
        let trail = s
            .audit_tail(
                &admin,
                &crate::service::integrity::AuditFilter {
                    limit: 50,
                    ..Default::default()
                },
            )
            .unwrap();
        let runs = trail
            .iter()
            .filter(|e| e.action == "connector.reconcile" && e.actor == "system:reconcile")
            .count();
        assert_eq!(runs, 2);
    }
}
