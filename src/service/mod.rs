//! The service layer: the only code that changes state. Every front door
//! (offline CLI, ssh exec, console, scheduler) calls these methods with an
//! `Actor`; each method checks authorisation, validates, and commits its
//! records and audit events in one durable transaction.

pub mod account_requests;
pub mod accounts;
pub mod admins;
pub mod authz;
pub mod backup;
pub mod certs;
pub mod clock;
pub mod connect;
pub mod credentials;
pub mod digest;
pub mod groups;
pub mod hosts;
pub mod import;
pub mod index;
pub mod integrity;
pub mod lifecycle;
pub mod login;
pub mod notify;
pub mod passwords;
#[cfg(test)]
mod proptests;
pub mod reports;
pub mod requests;
mod runs;
mod scan;
pub mod scim;
pub mod search;
pub mod sessions;
pub mod sources;
#[cfg(test)]
pub(crate) mod testkit;
pub mod tokens;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, NaiveDate, Utc};

use crate::config::Config;
use crate::domain::audit::{self, GENESIS};
use crate::domain::{Account, AuditEvent, Change, Group, Role};
use crate::store::{Store, StoreError, WriteBatch, SCHEMA_VERSION};
use crate::text::escape_text;

pub use authz::Permission;
pub use clock::{Clock, FixedClock, SystemClock};
pub use index::Indexes;

/// Errors as people and scripts see them; `exit_code` is the contract in DESIGN.md.
/// Messages quote what the client sent (a name, a reason): shown, they are
/// escaped (`crate::text`), so an error stays one harmless line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", escape_text(.0))]
    Invalid(String),
    #[error("{}", escape_text(.0))]
    NotFound(String),
    #[error("permission denied: {}", escape_text(.0))]
    Denied(String),
    #[error("{}", escape_text(.0))]
    Conflict(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{}", escape_text(.0))]
    Failed(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) => 2,
            Error::NotFound(_) => 3,
            Error::Denied(_) => 4,
            Error::Conflict(_) => 5,
            Error::Store(_) | Error::Failed(_) => 1,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Where an actor came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The offline command line on the server's host.
    Cli,
    /// An SSH exec command or console session from this address.
    Ssh(String),
    /// A scheduled job inside the server.
    Scheduler,
    /// The HTTP front door: the client's address and, once authenticated,
    /// the API token used (its name, never its secret) and its scope.
    Http {
        addr: String,
        token: Option<String>,
        scope: Option<tokens::TokenScope>,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Cli => f.write_str("cli"),
            Source::Ssh(addr) => write!(f, "ssh:{addr}"),
            Source::Scheduler => f.write_str("scheduler"),
            Source::Http {
                addr,
                token: Some(token),
                ..
            } => write!(f, "http:{addr} token:{token}"),
            Source::Http { addr, .. } => write!(f, "http:{addr}"),
        }
    }
}

/// Who is acting: an account with its roles, or the local operator/system.
#[derive(Clone, Debug)]
pub struct Actor {
    pub name: String,
    pub roles: BTreeSet<Role>,
    pub source: Source,
    pub session: Option<String>,
    /// True for an actor backed by a stored account (self-service applies).
    pub is_account: bool,
}

impl Actor {
    /// Whoever runs the offline CLI on the host: they own the database files,
    /// so they hold every permission. Named after the OS user for the trail.
    pub fn local_operator() -> Actor {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "operator".into());
        Actor {
            name: format!("local:{user}"),
            roles: BTreeSet::from([Role::Admin]),
            source: Source::Cli,
            session: None,
            is_account: false,
        }
    }

    /// A scheduled job (`system:lifecycle`).
    pub fn system(job: &str) -> Actor {
        Actor {
            name: format!("system:{job}"),
            roles: BTreeSet::from([Role::Admin]),
            source: Source::Scheduler,
            session: None,
            is_account: false,
        }
    }

    /// An authenticated account.
    pub fn account(account: &Account, source: Source, session: Option<String>) -> Actor {
        Actor {
            name: account.username.clone(),
            roles: account.roles.clone(),
            source,
            session,
            is_account: true,
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

thread_local! {
    static INSIDE_WRITE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the current thread as building a transaction under the writer
/// lock, for as long as it lives.
struct InsideWrite(bool);

impl InsideWrite {
    fn enter() -> InsideWrite {
        InsideWrite(INSIDE_WRITE.with(|c| c.replace(true)))
    }

    fn active() -> bool {
        INSIDE_WRITE.with(|c| c.get())
    }
}

impl Drop for InsideWrite {
    fn drop(&mut self) {
        INSIDE_WRITE.with(|c| c.set(self.0));
    }
}

struct AuditHead {
    seq: u64,
    hash: String,
}

/// The services every front door shares. Cheap to clone (`Arc` inside).
#[derive(Clone)]
pub struct Services {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// One writer at a time: uniqueness checks and the audit chain rely on it.
    writer: Mutex<AuditHead>,
    /// Derived indexes, built on first use (offline commands that need none stay fast).
    indexes: RwLock<Option<Indexes>>,
    /// Held by whoever builds the indexes; others wait for that build.
    building: Mutex<()>,
    /// During a build: the accounts changed since its scan began.
    changed_while_building: Mutex<Option<std::collections::HashSet<String>>>,
    /// The sequence of the newest audit event, published after the indexes
    /// caught up with it: open consoles poll it every second.
    generation: std::sync::atomic::AtomicU64,
    sessions: sessions::Registry,
    throttle: Mutex<crate::auth::throttle::Throttle>,
    /// Failed logins per address waiting to be written as one summary event.
    failures: Mutex<login::FailureLog>,
    /// The at-rest key (keys/at_rest.key), loaded on first use.
    sealer: std::sync::OnceLock<std::result::Result<crate::auth::sealed::Sealer, String>>,
    /// Wakes the connector worker after a write queued jobs.
    connect_wake: Arc<tokio::sync::Notify>,
    /// Passwords waiting in memory for the connectors that take them.
    handoff: connect::Handoff,
    /// When the password-expiry scan last ran (it reads every account: hourly).
    password_scan: Mutex<Option<DateTime<Utc>>>,
    /// When the next digest may be due (None: unknown, look): the
    /// notification worker asks every few seconds without reading the queue.
    digest_due: Mutex<Option<DateTime<Utc>>>,
    /// What reaches the targets (set by the binary: `crate::connect::Runner`).
    applier: std::sync::OnceLock<Arc<dyn connect::Applier>>,
    /// The user CA (keys/user_ca), loaded or made on first use (see `certs`).
    user_ca: std::sync::OnceLock<std::result::Result<russh::keys::PrivateKey, String>>,
    /// Host logins since each host's last `host.login` event (see `hosts`).
    host_seen: Mutex<HashMap<String, (DateTime<Utc>, u64)>>,
    /// Successful logins waiting to be written together (group commit).
    logins: login::LoginQueue,
    /// API tokens used since the last flush: name → (last use, uses); written
    /// in one transaction every few seconds (see `tokens::flush_token_use`).
    token_used: Mutex<HashMap<String, (DateTime<Utc>, u64)>>,
    /// What reads the directories (set by the binary: `crate::sources::LdapReader`).
    source_reader: std::sync::OnceLock<Arc<dyn sources::SourceReader>>,
    /// Each source's latest run in this process (a run that changed nothing is only here).
    source_last: Mutex<HashMap<String, sources::SourceRun>>,
    /// Sources with a run under way.
    source_running: Mutex<std::collections::HashSet<String>>,
}

impl Services {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Services> {
        // An import cut short by a crash is finished or discarded before
        // anything reads the records or the audit head.
        if let Some(done) = import::recover(store.as_ref())? {
            tracing::warn!("{done}");
        }
        if let Some(n) = index::persisted::ensure(store.as_ref())? {
            if n > 0 {
                tracing::info!(accounts = n, "wrote the stored uniqueness indexes");
            }
        }
        let head = match store.audit_last()? {
            Some(last) => AuditHead {
                seq: last.seq,
                hash: last.hash,
            },
            None => AuditHead {
                seq: 0,
                hash: GENESIS.to_string(),
            },
        };
        if let Some(bytes) = store.meta("schema_version")? {
            let version: u32 = String::from_utf8_lossy(&bytes).parse().unwrap_or(0);
            if version != SCHEMA_VERSION {
                return Err(Error::Failed(format!(
                    "database schema version {version} is not the supported version {SCHEMA_VERSION}"
                )));
            }
        }
        let throttle_config = |c: &Config| {
            let secs = std::time::Duration::from_secs;
            crate::auth::throttle::ThrottleConfig {
                max_failures: c.auth.max_failures,
                window: secs(c.auth.failure_window_seconds),
                lockout: secs(c.auth.lockout_seconds),
                max_lockout: secs(c.auth.lockout_max_seconds),
            }
        };
        let seq = head.seq;
        Ok(Services {
            inner: Arc::new(Inner {
                store,
                clock,
                writer: Mutex::new(head),
                indexes: RwLock::new(None),
                building: Mutex::new(()),
                changed_while_building: Mutex::new(None),
                generation: std::sync::atomic::AtomicU64::new(seq),
                sessions: sessions::Registry::default(),
                sealer: std::sync::OnceLock::new(),
                connect_wake: Arc::new(tokio::sync::Notify::new()),
                handoff: connect::Handoff::default(),
                applier: std::sync::OnceLock::new(),
                host_seen: Mutex::new(HashMap::new()),
                logins: login::LoginQueue::default(),
                token_used: Mutex::new(HashMap::new()),
                source_reader: std::sync::OnceLock::new(),
                source_last: Mutex::new(HashMap::new()),
                source_running: Mutex::new(Default::default()),
                user_ca: std::sync::OnceLock::new(),
                throttle: Mutex::new(crate::auth::throttle::Throttle::new(throttle_config(
                    &config,
                ))),
                failures: Mutex::new(login::FailureLog::default()),
                password_scan: Mutex::new(None),
                digest_due: Mutex::new(None),
                config,
            }),
        })
    }

    /// Seals and opens secrets kept at rest (TOTP seeds).
    pub(crate) fn sealer(&self) -> Result<&crate::auth::sealed::Sealer> {
        self.inner
            .sealer
            .get_or_init(|| {
                crate::auth::sealed::Sealer::load_or_create(&self.config().server.keys_dir)
            })
            .as_ref()
            .map_err(|e| Error::Failed(e.clone()))
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    pub fn is_initialized(&self) -> Result<bool> {
        Ok(self.store().meta("initialized_at")?.is_some())
    }

    /// Builds the indexes from the records (used at start and by `check`):
    /// the records are read and decoded on the account reader's thread
    /// while this one indexes them (`each_record`; at a million accounts
    /// each half takes several seconds).
    pub fn rebuild_indexes(&self) -> Result<Indexes> {
        let mut indexes = Indexes::new(&self.config().policy);
        let mut bad = None;
        self.each_record(None, None, &mut |account| {
            match account {
                Ok(account) => indexes.insert(&account),
                Err((key, why)) => bad = Some(StoreError::Corrupt { key, why }),
            }
            Ok(true)
        })?;
        match bad {
            Some(e) => Err(e.into()),
            None => {
                indexes.search.compact();
                Ok(indexes)
            }
        }
    }

    /// Read access to the indexes, building them on first use (callers
    /// that arrive while another builds wait for that build).
    pub(crate) fn indexes(&self) -> Result<RwLockReadGuard<'_, Option<Indexes>>> {
        {
            let guard = self.read_indexes()?;
            if guard.is_some() {
                return Ok(guard);
            }
        }
        let _building = self
            .inner
            .building
            .lock()
            .map_err(|_| Error::Failed("index build lock poisoned".into()))?;
        if self.read_indexes()?.is_some() {
            return self.read_indexes();
        }
        if InsideWrite::active() {
            // Building takes the writer lock this thread holds.
            return Err(Error::Failed(
                "internal error: the indexes were needed inside a write before they were built"
                    .into(),
            ));
        }
        // Writes go on while the records are read: each notes the names it
        // changed, and those are read again once the scan is done.
        *self.changed_while_building()? = Some(Default::default());
        let built = self.rebuild_indexes();
        let head = self.lock_writer()?;
        let changed = self.changed_while_building()?.take().unwrap_or_default();
        let mut built = built?;
        if !changed.is_empty() {
            built.remove_names(&changed);
            for name in &changed {
                if let Some(account) = self.store().account(name)? {
                    built.insert(&account);
                }
            }
        }
        *self.write_indexes()? = Some(built);
        drop(head);
        self.read_indexes()
    }

    fn changed_while_building(
        &self,
    ) -> Result<MutexGuard<'_, Option<std::collections::HashSet<String>>>> {
        self.inner
            .changed_while_building
            .lock()
            .map_err(|_| Error::Failed("index change log poisoned".into()))
    }

    /// A second handle on the same store and clock, without indexes (as
    /// the server has just after it starts).
    #[cfg(test)]
    pub(crate) fn reopen(&self) -> Services {
        Services::new(
            self.inner.config.clone(),
            self.inner.store.clone(),
            self.inner.clock.clone(),
        )
        .unwrap()
    }

    /// Holds the index build lock, as a build under way does.
    #[cfg(test)]
    pub(crate) fn hold_index_build(&self) -> MutexGuard<'_, ()> {
        self.inner.building.lock().unwrap()
    }

    /// Whether a build of the in-memory indexes is under way (the server
    /// starts one as it starts listening).
    pub fn indexes_building(&self) -> bool {
        !self.indexes_ready() && self.inner.building.try_lock().is_err()
    }

    /// Whether the in-memory indexes are built (the console says
    /// "indexing…" until they are).
    pub fn indexes_ready(&self) -> bool {
        self.read_indexes().is_ok_and(|g| g.is_some())
    }

    pub(crate) fn write_indexes(&self) -> Result<RwLockWriteGuard<'_, Option<Indexes>>> {
        self.inner
            .indexes
            .write()
            .map_err(|_| Error::Failed("index lock poisoned".into()))
    }

    fn read_indexes(&self) -> Result<RwLockReadGuard<'_, Option<Indexes>>> {
        self.inner
            .indexes
            .read()
            .map_err(|_| Error::Failed("index lock poisoned".into()))
    }

    /// Builds the in-memory indexes now (the server starts this as it starts listening).
    pub fn warm_up(&self) -> Result<usize> {
        let guard = self.indexes()?;
        Ok(guard.as_ref().map_or(0, |i| i.count()))
    }

    /// Gives the service what reaches the targets (once; later calls are ignored).
    pub fn set_applier(&self, applier: Arc<dyn connect::Applier>) {
        let _ = self.inner.applier.set(applier);
    }

    /// What reaches the targets, for the worker and `connector reconcile`.
    pub fn applier(&self) -> Result<Arc<dyn connect::Applier>> {
        self.inner
            .applier
            .get()
            .cloned()
            .ok_or_else(|| Error::Failed("no connector runner in this process".into()))
    }

    /// What the connector worker waits on besides its tick.
    pub fn connector_waker(&self) -> Arc<tokio::sync::Notify> {
        self.inner.connect_wake.clone()
    }

    pub(crate) fn wake_connectors(&self) {
        self.inner.connect_wake.notify_one();
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, AuditHead>> {
        self.inner
            .writer
            .lock()
            .map_err(|_| Error::Failed("writer lock poisoned".into()))
    }

    /// Runs `build` with a transaction under the writer lock, then commits
    /// its records and audit events atomically and durably, then updates the
    /// indexes. Nothing is written if `build` fails.
    pub(crate) fn write<T>(
        &self,
        actor: &Actor,
        build: impl FnOnce(&mut Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.write_or_try(actor, false, build)
    }

    /// Like `write`, but with `dry_run` the transaction is built and checked
    /// in full, then dropped: nothing is written.
    pub(crate) fn write_or_try<T>(
        &self,
        actor: &Actor,
        dry_run: bool,
        build: impl FnOnce(&mut Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut head = self.lock_writer()?;
        let now = self.now();
        let index_guard = self.read_indexes()?;
        let mut tx = Tx::new(self, index_guard.as_ref(), actor, now);
        let value = {
            let _inside = InsideWrite::enter();
            build(&mut tx)?
        };
        if dry_run {
            return Ok(value);
        }
        // Certificates of accounts cut off here are revoked with the change.
        tx.revoke_certs()?;
        // Provisioning jobs go in the same transaction as the change.
        let jobs_queued = tx.queue_connector_jobs()?;
        let Tx {
            accounts,
            groups,
            mut events,
            meta,
            mut records,
            handed,
            ..
        } = tx;
        drop(index_guard);
        // The indexes kept on disk change with the records, atomically.
        records.extend(index::persisted::ops(
            accounts
                .values()
                .map(|(old, new)| (old.as_ref(), new.as_ref())),
        ));

        // Each event is encoded once: the bytes hashed are the bytes stored.
        let (mut seq, mut hash) = (head.seq, head.hash.clone());
        let mut audit_encoded = Vec::with_capacity(events.len());
        for event in &mut events {
            let encoded = crate::store::chain_encode(event, seq, &hash)?;
            seq = encoded.seq;
            hash = encoded.hash.clone();
            audit_encoded.push(encoded);
        }
        let batch = WriteBatch {
            accounts: accounts
                .iter()
                .map(|(name, (_, new))| (name.clone(), new.clone()))
                .collect(),
            groups: groups.into_iter().collect(),
            audit_encoded,
            meta,
            records,
            ..Default::default()
        };
        self.store().commit(&batch)?;
        // Committed: the password may now wait for its jobs (in memory).
        if !handed.is_empty() {
            self.inner.handoff.put(handed);
        }
        head.seq = seq;
        head.hash = hash;
        self.indexes_follow(accounts.values().cloned());
        self.inner
            .generation
            .store(seq, std::sync::atomic::Ordering::Release);
        drop(head);
        for (old, new) in accounts.values() {
            self.enforce_sessions(old.as_ref(), new.as_ref());
        }
        if jobs_queued > 0 {
            self.wake_connectors();
        }
        Ok(value)
    }

    /// Brings the in-memory indexes up to date with a committed change (the
    /// caller holds the writer lock). While they are being built, the names
    /// changed are noted instead, for the builder to read again.
    fn indexes_follow(
        &self,
        changes: impl IntoIterator<Item = (Option<Account>, Option<Account>)>,
    ) {
        let Ok(mut guard) = self.write_indexes() else {
            return;
        };
        match guard.as_mut() {
            Some(indexes) => {
                for (old, new) in changes {
                    if let Some(old) = &old {
                        indexes.remove(old);
                    }
                    if let Some(new) = &new {
                        indexes.insert(new);
                    }
                }
            }
            None => {
                drop(guard);
                if let Ok(mut changed) = self.inner.changed_while_building.lock() {
                    if let Some(names) = changed.as_mut() {
                        for (old, new) in changes {
                            if let Some(a) = new.or(old) {
                                names.insert(a.username);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Records a refused action in the trail, then returns the refusal.
    pub(crate) fn deny(
        &self,
        actor: &Actor,
        permission: Permission,
        target: Option<&str>,
    ) -> Error {
        self.deny_because(actor, permission, target, None)
    }

    /// `deny`, saying why when a rule beyond the permission decided it.
    pub(crate) fn deny_because(
        &self,
        actor: &Actor,
        permission: Permission,
        target: Option<&str>,
        why: Option<String>,
    ) -> Error {
        let mut what = match target {
            Some(t) => format!("{} may not {} {t}", actor.name, permission.describe()),
            None => format!("{} may not {}", actor.name, permission.describe()),
        };
        if let Some(why) = why {
            what = format!("{what} ({why})");
        }
        let detail = what.clone();
        let recorded = self.write(actor, |tx| {
            tx.event("auth.denied", target, vec![], Some(detail));
            Ok(())
        });
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record a denied action");
        }
        Error::Denied(what)
    }

    /// An account by name, or NotFound.
    pub fn load(&self, name: &str) -> Result<Account> {
        self.store()
            .account(name)?
            .ok_or_else(|| Error::NotFound(format!("no account named '{name}'")))
    }

    pub fn groups_all(&self) -> Result<Vec<Group>> {
        Ok(self.store().groups()?)
    }
}

/// A write in progress: staged records and events, checked against the
/// indexes plus what this transaction already changed.
pub(crate) struct Tx<'a> {
    services: &'a Services,
    /// The in-memory indexes when they are built; otherwise lookups go to
    /// the indexes kept on disk (an offline command, a server still indexing).
    indexes: Option<&'a Indexes>,
    pub actor: &'a Actor,
    pub now: DateTime<Utc>,
    /// username → (as it was in the store, as it will be).
    accounts: BTreeMap<String, (Option<Account>, Option<Account>)>,
    groups: BTreeMap<String, Option<Group>>,
    events: Vec<AuditEvent>,
    meta: Vec<(String, Option<Vec<u8>>)>,
    records: Vec<(crate::store::Collection, String, Option<Vec<u8>>)>,
    /// The next outbox id within this transaction.
    outbox_next: Option<u64>,
    /// The next provisioning job id within this transaction.
    jobs_next: Option<u64>,
    /// The next uidNumber within this transaction.
    uid_next: Option<u32>,
    email_delta: HashMap<String, Option<String>>,
    fingerprint_delta: HashMap<String, Option<String>>,
    /// What earlier chunks of a bulk import staged (not yet in the store).
    overlay: Option<&'a import::Overlay>,
    /// The password this transaction sets, for the connectors that take it.
    password_for: Option<(String, zeroize::Zeroizing<String>)>,
    /// (job id, password) to hand over once this transaction commits.
    handed: Vec<(u64, zeroize::Zeroizing<String>)>,
}

impl<'a> Tx<'a> {
    /// An empty transaction of `actor` at `now`, checked against `indexes`
    /// (or, without them, against the indexes kept on disk).
    pub(crate) fn new(
        services: &'a Services,
        indexes: Option<&'a Indexes>,
        actor: &'a Actor,
        now: DateTime<Utc>,
    ) -> Tx<'a> {
        Tx {
            services,
            indexes,
            actor,
            now,
            accounts: BTreeMap::new(),
            groups: BTreeMap::new(),
            events: Vec::new(),
            meta: Vec::new(),
            records: Vec::new(),
            outbox_next: None,
            jobs_next: None,
            uid_next: None,
            email_delta: HashMap::new(),
            fingerprint_delta: HashMap::new(),
            overlay: None,
            password_for: None,
            handed: Vec::new(),
        }
    }
}

impl Tx<'_> {
    pub fn today(&self) -> NaiveDate {
        self.now.date_naive()
    }

    pub fn config(&self) -> &Config {
        self.services.config()
    }

    /// The account as this transaction sees it.
    pub fn get(&self, name: &str) -> Result<Option<Account>> {
        match self.accounts.get(name) {
            Some((_, staged)) => Ok(staged.clone()),
            None => match self.overlay.and_then(|o| o.chunk_of(name)) {
                Some(_) => self.overlay.map_or(Ok(None), |o| o.account(name)),
                None => Ok(self.services.store().account(name)?),
            },
        }
    }

    /// Whether an account of that name exists (no record decoded).
    pub fn exists(&self, name: &str) -> Result<bool> {
        Ok(match self.accounts.get(name) {
            Some((_, staged)) => staged.is_some(),
            None => {
                self.overlay.is_some_and(|o| o.chunk_of(name).is_some())
                    || match self.indexes {
                        Some(indexes) => indexes.exists(name),
                        None => self.services.store().account_exists(name)?,
                    }
            }
        })
    }

    pub fn load(&self, name: &str) -> Result<Account> {
        self.get(name)?
            .ok_or_else(|| Error::NotFound(format!("no account named '{name}'")))
    }

    pub fn email_owner(&self, email: &str) -> Result<Option<String>> {
        let key = email.to_lowercase();
        if let Some(owner) = self.email_delta.get(&key) {
            return Ok(owner.clone());
        }
        if let Some(owner) = self.overlay.and_then(|o| o.email_owner(&key)) {
            return Ok(Some(owner));
        }
        match self.indexes {
            Some(indexes) => Ok(indexes.email_owner(&key)),
            None => self.persisted_owner(&index::persisted::email(&key)),
        }
    }

    pub fn fingerprint_owner(&self, fingerprint: &str) -> Result<Option<String>> {
        match self.fingerprint_delta.get(fingerprint) {
            Some(owner) => Ok(owner.clone()),
            None => match self.indexes {
                Some(indexes) => Ok(indexes.fingerprint_owner(fingerprint)),
                None => self.persisted_owner(&index::persisted::fingerprint(fingerprint)),
            },
        }
    }

    fn persisted_owner(&self, key: &str) -> Result<Option<String>> {
        let value = self
            .services
            .store()
            .record(crate::store::Collection::Index, key)?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The names after `prefix` of the persisted index entries under it.
    fn persisted_names(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        self.services.store().scan_records(
            crate::store::Collection::Index,
            prefix,
            &mut |key, _| {
                out.push(key[prefix.len()..].to_string());
                true
            },
        )?;
        Ok(out)
    }

    /// Accounts whose stored sponsor is `sponsor` (before this transaction).
    /// Without the in-memory indexes this reads every record (only a purge
    /// asks).
    pub fn sponsored_by(&self, sponsor: &str) -> Result<Vec<String>> {
        if let Some(indexes) = self.indexes {
            return Ok(indexes.sponsored_by(sponsor).into_iter().collect());
        }
        let mut out = Vec::new();
        self.services.store().scan_accounts(&mut |name, account| {
            if account.is_ok_and(|a| a.sponsor.as_deref() == Some(sponsor)) {
                out.push(name);
            }
        })?;
        Ok(out)
    }

    /// Accounts with the admin role (before this transaction).
    pub fn admins(&self) -> Result<Vec<String>> {
        match self.indexes {
            Some(indexes) => Ok(indexes.admins().map(str::to_string).collect()),
            None => self.persisted_names(index::persisted::ADMINS),
        }
    }

    pub fn group_exists(&self, name: &str) -> Result<bool> {
        match self.groups.get(name) {
            Some(staged) => Ok(staged.is_some()),
            None if self.overlay.is_some_and(|o| o.has_group(name)) => Ok(true),
            None => Ok(self
                .services
                .store()
                .groups()?
                .iter()
                .any(|g| g.name == name)),
        }
    }

    /// Stages a new version of an account (None removes it) and its audit event.
    pub fn put(
        &mut self,
        action: &str,
        old: Option<&Account>,
        new: Option<Account>,
        detail: Option<String>,
    ) {
        let name = new
            .as_ref()
            .map(|a| a.username.clone())
            .or_else(|| old.map(|a| a.username.clone()))
            .unwrap_or_default();
        let changes = audit::diff(old, new.as_ref());
        self.stage(old, new);
        self.event(action, Some(&name), changes, detail);
    }

    /// Stages a record change without an event of its own.
    pub fn stage(&mut self, old: Option<&Account>, new: Option<Account>) {
        if let Some(old) = old {
            self.email_delta.insert(old.email_key(), None);
            for key in &old.credentials.keys {
                self.fingerprint_delta.insert(key.fingerprint.clone(), None);
            }
        }
        let name = match (&new, old) {
            (Some(n), _) => n.username.clone(),
            (None, Some(o)) => o.username.clone(),
            (None, None) => return,
        };
        if let Some(n) = &new {
            self.email_delta.insert(n.email_key(), Some(name.clone()));
            for key in &n.credentials.keys {
                self.fingerprint_delta
                    .insert(key.fingerprint.clone(), Some(name.clone()));
            }
        }
        let original = match self.accounts.remove(&name) {
            Some((original, _)) => original,
            None => old.cloned(),
        };
        self.accounts.insert(name, (original, new));
    }

    pub fn put_group(&mut self, name: &str, group: Option<Group>) {
        self.groups.insert(name.to_string(), group);
    }

    /// Stages a record of a smaller collection (a request, an outbox entry).
    pub fn put_record<T: serde::Serialize>(
        &mut self,
        collection: crate::store::Collection,
        key: &str,
        value: Option<&T>,
    ) -> Result<()> {
        let bytes = value
            .map(|v| serde_json::to_vec(v).map_err(|e| Error::Failed(format!("encode: {e}"))))
            .transpose()?;
        self.records.push((collection, key.to_string(), bytes));
        Ok(())
    }

    pub fn meta_remove(&mut self, key: &str) {
        self.meta.push((key.to_string(), None));
    }

    pub fn set_meta(&mut self, key: &str, value: &str) {
        self.meta
            .push((key.to_string(), Some(value.as_bytes().to_vec())));
    }

    pub fn event(
        &mut self,
        action: &str,
        target: Option<&str>,
        changes: Vec<Change>,
        detail: Option<String>,
    ) {
        self.events.push(AuditEvent {
            seq: 0,
            at: self.now,
            actor: self.actor.name.clone(),
            source: self.actor.source.to_string(),
            session: self.actor.session.clone(),
            action: action.to_string(),
            // Names and texts a client supplied are kept, but never megabytes of them.
            target: target
                .map(|t| crate::bounded::cut(t, crate::bounded::CLIENT_TEXT).into_owned()),
            changes,
            detail: detail.map(|d| {
                match crate::bounded::cut(&d, 4 * crate::bounded::CLIENT_TEXT) {
                    std::borrow::Cow::Borrowed(_) => d,
                    std::borrow::Cow::Owned(c) => c,
                }
            }),
            prev_hash: String::new(),
            hash: String::new(),
        });
    }
}
