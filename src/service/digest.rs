//! Notification preferences per account: events muted, and a digest instead
//! of one mail per event (a sponsor of 500 imported accounts gets one mail
//! listing them, not 500). A notice for someone who wants a digest is kept
//! in the `digest` collection, in the transaction of the change; the
//! notification worker sends each person's digest once its oldest notice is
//! `[notify] digest_hours` old (its own schedule, whatever the lifecycle
//! pass's interval), as one outbox mail in the recipient's language and
//! timezone, removing what it lists.

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
pub struct NoticePrefs {
    /// Gather notices into a digest instead of one mail each.
    pub digest: bool,
    /// Events this account is not mailed about (a reset code always is).
    pub mute: Vec<String>,
}

/// What `prefs show` tells: the notices and the account's own timezone and
/// language (those two live on the account record).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    pub digest: bool,
    pub mute: Vec<String>,
    /// IANA name; instants are shown in it (UTC when none).
    pub timezone: Option<String>,
    /// `en` or `de`: the console and the notices mailed (English when none).
    pub language: Option<String>,
}

/// A change asked of `prefs set`: each part left `None` stays as it is.
#[derive(Clone, Debug, Default)]
pub struct PrefsChange {
    pub digest: Option<bool>,
    pub mute: Vec<String>,
    pub unmute: Vec<String>,
    pub timezone: Option<String>,
    pub language: Option<String>,
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

fn preferences(notices: NoticePrefs, account: &Account) -> Preferences {
    Preferences {
        digest: notices.digest,
        mute: notices.mute,
        timezone: account.timezone.clone(),
        language: account.language.clone(),
    }
}

impl Services {
    fn prefs_of(&self, name: &str) -> NoticePrefs {
        self.store()
            .meta(&prefs_key(name))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// `prefs show NAME`: the holder, or whoever may read the account.
    pub fn prefs_show(&self, actor: &Actor, name: &str) -> Result<Preferences> {
        let account = self.target(actor, Permission::ReadAccount, name)?;
        Ok(preferences(self.prefs_of(name), &account))
    }

    /// `prefs set NAME [--digest on|off] [--mute EVENTS] [--unmute EVENTS]
    /// [--timezone ZONE] [--language CODE]`: the holder, or an admin. One
    /// transaction, one `prefs.set` event naming what changed.
    pub fn prefs_set(
        &self,
        actor: &Actor,
        name: &str,
        change: &PrefsChange,
    ) -> Result<Preferences> {
        self.target(actor, Permission::ManagePreferences, name)?;
        for e in change.mute.iter().chain(&change.unmute) {
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
        // An empty value clears the choice (back to UTC, back to English).
        let cleared = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_string());
        let timezone = cleared(&change.timezone);
        if let Some(tz) = timezone.as_deref().filter(|t| !t.is_empty()) {
            if tz.parse::<chrono_tz::Tz>().is_err() {
                return Err(Error::Invalid(format!(
                    "unknown timezone '{tz}' (expected an IANA name like Europe/Berlin)"
                )));
            }
        }
        let language = cleared(&change.language);
        if let Some(code) = language.as_deref().filter(|c| !c.is_empty()) {
            if !crate::locale::Lang::known(code) {
                return Err(Error::Invalid(format!(
                    "unknown language '{code}' (expected one of: {})",
                    crate::locale::LANGS
                        .iter()
                        .map(|(_, c, _)| *c)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let old = self.prefs_of(name);
        let mut new = old.clone();
        if let Some(d) = change.digest {
            new.digest = d;
        }
        for e in &change.mute {
            if !new.mute.contains(e) {
                new.mute.push(e.clone());
            }
        }
        new.mute.retain(|e| !change.unmute.contains(e));
        new.mute.sort();
        let value = serde_json::to_string(&new).map_err(|e| Error::Failed(e.to_string()))?;
        let notices_changed = new != old;
        self.write(actor, |tx| {
            let account = tx.load(name)?;
            let mut changes = Vec::new();
            if notices_changed {
                tx.set_meta(&prefs_key(name), &value);
                changes.push(crate::domain::Change {
                    field: "notifications".into(),
                    old: serde_json::json!(old),
                    new: serde_json::json!(new),
                });
            }
            let mut updated = account.clone();
            let some = |v: String| (!v.is_empty()).then_some(v);
            if let Some(tz) = timezone.clone() {
                updated.timezone = some(tz);
            }
            if let Some(code) = language.clone() {
                updated.language = some(code);
            }
            for (field, before, after) in [
                ("timezone", &account.timezone, &updated.timezone),
                ("language", &account.language, &updated.language),
            ] {
                if before != after {
                    changes.push(crate::domain::Change {
                        field: field.into(),
                        old: serde_json::json!(before),
                        new: serde_json::json!(after),
                    });
                }
            }
            if updated != account {
                updated.updated_at = tx.now;
                updated.updated_by = tx.actor.name.clone();
                tx.stage(Some(&account), Some(updated.clone()));
            }
            tx.event("prefs.set", Some(name), changes, None);
            Ok(preferences(new.clone(), &updated))
        })
    }

    fn digest_due(&self) -> std::sync::MutexGuard<'_, Option<DateTime<Utc>>> {
        match self.inner.digest_due.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The notification worker's call, every few seconds: sends the digests
    /// that are due, reading the waiting notices only when one may be.
    pub fn digests_round(&self) -> Result<usize> {
        if self.digest_due().is_some_and(|due| due > self.now()) {
            return Ok(0);
        }
        self.send_digests(&Actor::system("notify"))
    }

    /// Sends the digests that are due: one mail per person listing their
    /// notices, in one transaction with the removal of what it lists.
    pub(crate) fn send_digests(&self, actor: &Actor) -> Result<usize> {
        let hours = i64::from(self.config().notify.digest_hours);
        let now = self.now();
        // Nothing is due before the oldest notice left is `hours` old; one
        // stored meanwhile brings that forward (`apply_preferences`).
        let mut next: Option<DateTime<Utc>> = None;
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
                let due = oldest + Duration::hours(hours);
                next = Some(next.map_or(due, |n| n.min(due)));
                continue;
            }
            // In the recipient's language and timezone.
            let (lang, zone) = match self.store().account(&recipient) {
                Ok(Some(a)) => (
                    crate::locale::Lang::from_code(a.language.as_deref()),
                    crate::locale::Zone::named(a.timezone.as_deref()),
                ),
                _ => Default::default(),
            };
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
            let count = items.len().to_string();
            let mut body = lang.trf(
                "notice.digest.intro",
                &[
                    ("count", &count),
                    ("recipient", &recipient),
                    ("since", &zone.minute(oldest)),
                    ("summary", &summary),
                ],
            );
            body.push_str("\n\n");
            for (_, i) in items.iter().take(DIGEST_LINES) {
                body.push_str(&format!(
                    "{}  {}\n",
                    zone.minute_bare(i.at),
                    crate::text::escape_text(&i.subject)
                ));
            }
            if items.len() > DIGEST_LINES {
                let more = (items.len() - DIGEST_LINES).to_string();
                body.push_str(&lang.trf("notice.digest.more", &[("count", &more)]));
                body.push('\n');
            }
            body.push('\n');
            body.push_str(lang.tr("notice.digest.footer"));
            body.push('\n');
            let subject = lang.trf(
                "notice.digest.subject",
                &[("recipient", &recipient), ("summary", &summary)],
            );
            self.write(actor, |tx| {
                tx.enqueue(
                    "digest",
                    &recipient,
                    Delivery::Email {
                        to: vec![email.clone()],
                        subject: subject.clone(),
                        body: body.clone(),
                        sealed_code: None,
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
        // Far ahead when nothing waits: a new notice brings it forward.
        *self.digest_due() = Some(next.unwrap_or(now + Duration::days(365)));
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
        subject: &dyn Fn(crate::locale::Lang) -> String,
    ) -> Result<Vec<String>> {
        if event == "password_reset" || to.is_empty() {
            return Ok(to);
        }
        let mut people: Vec<(String, String, Option<String>)> = vec![(
            account.username.clone(),
            account.email.clone(),
            account.language.clone(),
        )];
        if let Some(s) = &account.sponsor {
            if let Some(sponsor) = self.get(s)? {
                people.push((sponsor.username, sponsor.email, sponsor.language));
            }
        }
        for (name, email, language) in people {
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
                    // Listed in the digest in its recipient's language.
                    subject: subject(crate::locale::Lang::from_code(language.as_deref())),
                    at: self.now,
                };
                self.put_record(Collection::Digest, &format!("{id:012}"), Some(&item))?;
                // Possibly earlier than the worker thinks (harmless if this
                // transaction is dropped: it only looks sooner).
                let due = self.now + Duration::hours(i64::from(self.config().notify.digest_hours));
                let mut next = self.services.digest_due();
                if next.is_none_or(|n| n > due) {
                    *next = Some(due);
                }
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
        let mute = |e: &str| PrefsChange {
            mute: vec![e.into()],
            ..Default::default()
        };
        s.prefs_set(&admin, "mia", &mute("created")).unwrap();
        let digest = PrefsChange {
            digest: Some(true),
            ..Default::default()
        };
        s.prefs_set(&admin, "dan", &digest).unwrap();
        assert!(s.prefs_set(&admin, "dan", &mute("password_reset")).is_err());
        for i in 0..3 {
            person(&s, &admin, &format!("m{i}"), Some("mia"));
            person(&s, &admin, &format!("d{i}"), Some("dan"));
        }
        assert_eq!(mailed(&s, "mia@x.io"), 0, "muted");
        assert_eq!(mailed(&s, "dan@x.io"), 0, "kept for the digest");
        assert_eq!(s.digests_round().unwrap(), 0, "not an hour old yet");
        clock.advance(Duration::hours(1));
        assert_eq!(s.digests_round().unwrap(), 1, "its own schedule");
        assert_eq!(mailed(&s, "dan@x.io"), 1);
        assert_eq!(s.send_digests(&admin).unwrap(), 0, "sent once");
        assert!(s.store().records(Collection::Digest).unwrap().is_empty());
        // Nothing waits: the worker's round reads nothing until a notice comes.
        assert_eq!(s.digests_round().unwrap(), 0);
        person(&s, &admin, "d9", Some("dan"));
        clock.advance(Duration::hours(1));
        assert_eq!(s.digests_round().unwrap(), 1);
    }

    #[test]
    fn timezone_and_language_are_set_together_validated_and_audited() {
        let (s, _clock, admin) =
            crate::service::testkit::services_with(crate::config::EXAMPLE, None);
        person(&s, &admin, "mia", None);
        let change = PrefsChange {
            timezone: Some("Europe/Berlin".into()),
            language: Some("de".into()),
            ..Default::default()
        };
        let p = s.prefs_set(&admin, "mia", &change).unwrap();
        assert_eq!(p.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(p.language.as_deref(), Some("de"));
        let mia = s.load("mia").unwrap();
        assert_eq!(mia.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(mia.language.as_deref(), Some("de"));
        for (tz, lang) in [(Some("Mars/Olympus"), None), (None, Some("xx"))] {
            let bad = PrefsChange {
                timezone: tz.map(str::to_string),
                language: lang.map(str::to_string),
                ..Default::default()
            };
            let e = s.prefs_set(&admin, "mia", &bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
        }
        assert_eq!(s.load("mia").unwrap(), mia, "nothing half-written");
        let clear = PrefsChange {
            timezone: Some(String::new()),
            ..Default::default()
        };
        let p = s.prefs_set(&admin, "mia", &clear).unwrap();
        assert_eq!((p.timezone, p.language.as_deref()), (None, Some("de")));
    }
}
