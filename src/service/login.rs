//! Logins: who may try, which factors their role needs, and the record of
//! every success and failure. Called by the SSH front door; the factors
//! themselves are checked here so every door gets the same rules.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use chrono::{DateTime, Utc};

use super::authz::Permission;
use super::credentials::{hash_password, verify_password};
use super::{Actor, Error, Result, Services, Source};
use crate::auth::totp;
use crate::config::LoginMethod;
use crate::domain::lifecycle::login_allowed;
use crate::domain::{Account, Role};

/// Why a login step failed. `reason` is for the audit trail, never for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub reason: String,
}

fn refused(reason: impl Into<String>) -> Refused {
    Refused {
        reason: reason.into(),
    }
}

/// The outcome of a verified public key.
#[derive(Clone, Debug)]
pub enum KeyOutcome {
    /// The key is enough for this account.
    Accept(Box<Account>),
    /// The key counts; a TOTP code must follow.
    NeedTotp(Box<Account>),
}

/// What a keyboard-interactive exchange should ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prompts {
    PasswordAndCode,
    Password,
    CodeOnly,
    EnrolmentCode,
    /// `New password:` and `Repeat:` after a password login whose password
    /// is expired or temporary (the session starts once it is changed).
    NewPassword,
}

/// How long failed logins from one address are gathered into one audit event.
pub const FAILURE_WINDOW_SECONDS: i64 = 60;
/// Addresses tracked at once; past it, failures go into one shared summary.
const FAILURE_ADDRESSES: usize = 10_000;
/// Accounts named in a summary.
const FAILURE_SAMPLE: usize = 5;
/// Failed connections of one address written one by one in a window.
const FAILURE_EVENTS_PER_ADDRESS: u32 = 10;
/// Failed connections written one by one in a window, all addresses together.
const FAILURE_EVENTS_IN_ALL: u32 = 100;

/// Failed logins not yet written. In each window the first failures of an
/// address (and of all addresses together) are events of their own; past
/// that they are counted and written as one summary per address when the
/// window ends, so a flood costs a bounded number of events per minute.
#[derive(Default)]
pub struct FailureLog {
    windows: std::collections::HashMap<Option<IpAddr>, FailureWindow>,
    /// Individual events written in the current global window.
    all: Option<(DateTime<Utc>, u32)>,
}

struct FailureWindow {
    started: DateTime<Utc>,
    written: u32,
    more: u64,
    accounts: BTreeSet<String>,
}

/// A successful login waiting for its audit event to be written (see
/// `Services::login_succeeded`).
struct PendingLogin {
    name: String,
    ip: IpAddr,
    method: String,
    fingerprint: Option<String>,
    totp_step: Option<u64>,
    result: Arc<Mutex<Option<Result<Account>>>>,
}

/// The logins waiting to be written, and who writes them.
#[derive(Default)]
pub(crate) struct LoginQueue {
    queue: Mutex<Vec<PendingLogin>>,
    leader: Mutex<()>,
    batches: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// One login inside a group transaction: last login, the key's last use,
/// the TOTP step, and the `auth.login` event in the name of the account.
/// Refusals come before anything is staged, so a refused login leaves the
/// others of its group untouched.
fn record_login(tx: &mut super::Tx<'_>, login: &PendingLogin) -> Result<Account> {
    let name = login.name.as_str();
    let old = tx.load(name)?;
    let mut new = old.clone();
    new.last_login = Some(tx.now);
    if let Some(fp) = &login.fingerprint {
        if let Some(k) = new
            .credentials
            .keys
            .iter_mut()
            .find(|k| &k.fingerprint == fp)
        {
            k.last_used = Some(tx.now);
        }
    }
    if let Some(step) = login.totp_step {
        if new
            .credentials
            .totp_last_step
            .is_some_and(|last| step <= last)
        {
            return Err(Error::Conflict("verification code already used".into()));
        }
        new.credentials.totp_last_step = Some(step);
    }
    tx.stage(Some(&old), Some(new.clone()));
    let (method, ip) = (&login.method, login.ip);
    let detail = match &login.fingerprint {
        Some(fp) => format!("{method} {fp} from {ip}"),
        None => format!("{method} from {ip}"),
    };
    tx.event("auth.login", Some(name), vec![], Some(detail));
    if let Some(event) = tx.events.last_mut() {
        event.actor = name.to_string();
        event.source = Source::Ssh(ip.to_string()).to_string();
        event.session = None;
    }
    Ok(new)
}

impl Services {
    fn throttle<T>(&self, f: impl FnOnce(&mut crate::auth::throttle::Throttle) -> T) -> T {
        match self.inner.throttle.lock() {
            Ok(mut t) => f(&mut t),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Is this address exempt from lockouts (`[auth] throttle_exempt`)?
    pub fn throttle_exempt(&self, ip: IpAddr) -> bool {
        self.config()
            .auth
            .throttle_exempt
            .iter()
            .any(|n| n.contains(&ip))
    }

    /// Is this address or account locked out right now (for passwords and codes)?
    pub fn login_locked(&self, name: &str, ip: IpAddr) -> Option<DateTime<Utc>> {
        if self.throttle_exempt(ip) {
            return None;
        }
        let now = self.now();
        self.throttle(|t| {
            t.locked(&format!("ip:{ip}"), now)
                .or_else(|| t.locked(&format!("user:{name}"), now))
        })
    }

    /// Counts a failed password or code attempt against the address and the
    /// account (not from an exempt address; not while already locked).
    pub fn login_failed_attempt(&self, name: &str, ip: IpAddr) {
        if self.throttle_exempt(ip) {
            return;
        }
        let now = self.now();
        let locked = self.throttle(|t| {
            t.prune(now);
            let by_ip = t.fail(&format!("ip:{ip}"), now);
            let by_user = t.fail(&format!("user:{name}"), now);
            by_ip
                .map(|u| (format!("address {ip}"), u))
                .into_iter()
                .chain(by_user.map(|u| (format!("account {name}"), u)))
                .collect::<Vec<_>>()
        });
        for (what, until) in locked {
            crate::log_limited!(
                warn,
                "lockout",
                "{} locked out until {until}",
                crate::text::Escaped(&what)
            );
        }
    }

    /// Current lockouts: (`address 1.2.3.4` | `account bob`, until).
    pub fn auth_lockouts(&self, actor: &Actor) -> Result<Vec<Lockout>> {
        self.authorize(actor, Permission::ReadLockouts, None)?;
        let now = self.now();
        Ok(self
            .throttle(|t| t.lockouts(now))
            .into_iter()
            .filter_map(|(key, until)| {
                let (kind, who) = key.split_once(':')?;
                Some(Lockout {
                    kind: if kind == "ip" { "address" } else { "account" }.to_string(),
                    who: who.to_string(),
                    until,
                    why: format!(
                        "{} failed password or code attempts within {} s",
                        self.config().auth.max_failures,
                        self.config().auth.failure_window_seconds
                    ),
                })
            })
            .collect())
    }

    /// Lifts the lockout of an address or an account (admin), audited.
    pub fn auth_unlock(&self, actor: &Actor, what: &str) -> Result<bool> {
        self.authorize(actor, Permission::Unlock, None)?;
        let key = if what.parse::<IpAddr>().is_ok() {
            format!("ip:{what}")
        } else {
            crate::domain::validate::validate_username(what).map_err(Error::Invalid)?;
            format!("user:{what}")
        };
        let now = self.now();
        let was = self.throttle(|t| t.unlock(&key, now));
        let what = what.to_string();
        self.write(actor, |tx| {
            tx.event(
                "auth.unlock",
                Some(&what),
                vec![],
                Some(if was {
                    "lockout lifted".to_string()
                } else {
                    "was not locked; failure count reset".to_string()
                }),
            );
            Ok(())
        })?;
        Ok(was)
    }

    /// The checks every method shares: exists, active within its dates,
    /// address in its allowlist — and, for passwords and codes (`lockable`),
    /// not locked out. A verified key is never refused by a lockout: a key
    /// cannot be guessed, and the lockout must not become a way to shut the
    /// admins out.
    pub fn login_gate(
        &self,
        name: &str,
        ip: IpAddr,
        lockable: bool,
    ) -> std::result::Result<Account, Refused> {
        if lockable {
            if let Some(until) = self.login_locked(name, ip) {
                return Err(refused(format!(
                    "locked out until {}",
                    until.format("%H:%M:%S UTC")
                )));
            }
        }
        let account = match self.store().account(name) {
            Ok(Some(a)) => a,
            Ok(None) => return Err(refused("unknown user")),
            Err(e) => return Err(refused(format!("store error: {e}"))),
        };
        login_allowed(&account, self.today()).map_err(|e| refused(e.to_string()))?;
        if !account.allowlist.is_empty() && !account.allowlist.iter().any(|n| n.contains(&ip)) {
            return Err(refused(format!(
                "address {ip} is not in the account's allowlist"
            )));
        }
        Ok(account)
    }

    /// Whether an open session's account may still be logged in (dates, status).
    pub fn login_still_allowed(&self, name: &str) -> std::result::Result<(), String> {
        match self.store().account(name) {
            Ok(Some(account)) => login_allowed(&account, self.today()).map_err(|e| e.to_string()),
            Ok(None) => Err("account removed".into()),
            Err(_) => Ok(()),
        }
    }

    /// Whether `fingerprint` is one of `name`'s keys (the probe before a
    /// signature; changes nothing): a host's (`Some(true)`), a person's
    /// (`Some(false)`) or not registered (`None`). The SSH front door answers
    /// a host's signed login at once (`host_key_login`).
    pub fn key_probe(&self, name: &str, fingerprint: &str) -> Option<bool> {
        match self.store().account(name) {
            Ok(Some(a)) if a.key(fingerprint).is_some() => Some(crate::domain::host::is_host(&a)),
            _ => None,
        }
    }

    /// A host's signed key login, for sshd's every-login query: the checks
    /// of `login_key` and the host's login record, when that record costs
    /// no write (the hourly `host.login` event is not due). Reads only, so
    /// the SSH front door runs it on its own task instead of two hops
    /// through the blocking pool. `Ok(None)`: not a host, or a write is
    /// due — use `login_key` and `login_succeeded` as for anyone.
    pub fn host_key_login(
        &self,
        name: &str,
        ip: IpAddr,
        fingerprint: &str,
    ) -> std::result::Result<Option<Account>, Refused> {
        match self.login_key(name, ip, fingerprint)? {
            KeyOutcome::Accept(account) if crate::domain::host::is_host(&account) => {
                Ok(self.host_seen_without_write(name).then_some(*account))
            }
            _ => Ok(None),
        }
    }

    pub fn login_methods(&self, account: &Account) -> Vec<LoginMethod> {
        self.config().auth.methods_for(&account.roles)
    }

    /// A public key whose signature russh verified.
    pub fn login_key(
        &self,
        name: &str,
        ip: IpAddr,
        fingerprint: &str,
    ) -> std::result::Result<KeyOutcome, Refused> {
        let account = self.login_gate(name, ip, false)?;
        let Some(key) = account.key(fingerprint) else {
            return Err(refused(format!(
                "key {fingerprint} is not registered to {name}"
            )));
        };
        if key.expires_on.is_some_and(|exp| exp < self.today()) {
            return Err(refused(format!(
                "key {fingerprint} expired on {}",
                key.expires_on.unwrap_or_default()
            )));
        }
        // A host logs in with its key and nothing else, whatever the role
        // policy asks of people.
        if crate::domain::host::is_host(&account) {
            return Ok(KeyOutcome::Accept(Box::new(account)));
        }
        let methods = self.login_methods(&account);
        if methods.contains(&LoginMethod::Key) {
            Ok(KeyOutcome::Accept(Box::new(account)))
        } else if methods.contains(&LoginMethod::KeyTotp)
            && account.credentials.totp_secret.is_some()
        {
            Ok(KeyOutcome::NeedTotp(Box::new(account)))
        } else {
            Err(refused(format!(
                "role policy does not allow key login for {name} (allowed: {})",
                describe(&methods)
            )))
        }
    }

    /// Which prompts to show `name` (unknown users see the same as a password user).
    pub fn login_prompts(&self, name: &str, key_done: bool) -> Prompts {
        if key_done {
            return Prompts::CodeOnly;
        }
        if self.enrolment_pending(name) {
            return Prompts::EnrolmentCode;
        }
        match self.store().account(name) {
            Ok(Some(a)) => {
                let methods = self.login_methods(&a);
                if methods.contains(&LoginMethod::Password)
                    && !methods.contains(&LoginMethod::PasswordTotp)
                {
                    Prompts::Password
                } else {
                    Prompts::PasswordAndCode
                }
            }
            _ => Prompts::PasswordAndCode,
        }
    }

    /// Password (and code) answers. Costs one argon2 verification whether or
    /// not the user exists, so both take the same time to refuse.
    /// Returns the account and the TOTP step to remember.
    pub fn login_password(
        &self,
        name: &str,
        ip: IpAddr,
        password: &str,
        code: Option<&str>,
    ) -> std::result::Result<(Account, Option<u64>, LoginMethod), Refused> {
        let gate = self.login_gate(name, ip, true);
        let hash = gate
            .as_ref()
            .ok()
            .and_then(|a| a.credentials.password_hash.clone())
            .unwrap_or_else(|| self.dummy_hash().to_string());
        let password_ok = verify_password(password, &hash);
        let account = gate?;
        if account.credentials.password_hash.is_none() {
            return Err(refused(format!("{name} has no password")));
        }
        if !password_ok {
            return Err(refused("wrong password"));
        }
        let methods = self.login_methods(&account);
        if let Some(secret) = account.credentials.totp_secret.as_deref() {
            if methods.contains(&LoginMethod::PasswordTotp) {
                let step = self.check_code(&account, secret, code.unwrap_or_default())?;
                return Ok((account, Some(step), LoginMethod::PasswordTotp));
            }
        }
        if methods.contains(&LoginMethod::Password) {
            return Ok((account, None, LoginMethod::Password));
        }
        Err(refused(format!(
            "role policy does not allow this login for {name} (allowed: {}{})",
            describe(&methods),
            if account.credentials.totp_secret.is_none() {
                "; no TOTP enrolled"
            } else {
                ""
            }
        )))
    }

    /// The second factor after a key.
    pub fn login_code(
        &self,
        name: &str,
        ip: IpAddr,
        code: &str,
    ) -> std::result::Result<(Account, u64), Refused> {
        let account = self.login_gate(name, ip, true)?;
        let secret = account
            .credentials
            .totp_secret
            .clone()
            .ok_or_else(|| refused("no TOTP enrolled"))?;
        let step = self.check_code(&account, &secret, code)?;
        Ok((account, step))
    }

    fn check_code(
        &self,
        account: &Account,
        secret: &str,
        code: &str,
    ) -> std::result::Result<u64, Refused> {
        let sealer = self.sealer().map_err(|e| refused(e.to_string()))?;
        let secret = sealer.open(secret).map_err(refused)?;
        let now = self.now().timestamp().max(0) as u64;
        match totp::verify(&secret, &account.username, code, now, None) {
            Some(step)
                if account
                    .credentials
                    .totp_last_step
                    .is_some_and(|last| step <= last) =>
            {
                Err(refused("verification code already used"))
            }
            Some(step) => Ok(step),
            None => Err(refused("wrong verification code")),
        }
    }

    fn dummy_hash(&self) -> &str {
        static DUMMY: OnceLock<String> = OnceLock::new();
        DUMMY.get_or_init(|| hash_password("tenure timing equaliser").unwrap_or_default())
    }

    /// Records a successful login: last login, the key's last use, the TOTP
    /// step (so the code cannot be replayed), and the audit event.
    pub fn login_succeeded(
        &self,
        name: &str,
        ip: IpAddr,
        method: &str,
        fingerprint: Option<&str>,
        totp_step: Option<u64>,
    ) -> Result<Account> {
        // Only a password or code success clears the failure counts: a key
        // login (which a lockout never refuses) must not reopen guessing.
        if !method.starts_with("publickey") {
            self.throttle(|t| {
                t.succeed(&format!("user:{name}"));
                t.succeed(&format!("ip:{ip}"));
            });
        }
        let actor = Actor {
            name: name.to_string(),
            roles: BTreeSet::new(),
            source: Source::Ssh(ip.to_string()),
            session: None,
            is_account: true,
        };
        // A host logs in each time sshd asks for a key: no write per login
        // (an event an hour per host says it is alive; see `host_login`).
        if let Some(host) = self.host_login(&actor, name, ip)? {
            return Ok(host);
        }
        let login = PendingLogin {
            name: name.to_string(),
            ip,
            method: method.to_string(),
            fingerprint: fingerprint.map(str::to_string),
            totp_step,
            result: Arc::new(Mutex::new(None)),
        };
        let slot = login.result.clone();
        lock(&self.inner.logins.queue).push(login);
        // Group commit: whoever holds the leader lock writes every login
        // queued so far in one transaction (one flush); the logins queued
        // while it writes go together in the next one. Each caller returns
        // once the transaction holding its event is durable.
        let _leader = lock(&self.inner.logins.leader);
        if let Some(done) = lock(&slot).take() {
            return done;
        }
        let batch = std::mem::take(&mut *lock(&self.inner.logins.queue));
        let written = self.write(&actor, |tx| {
            Ok(batch
                .iter()
                .map(|login| record_login(tx, login))
                .collect::<Vec<_>>())
        });
        match written {
            Ok(results) => {
                for (login, result) in batch.iter().zip(results) {
                    *lock(&login.result) = Some(result);
                }
            }
            Err(e) => {
                let why = e.to_string();
                for login in &batch {
                    *lock(&login.result) = Some(Err(Error::Failed(why.clone())));
                }
            }
        }
        self.inner.logins.batches.fetch_add(1, Ordering::Relaxed);
        let done = lock(&slot).take();
        done.unwrap_or_else(|| Err(Error::Failed("login not recorded".into())))
    }

    /// Transactions that recorded logins so far (group commit: fewer than
    /// the logins when they come together).
    pub fn login_batches(&self) -> u64 {
        self.inner.logins.batches.load(Ordering::Relaxed)
    }

    /// Records a connection that tried and failed to log in. The first
    /// failure of an address in a window is written at once; later ones in
    /// the same window are counted and written as one summary
    /// (`flush_login_failures`), so a flood cannot fill the disk.
    pub fn login_failed(&self, name: &str, ip: IpAddr, detail: &str) {
        self.failed_through(name, ip, detail, false)
    }

    /// `login_failed` for the HTTP front door (a refused API token): the
    /// same aggregation, recorded with an `http:` source.
    pub fn http_login_failed(&self, name: &str, ip: IpAddr, detail: &str) {
        self.failed_through(name, ip, detail, true)
    }

    fn failed_through(&self, name: &str, ip: IpAddr, detail: &str, http: bool) {
        let now = self.now();
        let window = chrono::Duration::seconds(FAILURE_WINDOW_SECONDS);
        let (write_now, ended) = {
            let mut guard = match self.inner.failures.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let log = &mut *guard;
            let key =
                if log.windows.len() >= FAILURE_ADDRESSES && !log.windows.contains_key(&Some(ip)) {
                    None
                } else {
                    Some(ip)
                };
            let all = match log.all {
                Some((started, n)) if now - started < window => n,
                _ => {
                    log.all = Some((now, 0));
                    0
                }
            };
            // This address's last window is over: its summary is written
            // below, not lost when the new window takes its place.
            let ended = match log.windows.get(&key) {
                Some(w) if now - w.started >= window => log.windows.remove(&key).map(|w| (key, w)),
                _ => None,
            };
            let w = match log.windows.get_mut(&key) {
                Some(w) => w,
                None => {
                    log.windows.insert(
                        key,
                        FailureWindow {
                            started: now,
                            written: 0,
                            more: 0,
                            accounts: BTreeSet::new(),
                        },
                    );
                    match log.windows.get_mut(&key) {
                        Some(w) => w,
                        None => return,
                    }
                }
            };
            if w.written < FAILURE_EVENTS_PER_ADDRESS
                && all < FAILURE_EVENTS_IN_ALL
                && key.is_some()
            {
                w.written += 1;
                if let Some((_, n)) = log.all.as_mut() {
                    *n += 1;
                }
                (true, ended)
            } else {
                w.more += 1;
                if w.accounts.len() < FAILURE_SAMPLE {
                    w.accounts
                        .insert(crate::bounded::cut(name, 64).into_owned());
                }
                (false, ended)
            }
        };
        // Other addresses' ended windows are written by the server's flusher
        // every few seconds, not here: a flood would walk them all per attempt.
        if let Some((key, w)) = ended {
            self.record_summary(key, w);
        }
        if write_now {
            self.record_failure(name, &ip.to_string(), detail, http);
        }
    }

    /// Writes the summaries of windows that have ended. Called by the
    /// server every few seconds and at shutdown.
    pub fn flush_login_failures(&self) {
        let now = self.now();
        let window = chrono::Duration::seconds(FAILURE_WINDOW_SECONDS);
        let ended: Vec<(Option<IpAddr>, FailureWindow)> = {
            let mut log = match self.inner.failures.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let keys: Vec<Option<IpAddr>> = log
                .windows
                .iter()
                .filter(|(_, w)| now - w.started >= window)
                .map(|(k, _)| *k)
                .collect();
            keys.into_iter()
                .filter_map(|k| log.windows.remove(&k).map(|w| (k, w)))
                .collect()
        };
        for (ip, w) in ended {
            self.record_summary(ip, w);
        }
    }

    /// One event for the failures of a window that were only counted.
    fn record_summary(&self, ip: Option<IpAddr>, w: FailureWindow) {
        if w.more == 0 {
            return;
        }
        let from = ip.map_or_else(|| "other addresses".to_string(), |ip| ip.to_string());
        let detail = format!(
            "{} more failed login connection(s) from {from} within {FAILURE_WINDOW_SECONDS} s (accounts tried: {}{})",
            w.more,
            w.accounts.iter().cloned().collect::<Vec<_>>().join(", "),
            if w.more as usize > w.accounts.len() { ", …" } else { "" }
        );
        self.record_failure("", &from, &detail, false);
    }

    fn record_failure(&self, name: &str, from: &str, detail: &str, http: bool) {
        let source = if http {
            Source::Http {
                addr: from.to_string(),
                token: None,
                scope: None,
            }
        } else {
            Source::Ssh(from.to_string())
        };
        let actor = Actor {
            name: "unauthenticated".into(),
            roles: BTreeSet::from([Role::User]),
            source,
            session: None,
            is_account: false,
        };
        let target = (!name.is_empty()).then(|| name.to_string());
        let detail = detail.to_string();
        if let Err(e) = self.write(&actor, |tx| {
            tx.event("auth.fail", target.as_deref(), vec![], Some(detail.clone()));
            Ok(())
        }) {
            crate::log_limited!(warn, "audit-fail", "could not record a failed login: {e}");
        }
    }

    /// Records a connection refused by the global allowlist (before the banner).
    pub fn connection_refused(&self, ip: IpAddr) {
        let actor = Actor {
            name: "unauthenticated".into(),
            roles: BTreeSet::new(),
            source: Source::Ssh(ip.to_string()),
            session: None,
            is_account: false,
        };
        if let Err(e) = self.write(&actor, |tx| {
            tx.event(
                "connection.refused",
                None,
                vec![],
                Some(format!("{ip} is not in the global allowlist")),
            );
            Ok(())
        }) {
            tracing::warn!(error = %e, "could not record a refused connection");
        }
    }
}

/// A lockout as `auth lockouts` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Lockout {
    /// `address` or `account`.
    pub kind: String,
    pub who: String,
    pub until: DateTime<Utc>,
    pub why: String,
}

fn describe(methods: &[LoginMethod]) -> String {
    methods
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A one-time enrolment code (first run without a key): stored hashed in meta.
#[derive(serde::Serialize, serde::Deserialize)]
struct Enrolment {
    hash: String,
    expires_at: DateTime<Utc>,
}

pub(super) fn enrolment_key(name: &str) -> String {
    format!("enrolment:{name}")
}

impl Services {
    /// A fresh one-time code and the record (its hash, its expiry) to store.
    pub(super) fn enrolment_record(&self, minutes: i64) -> Result<(String, String)> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| Error::Failed(format!("no randomness: {e}")))?;
        let n = u64::from_le_bytes(bytes) % 100_000_000;
        let code = format!("{:04}-{:04}", n / 10_000, n % 10_000);
        let record = Enrolment {
            hash: hash_password(&code)?,
            expires_at: self.now() + chrono::Duration::minutes(minutes),
        };
        let value = serde_json::to_string(&record).map_err(|e| Error::Failed(e.to_string()))?;
        Ok((code, value))
    }

    /// Creates a one-time code that lets `name` log in once with
    /// keyboard-interactive (to add a key), valid for `minutes`.
    pub fn enrolment_create(&self, actor: &Actor, name: &str, minutes: i64) -> Result<String> {
        let (code, value) = self.enrolment_record(minutes)?;
        self.write(actor, |tx| {
            tx.load(name)?;
            tx.set_meta(&enrolment_key(name), &value);
            tx.event(
                "enrolment.create",
                Some(name),
                vec![],
                Some(format!("one-time code valid {minutes} minutes")),
            );
            Ok(())
        })?;
        Ok(code)
    }

    fn enrolment(&self, name: &str) -> Option<Enrolment> {
        let bytes = self.store().meta(&enrolment_key(name)).ok()??;
        let record: Enrolment = serde_json::from_slice(&bytes).ok()?;
        (record.expires_at > self.now()).then_some(record)
    }

    pub fn enrolment_pending(&self, name: &str) -> bool {
        self.enrolment(name).is_some()
    }

    /// Checks and consumes the code: it works once.
    pub fn login_enrolment(
        &self,
        name: &str,
        ip: IpAddr,
        code: &str,
    ) -> std::result::Result<Account, Refused> {
        let account = self.login_gate(name, ip, true)?;
        let record = self
            .enrolment(name)
            .ok_or_else(|| refused("no valid enrolment code"))?;
        if !verify_password(code.trim(), &record.hash) {
            return Err(refused("wrong enrolment code"));
        }
        let actor = Actor::account(&account, Source::Ssh(ip.to_string()), None);
        self.write(&actor, |tx| {
            tx.meta_remove(&enrolment_key(name));
            tx.event(
                "enrolment.used",
                Some(name),
                vec![],
                Some(format!("from {ip}")),
            );
            Ok(())
        })
        .map_err(|e| refused(e.to_string()))?;
        Ok(account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::integrity::AuditFilter;
    use crate::service::testkit::services;

    fn fails(s: &Services, admin: &Actor) -> Vec<String> {
        let filter = AuditFilter {
            limit: 1000,
            action: Some("auth.fail".into()),
            ..Default::default()
        };
        s.audit_tail(admin, &filter)
            .unwrap()
            .into_iter()
            .map(|e| e.detail.unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_flood_is_written_as_ten_events_and_one_summary_when_its_minute_ends() {
        let (s, clock, admin) = services();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        for i in 0..25 {
            s.login_failed(&format!("u{i}"), ip, "password: wrong password");
        }
        assert_eq!(fails(&s, &admin).len(), 10);
        // The next failure after the minute opens a new window and writes
        // the last one's summary, even before the server's flusher runs.
        clock.advance(chrono::Duration::seconds(FAILURE_WINDOW_SECONDS + 1));
        s.login_failed("late", ip, "password: wrong password");
        let details = fails(&s, &admin);
        assert_eq!(details.len(), 12, "{details:#?}");
        assert!(
            details
                .iter()
                .any(|d| d.starts_with("15 more failed login connection(s) from 192.0.2.9")),
            "{details:#?}"
        );
        s.flush_login_failures();
        assert_eq!(fails(&s, &admin).len(), 12, "nothing is written twice");
    }

    #[test]
    fn logins_that_come_together_are_written_in_one_transaction_each_with_its_event() {
        let (s, _clock, admin) = services();
        for name in ["ann", "bob", "cat", "dan"] {
            let input = crate::service::accounts::AccountInput {
                email: Some(format!("{name}@example.com")),
                display_name: Some(name.to_uppercase()),
                kind: Some(crate::domain::Kind::Employee),
                ..Default::default()
            };
            s.create(&admin, name, input).unwrap();
        }
        let before = s.login_batches();
        // Hold the writer's seat while five logins queue up: the next
        // leader writes them all at once.
        let seat = s.inner.logins.leader.lock().unwrap();
        let threads: Vec<_> = [
            ("ann", Some(7)),
            ("bob", None),
            ("cat", None),
            ("dan", Some(9)),
            ("dan", Some(9)),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (name, step))| {
            let s = s.clone();
            std::thread::spawn(move || {
                let ip: IpAddr = format!("192.0.2.{}", i + 1).parse().unwrap();
                s.login_succeeded(name, ip, "publickey", Some("SHA256:x"), step)
                    .map(|a| a.username)
            })
        })
        .collect();
        while s.inner.logins.queue.lock().unwrap().len() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(seat);
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            s.login_batches() - before,
            1,
            "one transaction for five logins"
        );
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let replayed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
        assert_eq!(ok, 4, "{results:?}");
        assert_eq!(replayed.len(), 1, "{results:?}");
        assert!(
            replayed[0]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("already used"),
            "the second use of dan's code is refused: {results:?}"
        );
        let filter = AuditFilter {
            limit: 100,
            action: Some("auth.login".into()),
            ..Default::default()
        };
        let events = s.audit_tail(&admin, &filter).unwrap();
        assert_eq!(events.len(), 4, "{events:#?}");
        for e in &events {
            assert_eq!(Some(e.actor.as_str()), e.target.as_deref(), "{e:?}");
            assert!(e.source.starts_with("ssh"), "{e:?}");
            let ip = e.source.trim_start_matches("ssh:");
            assert!(
                e.detail
                    .as_deref()
                    .unwrap()
                    .ends_with(&format!("from {ip}")),
                "{e:?}"
            );
        }
        for name in ["ann", "bob", "cat", "dan"] {
            assert!(s
                .store()
                .account(name)
                .unwrap()
                .unwrap()
                .last_login
                .is_some());
        }
        assert_eq!(
            s.store()
                .account("dan")
                .unwrap()
                .unwrap()
                .credentials
                .totp_last_step,
            Some(9)
        );
        // The chain is intact across the group.
        s.audit_verify(&admin, false).unwrap();
    }
}
