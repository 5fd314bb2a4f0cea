//! Notification preferences per account: events muted, and a digest instead
//! of one mail per event (a sponsor of 500 imported accounts gets one mail
//! listing them, not 500). A notice for someone who wants a digest is kept
//! in the `digest` collection, in the transaction of the change; the
//! lifecycle pass sends each person's digest once its oldest notice is
//! `[notify] digest_hours` old, as one outbox mail, removing what it lists.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::authz::Permission;
use super::notify::Delivery;
use super::{Actor, Error, Result, Services, Tx};
use crate::domain::notice::EVENTS;
use crate::domain::Account;
use crate::store::Collection;

/// Lines listed in one digest mail; the rest are counted.
const DIGEST_LINES: usize = 2000;

/// An account's notification preferences (stored in meta `prefs:NAME`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Preferences {
    /// Gather notices into a digest instead of one mail each.
    pub digest: bool,
    /// Events this account is not mailed about (a reset code always is).
    pub mute: Vec<String>,
}

/// One notice waiting for its recipient's digest.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Item {
    recipient: String,
    email: String,
    event: String,
    account: String,
    subject: String,
    at: DateTime<Utc>,
}

pub(super) fn prefs_key(name: &str) -> String {
    format!("prefs:{name}")
}

impl Services {
    fn prefs_of(&self, name: &str) -> Preferences {
        self.store()
            .meta(&prefs_key(name))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// `prefs show NAME`: the holder, or whoever may read the account.
    pub fn prefs_show(&self, actor: &Actor, name: &str) -> Result<Preferences> {
        self.target(actor, Permission::ReadAccount, name)?;
        Ok(self.prefs_of(name))
    }

    /// `prefs set NAME [--digest on|off] [--mute EVENTS] [--unmute EVENTS]`:
    /// the holder, or an admin.
    pub fn prefs_set(
        &self,
        actor: &Actor,
        name: &str,
        digest: Option<bool>,
        mute: &[String],
        unmute: &[String],
    ) -> Result<Preferences> {
        self.target(actor, Permission::ManagePreferences, name)?;
        for e in mute.iter().chain(unmute) {
            if !EVENTS.contains(&e.as_str()) || e == "password_reset" {
                return Err(Error::Invalid(format!(
                    "unknown or unmutable event '{e}' (events: {})",
                    EVENTS
                        .iter()
                        .filter(|e| **e != "password_reset")
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let old = self.prefs_of(name);
        let mut new = old.clone();
        if let Some(d) = digest {
            new.digest = d;
        }
        for e in mute {
            if !new.mute.contains(e) {
                new.mute.push(e.clone());
            }
        }
        new.mute.retain(|e| !unmute.contains(e));
        new.mute.sort();
        let value = serde_json::to_string(&new).map_err(|e| Error::Failed(e.to_string()))?;
        self.write(actor, |tx| {
            tx.load(name)?;
            tx.set_meta(&prefs_key(name), &value);
            tx.event(
                "prefs.set",
                Some(name),
                vec![crate::domain::Change {
                    field: "notifications".into(),
                    old: serde_json::json!(old),
                    new: serde_json::json!(new),
                }],
                None,
            );
            Ok(())
        })?;
        Ok(new)
    }

    /// Sends the digests that are due: one mail per person listing their
    /// notices, in one transaction with the removal of what it lists.
    pub(crate) fn send_digests(&self, actor: &Actor) -> Result<usize> {
        let hours = i64::from(self.config().notify.digest_hours);
        let now = self.now();
        let mut by_recipient: BTreeMap<String, Vec<(String, Item)>> = BTreeMap::new();
        for (key, bytes) in self.store().records(Collection::Digest)? {
            if let Ok(item) = serde_json::from_slice::<Item>(&bytes) {
                by_recipient
                    .entry(item.recipient.clone())
                    .or_default()
                    .push((key, item));
            }
        }
        let mut sent = 0;
        for (recipient, items) in by_recipient {
            let oldest = items.iter().map(|(_, i)| i.at).min().unwrap_or(now);
            if oldest + Duration::hours(hours) > now {
                continue;
            }
            let email = items
                .last()
                .map(|(_, i)| i.email.clone())
                .unwrap_or_default();
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for (_, i) in &items {
                *counts.entry(i.event.as_str()).or_default() += 1;
            }
            let summary = counts
                .iter()
                .map(|(e, n)| format!("{n} {e}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut body = format!(
                "{} notices for {recipient} since {} ({summary}):\n\n",
                items.len(),
                oldest.format("%Y-%m-%d %H:%M UTC")
            );
            for (_, i) in items.iter().take(DIGEST_LINES) {
                body.push_str(&format!(
                    "{}  {}\n",
                    i.at.format("%Y-%m-%d %H:%M"),
                    crate::text::escape_text(&i.subject)
                ));
            }
            if items.len() > DIGEST_LINES {
                body.push_str(&format!("… and {} more\n", items.len() - DIGEST_LINES));
            }
            body.push_str(
                "\n(one mail a digest: `prefs set NAME --digest off` for one mail per notice)\n",
            );
            let subject = format!("[tenure] digest for {recipient}: {summary}");
            self.write(actor, |tx| {
                tx.enqueue(
                    "digest",
                    &recipient,
                    Delivery::Email {
                        to: vec![email.clone()],
                        subject: subject.clone(),
                        body: body.clone(),
                    },
                )?;
                for (key, _) in &items {
                    tx.put_record::<Item>(Collection::Digest, key, None)?;
                }
                tx.event(
                    "notify.digest",
                    Some(&recipient),
                    vec![],
                    Some(format!("{} notices in one mail ({summary})", items.len())),
                );
                Ok(())
            })?;
            sent += 1;
        }
        Ok(sent)
    }
}

impl Tx<'_> {
    /// Takes out of `to` the sponsor and holder who muted `event`, and those
    /// who want a digest (their notice is kept for it instead).
    pub(super) fn apply_preferences(
        &mut self,
        event: &str,
        account: &Account,
        mut to: Vec<String>,
        subject: &str,
    ) -> Result<Vec<String>> {
        if event == "password_reset" || to.is_empty() {
            return Ok(to);
        }
        let mut people: Vec<(String, String)> =
            vec![(account.username.clone(), account.email.clone())];
        if let Some(s) = &account.sponsor {
            if let Some(sponsor) = self.get(s)? {
                people.push((sponsor.username, sponsor.email));
            }
        }
        for (name, email) in people {
            if !to.contains(&email) {
                continue;
            }
            let prefs = self.services.prefs_of(&name);
            if prefs.mute.iter().any(|e| e == event) {
                to.retain(|t| *t != email);
            } else if prefs.digest {
                to.retain(|t| *t != email);
                // Outbox ids: unique, and carried across the chunks of an import.
                let id = self.next_outbox_id()?;
                let item = Item {
                    recipient: name.clone(),
                    email: email.clone(),
                    event: event.to_string(),
                    account: account.username.clone(),
                    subject: subject.to_string(),
                    at: self.now,
                };
                self.put_record(Collection::Digest, &format!("{id:012}"), Some(&item))?;
            }
        }
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Kind, Role};
    use crate::service::accounts::AccountInput;
    use crate::service::testkit::services_with;

    fn person(s: &Services, admin: &Actor, name: &str, sponsor: Option<&str>) {
        let input = AccountInput {
            email: Some(format!("{name}@x.io")),
            display_name: Some(name.into()),
            kind: Some(Kind::Employee),
            sponsor: sponsor.map(str::to_string),
            roles: Some(vec![if sponsor.is_some() {
                Role::User
            } else {
                Role::Sponsor
            }]),
            ..Default::default()
        };
        s.create(admin, name, input).unwrap();
    }

    fn mailed(s: &Services, address: &str) -> usize {
        s.outbox_all()
            .unwrap()
            .iter()
            .filter(|e| matches!(&e.delivery, Delivery::Email { to, .. } if to.iter().any(|t| t == address)))
            .count()
    }

    #[test]
    fn muted_events_are_not_mailed_and_a_digest_gathers_the_rest_into_one_mail() {
        let text = format!(
            "{}\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = 2525\nfrom = \"t@x.io\"\nsecurity = \"plain\"\n",
            crate::config::EXAMPLE.replace("retry_seconds = 30", "retry_seconds = 30\ndigest_hours = 1")
        );
        let (s, clock, admin) = services_with(&text, None);
        person(&s, &admin, "mia", None);
        person(&s, &admin, "dan", None);
        s.prefs_set(&admin, "mia", None, &["created".into()], &[])
            .unwrap();
        s.prefs_set(&admin, "dan", Some(true), &[], &[]).unwrap();
        assert!(s
            .prefs_set(&admin, "dan", None, &["password_reset".into()], &[])
            .is_err());
        for i in 0..3 {
            person(&s, &admin, &format!("m{i}"), Some("mia"));
            person(&s, &admin, &format!("d{i}"), Some("dan"));
        }
        assert_eq!(mailed(&s, "mia@x.io"), 0, "muted");
        assert_eq!(mailed(&s, "dan@x.io"), 0, "kept for the digest");
        assert_eq!(s.send_digests(&admin).unwrap(), 0, "not an hour old yet");
        clock.advance(Duration::hours(1));
        assert_eq!(s.send_digests(&admin).unwrap(), 1);
        assert_eq!(mailed(&s, "dan@x.io"), 1);
        assert_eq!(s.send_digests(&admin).unwrap(), 0, "sent once");
        assert!(s.store().records(Collection::Digest).unwrap().is_empty());
    }
}
