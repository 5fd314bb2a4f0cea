//! The password lifecycle beyond `password set`: when a password expires, a
//! change demanded during an SSH login (expired or temporary), expiry
//! warnings, and a reset by one-time enrolment code mailed to the holder.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::authz::Permission;
use super::credentials::{hash_password, verify_password};
use super::lifecycle::PreviewItem;
use super::login::Refused;
use super::{Actor, Error, Result, Services, Source};
use crate::domain::{Account, Change, Status};

/// How long a reset code is good for.
pub const RESET_MINUTES: i64 = 15;
/// Accounts warned per transaction.
const CHUNK: usize = 500;

/// Why a login must choose a new password before its session starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeDue {
    Temporary,
    Expired,
}

impl ChangeDue {
    /// The instruction shown above the `New password:` prompt.
    pub fn instruction(self) -> &'static str {
        match self {
            ChangeDue::Temporary => "Your password is temporary: choose a new one to continue.",
            ChangeDue::Expired => "Your password has expired: choose a new one to continue.",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ChangeDue::Temporary => "temporary",
            ChangeDue::Expired => "expired",
        }
    }
}

/// What `password reset` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ResetIssued {
    pub account: String,
    pub email: String,
    pub valid_until: DateTime<Utc>,
}

fn refused(reason: impl Into<String>) -> Refused {
    Refused {
        reason: reason.into(),
    }
}

impl Services {
    /// When `account`'s password expires (`None`: no password, or no maximum age).
    pub fn password_expires(&self, account: &Account) -> Option<DateTime<Utc>> {
        account.credentials.password_hash.as_ref()?;
        self.config()
            .passwords
            .expires_at(account.credentials.password_set_at)
    }

    /// Whether a password login of `account` must choose a new password first.
    pub fn password_change_due(&self, account: &Account) -> Option<ChangeDue> {
        account.credentials.password_hash.as_ref()?;
        if account.credentials.password_temporary {
            return Some(ChangeDue::Temporary);
        }
        self.config()
            .passwords
            .expired(account.credentials.password_set_at, self.now())
            .then_some(ChangeDue::Expired)
    }

    /// The new password chosen during a login whose old one is expired or
    /// temporary: both answers equal, the policy kept, not the old one.
    /// Stored (argon2id) with its `password.change` event; a refusal writes
    /// nothing (the connection records the failed login).
    pub fn login_password_change(
        &self,
        name: &str,
        ip: IpAddr,
        new: &str,
        repeat: &str,
    ) -> std::result::Result<(), Refused> {
        let account = self.login_gate(name, ip, true)?;
        let Some(why) = self.password_change_due(&account) else {
            return Err(refused("no password change is due"));
        };
        if new != repeat {
            return Err(refused("new password: the two answers differ"));
        }
        let config = self.config();
        if let Some(rule) =
            config
                .passwords
                .broken_rule(config.policy.password_min_length, name, new)
        {
            return Err(refused(format!("new password: {rule}")));
        }
        let old_hash = account
            .credentials
            .password_hash
            .clone()
            .unwrap_or_default();
        if verify_password(new, &old_hash) {
            return Err(refused(
                "new password: it must differ from the one it replaces",
            ));
        }
        let hash = hash_password(new).map_err(|e| refused(e.to_string()))?;
        let actor = Actor::account(&account, Source::Ssh(ip.to_string()), None);
        self.write(&actor, |tx| {
            let old = tx.load(name)?;
            let mut changed = old.clone();
            changed.credentials.password_hash = Some(hash.clone());
            changed.credentials.password_set_at = Some(tx.now);
            changed.credentials.password_temporary = false;
            changed.credentials.password_warned = None;
            changed.updated_at = tx.now;
            tx.hand_password(name, new);
            changed.updated_by = tx.actor.name.clone();
            tx.stage(Some(&old), Some(changed));
            let change = Change {
                field: "password".into(),
                old: json!(why.as_str()),
                new: json!("changed"),
            };
            tx.event(
                "password.change",
                Some(name),
                vec![change],
                Some(format!(
                    "at login from {ip} (the old one was {})",
                    why.as_str()
                )),
            );
            Ok(())
        })
        .map_err(|e| refused(e.to_string()))
    }

    /// `password reset NAME`: a one-time enrolment code, valid
    /// [`RESET_MINUTES`], mailed to the account's address through the
    /// outbox (never shown to the one who asked). The holder logs in with
    /// it once and sets a password or adds a key.
    pub fn password_reset(&self, actor: &Actor, name: &str) -> Result<ResetIssued> {
        let account = self.target(actor, Permission::ResetPassword, name)?;
        if matches!(account.status, Status::Deleted | Status::Disabled) {
            return Err(Error::Conflict(format!(
                "{name} is {}: enable it first",
                account.status
            )));
        }
        if self.config().notify.smtp.is_none() {
            return Err(Error::Failed(
                "no mail is configured ([notify.smtp]): a reset code could not be delivered".into(),
            ));
        }
        let (code, record) = self.enrolment_record(RESET_MINUTES)?;
        let valid_until = self.now() + Duration::minutes(RESET_MINUTES);
        let email = account.email.clone();
        self.write(actor, |tx| {
            let current = tx.load(name)?;
            // A reset replaces the password, as an AD or PAM admin reset does:
            // the old one stops working now (it may be known to someone else,
            // or forgotten — either way it is no use), the holder sets a new
            // one with the code. Keys and TOTP stay.
            let mut cleared = current.clone();
            let had = cleared.credentials.password_hash.take().is_some();
            cleared.credentials.password_set_at = None;
            cleared.credentials.password_temporary = false;
            cleared.credentials.password_warned = None;
            if had {
                super::admins::keep_an_admin(
                    tx,
                    &current,
                    Some(&cleared),
                    "clearing its password for a reset",
                )?;
                cleared.updated_at = tx.now;
                cleared.updated_by = tx.actor.name.clone();
                tx.stage(Some(&current), Some(cleared.clone()));
            }
            tx.set_meta(&super::login::enrolment_key(name), &record);
            let change = crate::domain::Change {
                field: "password".into(),
                old: serde_json::json!(if had { "set" } else { "none" }),
                new: serde_json::json!("none"),
            };
            tx.event(
                "password.reset",
                Some(name),
                if had { vec![change] } else { vec![] },
                Some(format!(
                    "old password cleared; one-time code valid {RESET_MINUTES} minutes, mailed to the account's address"
                )),
            );
            tx.notify(
                "password_reset",
                &cleared,
                &[
                    ("code", code.clone()),
                    ("valid_minutes", RESET_MINUTES.to_string()),
                ],
            )?;
            Ok(())
        })?;
        Ok(ResetIssued {
            account: name.to_string(),
            email,
            valid_until,
        })
    }

    /// The lifecycle pass's password warnings: at most once an hour, as the
    /// scan reads every account (warnings are days ahead; an hour is early enough).
    pub(crate) fn password_warnings_hourly(&self, actor: &Actor) -> Result<Vec<PreviewItem>> {
        let now = self.now();
        {
            let mut last = match self.inner.password_scan.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if last.is_some_and(|t| now - t < Duration::hours(1) && now >= t) {
                return Ok(vec![]);
            }
            *last = Some(now);
        }
        self.send_password_warnings(actor)
    }

    /// Password expiry warnings: each password that expires within
    /// `[passwords] warn_days` is warned about once (the holder, by mail).
    pub(crate) fn send_password_warnings(&self, actor: &Actor) -> Result<Vec<PreviewItem>> {
        let policy = self.config().passwords.clone();
        if policy.max_age_days.unwrap_or(0) == 0 || policy.warn_days == 0 {
            return Ok(vec![]);
        }
        let horizon = self.now() + Duration::days(i64::from(policy.warn_days));
        let mut due = Vec::new();
        self.store().scan_accounts(&mut |name, account| {
            let Ok(a) = account else { return };
            if !matches!(a.status, Status::Active) || a.credentials.password_hash.is_none() {
                return;
            }
            let set_at = a.credentials.password_set_at;
            if a.credentials.password_warned.is_some() && a.credentials.password_warned == set_at {
                return;
            }
            if policy.expires_at(set_at).is_some_and(|at| at <= horizon) {
                due.push(name);
            }
        })?;
        let mut done = Vec::new();
        for chunk in due.chunks(CHUNK) {
            done.extend(self.write(actor, |tx| {
                let mut items = Vec::new();
                for name in chunk {
                    let Some(old) = tx.get(name)? else { continue };
                    let Some(at) = policy.expires_at(old.credentials.password_set_at) else {
                        continue;
                    };
                    let mut new = old.clone();
                    new.credentials.password_warned = old.credentials.password_set_at;
                    tx.stage(Some(&old), Some(new.clone()));
                    let when = at.format("%Y-%m-%d %H:%M UTC").to_string();
                    tx.event(
                        "password.warn",
                        Some(name),
                        vec![],
                        Some(format!("password expires {when}")),
                    );
                    // The mail goes to the holder alone: in their timezone.
                    let theirs = crate::locale::Zone::named(new.timezone.as_deref()).minute(at);
                    tx.notify("password_expiry", &new, &[("expires", theirs)])?;
                    items.push(PreviewItem {
                        username: name.clone(),
                        date: tx.today(),
                        action: "warn holder (password expiry)".into(),
                        why: format!("password expires {when}"),
                    });
                }
                Ok(items)
            })?);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::accounts::AccountInput;
    use crate::service::testkit::services_with;

    const SMTP: &str = "[notify.smtp]\nhost = \"127.0.0.1\"\nport = 2525\nfrom = \"tenure@example.org\"\nsecurity = \"plain\"\n";

    fn config(extra: &str) -> String {
        format!(
            "{}\n{extra}",
            crate::config::EXAMPLE.replace("[passwords]\n", "[passwords]\nmax_age_days = 30\n")
        )
    }

    fn bob(s: &Services, admin: &Actor) {
        s.create(
            admin,
            "bob",
            AccountInput {
                email: Some("bob@example.org".into()),
                display_name: Some("Bob".into()),
                kind: Some(crate::domain::Kind::Employee),
                ..Default::default()
            },
        )
        .unwrap();
    }

    #[test]
    fn a_temporary_or_old_password_must_be_changed_and_the_change_keeps_the_policy() {
        let (s, clock, admin) = services_with(&config(""), None);
        bob(&s, &admin);
        s.password_set(&admin, "bob", "violet staple orbit", true)
            .unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = s.load("bob").unwrap();
        assert_eq!(s.password_change_due(&a), Some(ChangeDue::Temporary));
        let r = s
            .login_password_change("bob", ip, "quiet harbour lamp", "quiet harbour lamps")
            .unwrap_err();
        assert!(r.reason.contains("differ"), "{r:?}");
        let r = s
            .login_password_change("bob", ip, "Password1234", "Password1234")
            .unwrap_err();
        assert!(r.reason.contains("most common"), "{r:?}");
        let r = s
            .login_password_change("bob", ip, "violet staple orbit", "violet staple orbit")
            .unwrap_err();
        assert!(r.reason.contains("differ from the one"), "{r:?}");
        assert!(s.load("bob").unwrap().credentials.password_temporary);
        s.login_password_change("bob", ip, "quiet harbour lamp", "quiet harbour lamp")
            .unwrap();
        let a = s.load("bob").unwrap();
        assert!(!a.credentials.password_temporary);
        assert_eq!(s.password_change_due(&a), None);
        assert!(verify_password(
            "quiet harbour lamp",
            a.credentials.password_hash.as_deref().unwrap()
        ));
        // Thirty days on, it has expired.
        clock.advance(Duration::days(30));
        let a = s.load("bob").unwrap();
        assert_eq!(s.password_change_due(&a), Some(ChangeDue::Expired));
        assert!(s.password_expires(&a).is_some());
    }

    #[test]
    fn an_expiry_warning_is_queued_once_per_password_for_its_holder() {
        let (s, clock, admin) = services_with(&config(SMTP), None);
        bob(&s, &admin);
        s.password_set(&admin, "bob", "violet staple orbit", false)
            .unwrap();
        assert!(s.send_password_warnings(&admin).unwrap().is_empty());
        clock.advance(Duration::days(24));
        assert_eq!(s.send_password_warnings(&admin).unwrap().len(), 1);
        assert!(s.send_password_warnings(&admin).unwrap().is_empty());
        let queue = s.notify_queue(&admin).unwrap();
        let to_bob = |e: &crate::service::notify::OutboxEntry| {
            e.event == "password_expiry"
                && matches!(&e.delivery, crate::service::notify::Delivery::Email { to, .. } if to == &vec!["bob@example.org".to_string()])
        };
        assert_eq!(queue.iter().filter(|e| to_bob(e)).count(), 1, "{queue:#?}");
    }

    #[test]
    fn a_reset_mails_a_code_to_the_holder_that_logs_in_once() {
        let (s, _clock, admin) = services_with(&config(SMTP), None);
        bob(&s, &admin);
        s.password_set(&admin, "bob", "violet staple orbit", false)
            .unwrap();
        let issued = s.password_reset(&admin, "bob").unwrap();
        // The old password stops working at once.
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(s.load("bob").unwrap().credentials.password_hash.is_none());
        assert!(s
            .login_password("bob", ip, "violet staple orbit", None)
            .is_err());
        assert_eq!(issued.email, "bob@example.org");
        // Whoever reads the queue does not see the code.
        assert!(s
            .notify_queue(&admin)
            .unwrap()
            .iter()
            .any(|e| matches!(&e.delivery, crate::service::notify::Delivery::Email { body, .. } if body.contains("not shown"))));
        let queue = s.outbox_all().unwrap();
        let entry = queue
            .iter()
            .find(|e| e.event == "password_reset")
            .expect("a reset mail");
        let code_in = |text: &str| {
            text.split_whitespace()
                .find(|w| w.len() == 9 && w.as_bytes()[4] == b'-')
                .map(str::to_string)
        };
        // The stored entry holds the code sealed, never readable...
        let stored = serde_json::to_string(entry).unwrap();
        assert_eq!(code_in(&stored), None, "{stored}");
        assert!(stored.contains("sealed1:"), "{stored}");
        // ...and the mail handed to SMTP has it.
        let body = match s.opened(&entry.delivery).unwrap() {
            crate::service::notify::Delivery::Email { to, body, .. } => {
                assert_eq!(to, vec!["bob@example.org".to_string()]);
                body
            }
            other => panic!("{other:?}"),
        };
        let code = code_in(&body).expect("the code in the mail");
        assert!(s.enrolment_pending("bob"));
        s.login_enrolment("bob", ip, &code).unwrap();
        assert!(
            s.login_enrolment("bob", ip, &code).is_err(),
            "a second use is refused"
        );
        // Without mail there is no way to deliver one.
        let (s, _clock, admin) = services_with(&config(""), None);
        bob(&s, &admin);
        assert_eq!(s.password_reset(&admin, "bob").unwrap_err().exit_code(), 1);
    }
}
