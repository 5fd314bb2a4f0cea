//! Live SSH sessions: a registry in memory (they do not survive a restart),
//! listed and killed through the service so authorisation and audit apply.
//! A kill is a message on the session's watch channel; the connection task
//! disconnects the client at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use super::authz::{allowed, refusal_reason, Permission};
use super::{Actor, Error, Result, Services};
use crate::domain::lifecycle::login_allowed;
use crate::domain::{Account, Role};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    Console,
    Exec,
}

#[derive(Clone, Debug, Serialize)]
pub struct SessionInfo {
    pub id: u64,
    pub account: String,
    pub address: String,
    /// `publickey`, `password+totp`, `enrolment`…
    pub method: String,
    /// The key a publickey session authenticated with.
    pub fingerprint: Option<String>,
    pub started: DateTime<Utc>,
    pub last_input: DateTime<Utc>,
    pub kind: SessionKind,
    /// The exec command line, for exec sessions.
    pub command: Option<String>,
}

/// Why the server closed a session; sent to the connection task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closing {
    Open,
    Close(String),
}

struct Live {
    info: SessionInfo,
    kill: watch::Sender<Closing>,
}

#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    live: Mutex<BTreeMap<u64, Live>>,
    /// Open consoles per account.
    consoles: Mutex<BTreeMap<String, usize>>,
}

/// An open console's place in its account's count, given back on drop.
pub struct ConsoleSlot {
    services: Services,
    account: String,
}

impl Drop for ConsoleSlot {
    fn drop(&mut self) {
        let mut map = match self.services.registry().consoles.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(n) = map.get_mut(&self.account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.account);
            }
        }
    }
}

impl Registry {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<u64, Live>) -> T) -> T {
        match self.live.lock() {
            Ok(mut guard) => f(&mut guard),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Closes every session matching `which`, with `reason`. Returns how many.
    pub fn close_where(&self, reason: &str, which: impl Fn(&SessionInfo) -> bool) -> usize {
        self.with(|live| {
            let mut n = 0;
            for session in live.values().filter(|s| which(&s.info)) {
                let _ = session.kill.send(Closing::Close(reason.to_string()));
                n += 1;
            }
            n
        })
    }
}

/// What the connection task holds: its id and the channel that tells it to close.
pub struct SessionTicket {
    pub id: u64,
    pub closing: watch::Receiver<Closing>,
}

impl Services {
    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.sessions
    }

    /// Registers a live session after authentication.
    pub fn session_open(&self, mut info: SessionInfo) -> SessionTicket {
        let id = self.registry().next.fetch_add(1, Ordering::Relaxed) + 1;
        info.id = id;
        let (kill, closing) = watch::channel(Closing::Open);
        self.registry()
            .with(|live| live.insert(id, Live { info, kill }));
        SessionTicket { id, closing }
    }

    /// Whether `account` may open one more live session: under
    /// `[server] max_sessions_per_account` and `max_sessions`. The error says
    /// which limit, for the client.
    pub fn session_room(&self, account: &str) -> std::result::Result<(), String> {
        let server = &self.config().server;
        let (mine, all) = self.registry().with(|live| {
            (
                live.values().filter(|s| s.info.account == account).count(),
                live.len(),
            )
        });
        if all >= server.max_sessions {
            return Err(format!(
                "the server has its maximum of {} live sessions (max_sessions); try again later",
                server.max_sessions
            ));
        }
        // sshd asks for keys once per login on the host, many at a time:
        // a host is held to the server's cap only.
        if mine >= server.max_sessions_per_account && !self.is_host_name(account) {
            return Err(format!(
                "{account} already has {mine} live sessions (max_sessions_per_account = {}); close one first",
                server.max_sessions_per_account
            ));
        }
        Ok(())
    }

    /// A place for one more console of `account`, under
    /// `[server] max_consoles_per_account`; the error says why not.
    pub fn console_room(&self, account: &str) -> std::result::Result<ConsoleSlot, String> {
        let max = self.config().server.max_consoles_per_account;
        let mut map = match self.registry().consoles.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let n = map.entry(account.to_string()).or_insert(0);
        if *n >= max {
            return Err(format!(
                "{account} already has {n} consoles open (max_consoles_per_account = {max}); close one first"
            ));
        }
        *n += 1;
        Ok(ConsoleSlot {
            services: self.clone(),
            account: account.to_string(),
        })
    }

    /// Records that a client ran into a limit (`kind`: sessions, channels,
    /// stdin, pty…). The front door records each kind once per connection.
    pub fn limit_refused(
        &self,
        actor: Option<&Actor>,
        ip: std::net::IpAddr,
        kind: &str,
        detail: &str,
    ) {
        let fallback;
        let actor = match actor {
            Some(a) => a,
            None => {
                fallback = Actor {
                    name: "unauthenticated".into(),
                    roles: Default::default(),
                    source: super::Source::Ssh(ip.to_string()),
                    session: None,
                    is_account: false,
                };
                &fallback
            }
        };
        let detail = detail.to_string();
        if let Err(e) = self.write(actor, |tx| {
            tx.event(&format!("limit.{kind}"), None, vec![], Some(detail.clone()));
            Ok(())
        }) {
            crate::log_limited!(
                warn,
                "audit-limit",
                "could not record a refused request: {e}"
            );
        }
    }

    pub fn session_closed(&self, id: u64) {
        self.registry().with(|live| live.remove(&id));
    }

    /// Sets a session's kind and command once its channel asks for one.
    pub fn session_update(&self, id: u64, kind: SessionKind, command: Option<String>) {
        self.registry().with(|live| {
            if let Some(s) = live.get_mut(&id) {
                s.info.kind = kind;
                s.info.command = command;
            }
        });
    }

    pub fn session_touch(&self, id: u64) {
        let now = self.now();
        self.registry().with(|live| {
            if let Some(s) = live.get_mut(&id) {
                s.info.last_input = now;
            }
        });
    }

    pub fn session_info(&self, id: u64) -> Option<SessionInfo> {
        self.registry()
            .with(|live| live.get(&id).map(|s| s.info.clone()))
    }

    /// Live sessions: all for admins and operators, one's own for anyone else.
    pub fn session_list(&self, actor: &Actor) -> Result<Vec<SessionInfo>> {
        let wide = actor.has(Role::Admin) || actor.has(Role::Operator);
        Ok(self.registry().with(|live| {
            live.values()
                .filter(|s| wide || (actor.is_account && s.info.account == actor.name))
                .map(|s| s.info.clone())
                .collect()
        }))
    }

    /// Whether `actor` may close the sessions of `account`: the service's
    /// permission rule (its own; an operator's only below operator). A
    /// session whose account is gone goes by the permission alone.
    fn may_kill(&self, actor: &Actor, account: &str) -> Result<bool> {
        let target = self.store().account(account)?;
        Ok(allowed(actor, Permission::KillSession, target.as_ref()))
    }

    /// Closes one session by id. A session that does not exist and one the
    /// actor may not close get the same answer (exit 3, same words), so a
    /// non-admin cannot probe which ids are live; the refusal is still audited.
    pub fn session_kill(&self, actor: &Actor, id: u64) -> Result<SessionInfo> {
        let missing = || {
            Error::NotFound(if actor.has(Role::Admin) {
                format!("no live session {id}")
            } else {
                format!("no live session {id} that you may kill")
            })
        };
        let Some(info) = self.session_info(id) else {
            return Err(missing());
        };
        if !self.may_kill(actor, &info.account)? {
            let _ = self.deny(actor, Permission::KillSession, Some(&info.account));
            return Err(missing());
        }
        if actor.session.as_deref() == Some(id.to_string().as_str()) {
            return Err(Error::Conflict(format!(
                "session {id} is the one you are using: log out instead"
            )));
        }
        self.write(actor, |tx| {
            tx.event(
                "session.kill",
                Some(&info.account),
                vec![],
                Some(format!("session {id} from {}", info.address)),
            );
            Ok(())
        })?;
        self.registry()
            .close_where(&format!("session closed by {}", actor.name), |s| s.id == id);
        Ok(info)
    }

    /// Closes every session of an account — except the one asking, which
    /// would otherwise be cut off before it hears the answer.
    pub fn session_kill_user(&self, actor: &Actor, name: &str) -> Result<usize> {
        if !self.may_kill(actor, name)? {
            let target = self.store().account(name)?;
            return Err(self.deny_because(
                actor,
                Permission::KillSession,
                Some(name),
                refusal_reason(actor, Permission::KillSession, target.as_ref()),
            ));
        }
        if self.store().account(name)?.is_none() {
            return Err(Error::NotFound(format!("no account named '{name}'")));
        }
        let own: Option<u64> = actor.session.as_deref().and_then(|s| s.parse().ok());
        let which = |s: &SessionInfo| s.account == name && Some(s.id) != own;
        let count = self
            .registry()
            .with(|live| live.values().filter(|s| which(&s.info)).count());
        self.write(actor, |tx| {
            tx.event(
                "session.kill",
                Some(name),
                vec![],
                Some(format!("{count} session(s)")),
            );
            Ok(())
        })?;
        Ok(self
            .registry()
            .close_where(&format!("sessions closed by {}", actor.name), which))
    }

    /// After a committed change: close the sessions the new state no longer
    /// allows (account gone or not active, key removed, address no longer allowed).
    pub(crate) fn enforce_sessions(&self, old: Option<&Account>, new: Option<&Account>) {
        let Some(old) = old else { return };
        let name = old.username.clone();
        let today = self.today();
        match new {
            None => {
                self.registry()
                    .close_where("account removed", |s| s.account == name);
            }
            Some(new) => {
                if let Err(refusal) = login_allowed(new, today) {
                    self.registry()
                        .close_where(&format!("access ended: {refusal}"), |s| s.account == name);
                    return;
                }
                let removed: Vec<&str> = old
                    .credentials
                    .keys
                    .iter()
                    .filter(|k| new.key(&k.fingerprint).is_none())
                    .map(|k| k.fingerprint.as_str())
                    .collect();
                if !removed.is_empty() {
                    self.registry()
                        .close_where("the key of this session was removed", |s| {
                            s.account == name
                                && s.fingerprint
                                    .as_deref()
                                    .is_some_and(|f| removed.contains(&f))
                        });
                }
                if new.allowlist != old.allowlist && !new.allowlist.is_empty() {
                    self.registry().close_where(
                        "address no longer allowed for this account",
                        |s| {
                            s.account == name
                                && !s
                                    .address
                                    .parse::<std::net::IpAddr>()
                                    .is_ok_and(|ip| new.allowlist.iter().any(|n| n.contains(&ip)))
                        },
                    );
                }
            }
        }
    }

    /// Closes every session (shutdown).
    pub fn close_all_sessions(&self, reason: &str) -> usize {
        self.registry().close_where(reason, |_| true)
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::domain::{DisableReason, Kind};
    use crate::service::accounts::AccountInput;

    fn setup() -> (Services, Actor) {
        let (s, _clock, admin) = crate::service::testkit::services();
        let input = AccountInput {
            email: Some("bob@x.io".into()),
            display_name: Some("Bob".into()),
            kind: Some(Kind::Employee),
            ..Default::default()
        };
        s.create(&admin, "bob", input).unwrap();
        (s, admin)
    }

    fn open(
        s: &Services,
        account: &str,
        address: &str,
        fingerprint: Option<&str>,
    ) -> SessionTicket {
        let now = s.now();
        s.session_open(SessionInfo {
            id: 0,
            account: account.into(),
            address: address.into(),
            method: "publickey".into(),
            fingerprint: fingerprint.map(str::to_string),
            started: now,
            last_input: now,
            kind: SessionKind::Console,
            command: None,
        })
    }

    fn closed(ticket: &SessionTicket) -> bool {
        matches!(*ticket.closing.borrow(), Closing::Close(_))
    }

    #[test]
    fn disabling_an_account_closes_its_sessions_and_no_others() {
        let (s, admin) = setup();
        let bob = open(&s, "bob", "127.0.0.1", None);
        let root = open(&s, "root", "127.0.0.1", None);
        s.disable(&admin, "bob", DisableReason::Manual, Some("left".into()))
            .unwrap();
        assert!(closed(&bob));
        assert!(!closed(&root));
    }

    #[test]
    fn tightening_the_allowlist_closes_sessions_from_other_addresses() {
        let (s, admin) = setup();
        let inside = open(&s, "bob", "10.1.2.3", None);
        let outside = open(&s, "bob", "192.0.2.9", None);
        s.allow_add(&admin, "bob", "10.0.0.0/8").unwrap();
        assert!(!closed(&inside));
        assert!(closed(&outside));
    }

    #[test]
    fn a_session_one_may_not_kill_looks_like_a_missing_one() {
        let (s, admin) = setup();
        let root = open(&s, "root", "127.0.0.1", None);
        let bob = Actor::account(&s.load("bob").unwrap(), crate::service::Source::Cli, None);
        let others = s.session_kill(&bob, root.id).unwrap_err();
        let missing = s.session_kill(&bob, 9999).unwrap_err();
        assert_eq!((others.exit_code(), missing.exit_code()), (3, 3));
        assert_eq!(
            others.to_string().replace(&root.id.to_string(), "N"),
            missing.to_string().replace("9999", "N")
        );
        assert!(!closed(&root));
        // Their own session they may close; an admin may close any.
        let own = open(&s, "bob", "127.0.0.1", None);
        s.session_kill(&bob, own.id).unwrap();
        assert!(closed(&own));
        s.session_kill(&admin, root.id).unwrap();
        assert!(closed(&root));
    }

    #[test]
    fn kill_by_user_is_audited_and_users_may_not_kill_others() {
        let (s, admin) = setup();
        let t = open(&s, "bob", "127.0.0.1", None);
        assert_eq!(s.session_kill_user(&admin, "bob").unwrap(), 1);
        assert!(closed(&t));
        let bob = Actor::account(&s.load("bob").unwrap(), crate::service::Source::Cli, None);
        let err = s.session_kill_user(&bob, "root").unwrap_err();
        assert_eq!(err.exit_code(), 4);
        let events = s
            .audit_tail(
                &admin,
                &crate::service::integrity::AuditFilter {
                    limit: 5,
                    ..Default::default()
                },
            )
            .unwrap();
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert!(
            actions.contains(&"session.kill") && actions.contains(&"auth.denied"),
            "{actions:?}"
        );
    }
}
