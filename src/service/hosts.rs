//! Hosts: target OpenSSH servers, registered as accounts with the role
//! `host` and their own SSH key (`host add`). A host logs in to ask what
//! sshd needs (`authorized-keys USER`, `revoked-keys`) and may do nothing
//! else. An account may log in on a host when they share a group.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::accounts::create_group_in;
use super::authz::Permission;
use super::{Actor, Error, Result, Services};
use crate::domain::account::Credentials;
use crate::domain::host::{authorized_lines, is_host, may_log_in, shared_groups};
use crate::domain::key::parse_public_key;
use crate::domain::validate::{validate_group_name, validate_username};
use crate::domain::{Account, Kind, Role, SshKey, Status};

/// A host as `host list` and `host show` print it.
#[derive(Clone, Debug, Serialize)]
pub struct HostView {
    pub name: String,
    pub status: String,
    pub groups: Vec<String>,
    pub fingerprint: Option<String>,
    pub allowlist: Vec<String>,
    pub added_at: DateTime<Utc>,
    pub added_by: String,
    /// The last `host.login` (hourly at most: see `host_login`).
    pub last_seen: Option<DateTime<Utc>>,
    /// Accounts that may log in there now (`host show` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logins: Option<Vec<HostLogin>>,
}

/// One account that may log in on a host, and through which groups.
#[derive(Clone, Debug, Serialize)]
pub struct HostLogin {
    pub username: String,
    pub display_name: String,
    pub end_date: Option<chrono::NaiveDate>,
    pub via: Vec<String>,
}

/// The email a host account carries (accounts need a unique one; this
/// domain can never receive mail: RFC 2606).
fn host_email(name: &str) -> String {
    format!("{name}@hosts.tenure.invalid")
}

fn view(host: &Account, logins: Option<Vec<HostLogin>>) -> HostView {
    HostView {
        name: host.username.clone(),
        status: host.status.to_string(),
        groups: host.groups.iter().cloned().collect(),
        fingerprint: host.credentials.keys.first().map(|k| k.fingerprint.clone()),
        allowlist: host.allowlist.iter().map(|n| n.to_string()).collect(),
        added_at: host.created_at,
        added_by: host.created_by.clone(),
        last_seen: host.last_login,
        logins,
    }
}

impl Services {
    /// `host add NAME [--group G]...` with the host's public key line.
    /// Missing groups are created (audited) in the same transaction.
    pub fn host_add(
        &self,
        actor: &Actor,
        name: &str,
        key_line: &str,
        groups: &[String],
    ) -> Result<Account> {
        self.authorize(actor, Permission::ManageHosts, None)?;
        validate_username(name).map_err(Error::Invalid)?;
        for g in groups {
            validate_group_name(g).map_err(Error::Invalid)?;
        }
        let parsed = parse_public_key(key_line).map_err(Error::Invalid)?;
        self.write(actor, |tx| {
            if tx.exists(name)? {
                return Err(Error::Conflict(format!(
                    "an account named '{name}' already exists"
                )));
            }
            if let Some(owner) = tx.fingerprint_owner(&parsed.fingerprint)? {
                return Err(Error::Conflict(format!(
                    "key {} is already registered to {owner}",
                    parsed.fingerprint
                )));
            }
            let email = host_email(name);
            if let Some(owner) = tx.email_owner(&email)? {
                return Err(Error::Conflict(format!(
                    "email {email} is already used by {owner}"
                )));
            }
            for g in groups {
                create_group_in(tx, g, Some(format!("created with host {name}")))?;
            }
            let now = tx.now;
            let host = Account {
                username: name.to_string(),
                display_name: format!("host {name}"),
                email,
                kind: Kind::Employee,
                company: None,
                sponsor: None,
                project: None,
                start_date: tx.today(),
                end_date: None,
                groups: groups.iter().cloned().collect(),
                roles: BTreeSet::from([Role::Host]),
                fields: Default::default(),
                timezone: None,
                language: None,
                theme: None,
                notes: None,
                allowlist: vec![],
                // A host is not a person: the inactivity rules do not apply.
                inactivity_exempt: true,
                uid_number: None,
                source: None,
                credentials: Credentials {
                    keys: vec![SshKey {
                        fingerprint: parsed.fingerprint.clone(),
                        algorithm: parsed.algorithm.clone(),
                        public_key: parsed.public_key.clone(),
                        comment: parsed.comment.clone(),
                        added_at: now,
                        added_by: tx.actor.name.clone(),
                        last_used: None,
                        expires_on: None,
                    }],
                    ..Default::default()
                },
                status: Status::Active,
                disable_reason: None,
                disable_note: None,
                disabled_at: None,
                deleted_at: None,
                created_at: now,
                created_by: tx.actor.name.clone(),
                updated_at: now,
                updated_by: tx.actor.name.clone(),
                last_login: None,
                warnings_sent: Default::default(),
            };
            tx.put(
                "host.add",
                None,
                Some(host.clone()),
                Some(format!("host key {}", parsed.fingerprint)),
            );
            Ok(host)
        })
    }

    /// Every registered host.
    pub fn host_list(&self, actor: &Actor) -> Result<Vec<HostView>> {
        self.authorize(actor, Permission::ReadHosts, None)?;
        Ok(self.hosts()?.iter().map(|h| view(h, None)).collect())
    }

    /// One host and who may log in there now.
    pub fn host_show(&self, actor: &Actor, name: &str) -> Result<HostView> {
        self.authorize(actor, Permission::ReadHosts, None)?;
        let host = self.load_host(name)?;
        let logins = self.host_logins(&host)?;
        Ok(view(&host, Some(logins)))
    }

    /// Removes a host for good (its key stops working at once).
    pub fn host_remove(&self, actor: &Actor, name: &str) -> Result<()> {
        self.authorize(actor, Permission::ManageHosts, None)?;
        self.load_host(name)?;
        self.write(actor, |tx| {
            let old = tx.load(name)?;
            if !is_host(&old) {
                return Err(Error::NotFound(format!("no host named '{name}'")));
            }
            tx.put("host.remove", Some(&old), None, None);
            Ok(())
        })
    }

    fn load_host(&self, name: &str) -> Result<Account> {
        match self.store().account(name)? {
            Some(a) if is_host(&a) => Ok(a),
            _ => Err(Error::NotFound(format!("no host named '{name}'"))),
        }
    }

    /// Every host account, by name.
    pub fn hosts(&self) -> Result<Vec<Account>> {
        let names: Vec<String> = {
            let guard = self.indexes()?;
            guard
                .as_ref()
                .map(|i| i.hosts().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(a) = self.store().account(&name)? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Who may log in on `host` now (members of its groups, usable today).
    pub fn host_logins(&self, host: &Account) -> Result<Vec<HostLogin>> {
        let names: BTreeSet<String> = {
            let guard = self.indexes()?;
            let Some(indexes) = guard.as_ref() else {
                return Ok(vec![]);
            };
            host.groups
                .iter()
                .flat_map(|g| indexes.members(g))
                .map(|n| n.to_string())
                .collect()
        };
        let today = self.today();
        let mut out = Vec::new();
        for name in names {
            let Some(a) = self.store().account(&name)? else {
                continue;
            };
            if may_log_in(host, &a, today) {
                out.push(HostLogin {
                    username: a.username.clone(),
                    display_name: a.display_name.clone(),
                    end_date: a.end_date,
                    via: shared_groups(host, &a)
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                });
            }
        }
        Ok(out)
    }

    /// The hosts `account` may log in on now (for `user show` and the console).
    pub fn login_hosts(&self, account: &Account) -> Result<Vec<String>> {
        if is_host(account) || account.groups.is_empty() {
            return Ok(vec![]);
        }
        let today = self.today();
        Ok(self
            .hosts()?
            .into_iter()
            .filter(|h| may_log_in(h, account, today))
            .map(|h| h.username)
            .collect())
    }

    /// `authorized-keys USER`, asked by a host: the `authorized_keys`
    /// lines for USER on that host, or none. Only hosts may ask; a host
    /// learns nothing about accounts not allowed on it (no lines, as for
    /// an unknown name).
    pub fn authorized_keys(&self, actor: &Actor, user: &str) -> Result<Vec<String>> {
        self.authorize(actor, Permission::HostQuery, None)?;
        let host = self.load_host(&actor.name)?;
        // A name sshd could not have (`%`, `,`, `"`, a newline…) gets nothing.
        if validate_username(user).is_err() {
            return Ok(vec![]);
        }
        match self.store().account(user)? {
            Some(account) => Ok(authorized_lines(&host, &account, self.now())),
            None => Ok(vec![]),
        }
    }

    /// A host's login (its key verified): recorded in memory, and as a
    /// `host.login` event at most once an hour per host (with the count
    /// since the last one), so sshd asking for every login costs no write.
    /// `None` when `name` is not a host.
    pub(crate) fn host_login(
        &self,
        actor: &Actor,
        name: &str,
        ip: std::net::IpAddr,
    ) -> Result<Option<Account>> {
        let account = self.load(name)?;
        if !is_host(&account) {
            return Ok(None);
        }
        let now = self.now();
        let due = {
            let mut seen = match self.inner.host_seen.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            match seen.get_mut(name) {
                None => {
                    seen.insert(name.to_string(), (now, 0));
                    Some(1)
                }
                Some(entry) => {
                    entry.1 += 1;
                    if now - entry.0 >= chrono::Duration::hours(1) {
                        let count = entry.1;
                        *entry = (now, 0);
                        Some(count)
                    } else {
                        None
                    }
                }
            }
        };
        if let Some(count) = due {
            self.write(actor, |tx| {
                let old = tx.load(name)?;
                let mut seen = old.clone();
                seen.last_login = Some(tx.now);
                for k in &mut seen.credentials.keys {
                    k.last_used = Some(tx.now);
                }
                tx.stage(Some(&old), Some(seen));
                tx.event(
                    "host.login",
                    Some(name),
                    vec![],
                    Some(format!(
                        "host key login from {ip} ({count} since the last host.login event)"
                    )),
                );
                Ok(())
            })?;
        }
        Ok(Some(account))
    }

    /// Counts a host's login in memory when its `host.login` event is not
    /// due (true); false when `host_login` must write it (nothing counted).
    pub(crate) fn host_seen_without_write(&self, name: &str) -> bool {
        let now = self.now();
        let mut seen = match self.inner.host_seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match seen.get_mut(name) {
            Some(entry) if now - entry.0 < chrono::Duration::hours(1) => {
                entry.1 += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether `name` is a registered host (a store read).
    pub fn is_host_name(&self, name: &str) -> bool {
        matches!(self.store().account(name), Ok(Some(a)) if is_host(&a))
    }

    /// Refuses (and records) anything a host asks besides its queries.
    /// Every front door calls this before running a command or a console.
    pub fn command_gate(&self, actor: &Actor, host_query: bool) -> Result<()> {
        if actor.has(Role::Host) && !host_query {
            return Err(self.deny(actor, Permission::Commands, None));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::accounts::AccountInput;
    use crate::service::{testkit, Source};

    const HOST_KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFGmHNh6c75bc4L+ue9g5Zt4uD3YNFJL9buZSf8U4KI1 web1";
    const BOB_KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@x";

    #[test]
    fn a_shared_group_decides_and_the_host_role_comes_only_with_host_add() {
        let (s, _clock, local) = testkit::services_with(crate::config::EXAMPLE, None);
        s.create(
            &local,
            "bob",
            AccountInput {
                email: Some("bob@x.io".into()),
                display_name: Some("Bob".into()),
                kind: Some(Kind::Employee),
                ..Default::default()
            },
        )
        .unwrap();
        s.key_add(&local, "bob", BOB_KEY, None).unwrap();
        s.host_add(&local, "web1", HOST_KEY, &["web".to_string()])
            .unwrap();
        // Same name or same key again: conflict.
        assert!(matches!(
            s.host_add(&local, "web1", BOB_KEY, &[]),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            s.host_add(&local, "web2", HOST_KEY, &[]),
            Err(Error::Conflict(_))
        ));
        let host = Actor::account(
            &s.load("web1").unwrap(),
            Source::Ssh("192.0.2.5".into()),
            None,
        );
        assert!(s.authorized_keys(&host, "bob").unwrap().is_empty());
        let bob = s.load("bob").unwrap();
        assert!(s.login_hosts(&bob).unwrap().is_empty());
        let web = AccountInput {
            groups: Some(vec!["web".into()]),
            ..Default::default()
        };
        s.update(&local, "bob", web).unwrap();
        let bob = s.load("bob").unwrap();
        assert_eq!(s.login_hosts(&bob).unwrap(), ["web1"]);
        assert_eq!(s.authorized_keys(&host, "bob").unwrap().len(), 1);
        assert!(s.authorized_keys(&host, "bo,b").unwrap().is_empty());
        // Only a host asks; an admin is refused.
        assert!(matches!(
            s.authorized_keys(&local, "bob"),
            Err(Error::Denied(_))
        ));
        // The role is not handed out by user create/update.
        let role = AccountInput {
            roles: Some(vec![Role::Host]),
            ..Default::default()
        };
        assert!(matches!(
            s.update(&local, "bob", role),
            Err(Error::Invalid(_))
        ));
        let role = AccountInput {
            roles: Some(vec![Role::Admin]),
            ..Default::default()
        };
        assert!(matches!(
            s.update(&local, "web1", role),
            Err(Error::Invalid(_))
        ));
        assert_eq!(
            s.host_show(&local, "web1").unwrap().logins.unwrap().len(),
            1
        );
        s.host_remove(&local, "web1").unwrap();
        assert!(s.login_hosts(&bob).unwrap().is_empty());
        assert!(matches!(
            s.host_remove(&local, "bob"),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn a_host_key_login_is_read_only_but_for_the_hourly_host_login_event() {
        let (s, clock, local) = testkit::services_with(crate::config::EXAMPLE, None);
        s.host_add(&local, "web1", HOST_KEY, &["web".to_string()])
            .unwrap();
        let fp = russh::keys::PublicKey::from_openssh(HOST_KEY)
            .unwrap()
            .fingerprint(russh::keys::HashAlg::Sha256)
            .to_string();
        let ip: std::net::IpAddr = "192.0.2.5".parse().unwrap();
        let events = || {
            let filter = crate::service::integrity::AuditFilter {
                limit: 100,
                action: Some("host.login".into()),
                ..Default::default()
            };
            s.audit_tail(&local, &filter).unwrap().len()
        };
        assert_eq!(s.key_probe("web1", &fp), Some(true));
        assert_eq!(s.key_probe("root", &fp), None);
        // The first login writes the event: not answered read-only.
        assert!(s.host_key_login("web1", ip, &fp).unwrap().is_none());
        s.login_succeeded("web1", ip, "publickey", Some(&fp), None)
            .unwrap();
        assert_eq!(events(), 1);
        // Within the hour: answered read-only, nothing written.
        for _ in 0..3 {
            let host = s.host_key_login("web1", ip, &fp).unwrap();
            assert_eq!(host.map(|h| h.username).as_deref(), Some("web1"));
        }
        assert_eq!(events(), 1);
        // An hour on, the event is due again (with the logins counted).
        clock.advance(chrono::Duration::minutes(61));
        assert!(s.host_key_login("web1", ip, &fp).unwrap().is_none());
        s.login_succeeded("web1", ip, "publickey", Some(&fp), None)
            .unwrap();
        assert_eq!(events(), 2);
        let filter = crate::service::integrity::AuditFilter {
            limit: 1,
            action: Some("host.login".into()),
            ..Default::default()
        };
        let last = s.audit_tail(&local, &filter).unwrap();
        let detail = last[0].detail.clone().unwrap_or_default();
        assert!(detail.contains("(4 since the last"), "{detail}");
        // A disabled host is refused on the read-only path too.
        s.disable(
            &local,
            "web1",
            crate::domain::DisableReason::Manual,
            Some("retired".into()),
        )
        .unwrap();
        assert!(s.host_key_login("web1", ip, &fp).is_err());
    }
}
