//! The notification outbox. A notice is queued in the same transaction as
//! the change it reports, so it is never lost and never sent for a change
//! that did not happen; a delivery worker sends it later, retrying with
//! backoff. Sending never blocks or fails a user action.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::authz::{allowed, Permission};
use super::{Actor, Error, Result, Services, Tx};
use crate::domain::notice::{default_template, render, variables};
use crate::domain::Account;
use crate::locale::Lang;
use crate::store::Collection;

/// Deliveries in flight at once.
const WORKERS: usize = 8;

/// After this many failed attempts an entry is marked failed and kept for people to see.
pub const MAX_ATTEMPTS: u32 = 48;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "lowercase")]
pub enum Delivery {
    Email {
        to: Vec<String>,
        subject: String,
        body: String,
        /// A one-time code sealed with the at-rest key (keys/at_rest.key):
        /// the stored body holds `{code}`, filled in only when the mail is
        /// handed to the SMTP server, so the queue never keeps it readable.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sealed_code: Option<String>,
    },
    Webhook {
        url: String,
        secret_file: String,
        payload: serde_json::Value,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    Pending,
    Sent,
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: u64,
    pub event: String,
    pub account: String,
    pub created_at: DateTime<Utc>,
    pub delivery: Delivery,
    pub state: OutboxState,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub sent_at: Option<DateTime<Utc>>,
}

fn key(id: u64) -> String {
    format!("{id:012}")
}

/// Sends one delivery. Implemented by the notify front door (SMTP, HTTP);
/// tests provide their own.
pub trait Deliverer: Send + Sync {
    fn deliver(&self, delivery: &Delivery) -> std::result::Result<(), String>;
}

impl Tx<'_> {
    pub(super) fn next_outbox_id(&mut self) -> Result<u64> {
        let next = match self.outbox_next {
            Some(n) => n,
            None => self
                .services
                .store()
                .meta("next_outbox_id")?
                .and_then(|b| String::from_utf8_lossy(&b).parse().ok())
                .unwrap_or(1),
        };
        self.outbox_next = Some(next + 1);
        self.set_meta("next_outbox_id", &(next + 1).to_string());
        Ok(next)
    }

    pub(super) fn enqueue(&mut self, event: &str, account: &str, delivery: Delivery) -> Result<()> {
        let id = self.next_outbox_id()?;
        let entry = OutboxEntry {
            id,
            event: event.to_string(),
            account: account.to_string(),
            created_at: self.now,
            delivery,
            state: OutboxState::Pending,
            attempts: 0,
            next_attempt: self.now,
            last_error: None,
            sent_at: None,
        };
        self.put_record(Collection::Outbox, &key(id), Some(&entry))
    }

    /// The language a notice to `address` is written in: the holder's or
    /// the sponsor's choice when it is theirs, else English.
    fn language_of(&self, account: &Account, address: &str) -> Result<Lang> {
        let chosen = if account.email.eq_ignore_ascii_case(address) {
            account.language.clone()
        } else {
            match &account.sponsor {
                Some(s) => self
                    .get(s)?
                    .filter(|sp| sp.email.eq_ignore_ascii_case(address))
                    .and_then(|sp| sp.language),
                None => None,
            }
        };
        Ok(Lang::from_code(chosen.as_deref()))
    }

    /// Queues the notices of `event` about `account`: email to the people the
    /// config names, and every webhook that wants the event.
    pub fn notify(
        &mut self,
        event: &str,
        account: &Account,
        extra: &[(&str, String)],
    ) -> Result<()> {
        let notify = self.config().notify.clone();
        let mut extra: Vec<(&str, String)> = extra.to_vec();
        extra.push(("actor", self.actor.name.clone()));
        // A one-time code is sealed, and its place in the text kept for the
        // moment of sending (`outbox_deliver`).
        let mut sealed_code = None;
        if let Some((_, code)) = extra.iter_mut().find(|(k, _)| *k == "code") {
            let sealer = self.services.sealer()?;
            sealed_code = Some(sealer.seal(code).map_err(Error::Failed)?);
            *code = "{code}".into();
        }
        let vars = variables(account, self.today(), &extra);
        if notify.smtp.is_some() {
            let mut to: Vec<String> = Vec::new();
            let sponsor_email = match (&account.sponsor, notify.notify_sponsor) {
                (Some(s), true) => self.get(s)?.map(|a| a.email),
                _ => None,
            };
            match event {
                // About the holder's own credentials: to the holder alone.
                "password_reset" | "password_expiry" => to.push(account.email.clone()),
                // About a request: to the one who asked.
                "request_approved" | "request_denied" | "request_expired" => {
                    to.push(account.email.clone())
                }
                "expiry_warning" => {
                    to.extend(sponsor_email.clone());
                    if notify.notify_account {
                        to.push(account.email.clone());
                    }
                    if to.is_empty() {
                        to.extend(notify.recipients.iter().cloned());
                    }
                }
                _ => {
                    to.extend(notify.recipients.iter().cloned());
                    to.extend(sponsor_email);
                }
            }
            to.sort();
            to.dedup();
            // The operator's template (one text for everyone), else the
            // catalogue's in each recipient's language: one mail per language.
            let custom = notify
                .templates
                .get(event)
                .map(|t| (t.subject.clone(), t.body.clone().unwrap_or_default()));
            let text = |lang: Lang| match &custom {
                Some((s, b)) => (render(s, &vars), render(b, &vars)),
                None => {
                    let (s, b) = default_template(event, lang);
                    (render(s, &vars), render(b, &vars))
                }
            };
            // The sponsor's and the holder's preferences: muted, or gathered
            // in a digest (which lists the subject in its recipient's language).
            let to = self.apply_preferences(event, account, to, &|lang| text(lang).0)?;
            let mut by_lang: Vec<(Lang, Vec<String>)> = Vec::new();
            for address in to {
                let lang = self.language_of(account, &address)?;
                match by_lang.iter_mut().find(|(l, _)| *l == lang) {
                    Some((_, list)) => list.push(address),
                    None => by_lang.push((lang, vec![address])),
                }
            }
            for (lang, to) in by_lang {
                let (subject, body) = text(lang);
                let delivery = Delivery::Email {
                    to,
                    subject,
                    body,
                    sealed_code: sealed_code.clone(),
                };
                self.enqueue(event, &account.username, delivery)?;
            }
        }
        // A reset code goes to the holder's mailbox and nowhere else.
        let secret = event == "password_reset";
        for hook in notify.webhooks.iter().filter(|_| !secret) {
            if !hook.events.is_empty() && !hook.events.iter().any(|e| e == event) {
                continue;
            }
            let payload = json!({
                "event": event,
                "at": self.now,
                "actor": self.actor.name,
                "account": {
                    "username": account.username, "display_name": account.display_name, "email": account.email,
                    "kind": account.kind, "company": account.company, "sponsor": account.sponsor,
                    "project": account.project, "start_date": account.start_date, "end_date": account.end_date,
                    "status": account.status, "disable_reason": account.disable_reason,
                },
                "details": vars,
            });
            let delivery = Delivery::Webhook {
                url: hook.url.clone(),
                secret_file: hook.secret_file.clone(),
                payload,
            };
            self.enqueue(event, &account.username, delivery)?;
        }
        Ok(())
    }
}

impl Services {
    /// `notify queue`: entries not yet sent, and those given up on, oldest first.
    pub fn notify_queue(&self, actor: &Actor) -> Result<Vec<OutboxEntry>> {
        if !allowed(actor, Permission::ReadAudit, None) {
            return Err(self.deny(actor, Permission::ReadAudit, None));
        }
        // A reset code is for the holder's mailbox, not for whoever reads the queue.
        Ok(self
            .outbox_all()?
            .into_iter()
            .map(|mut e| {
                if e.event == "password_reset" {
                    if let Delivery::Email { body, .. } = &mut e.delivery {
                        *body = "(holds a one-time code: not shown)".into();
                    }
                }
                e
            })
            .collect())
    }

    /// The delivery as it is sent: a sealed code opened into the body.
    pub(crate) fn opened(&self, delivery: &Delivery) -> std::result::Result<Delivery, String> {
        match delivery {
            Delivery::Email {
                to,
                subject,
                body,
                sealed_code: Some(sealed),
            } => {
                let code = self.sealer().map_err(|e| e.to_string())?.open(sealed)?;
                Ok(Delivery::Email {
                    to: to.clone(),
                    subject: subject.clone(),
                    body: body.replace("{code}", &code),
                    sealed_code: None,
                })
            }
            other => Ok(other.clone()),
        }
    }

    pub(crate) fn outbox_all(&self) -> Result<Vec<OutboxEntry>> {
        self.store()
            .records(Collection::Outbox)?
            .into_iter()
            .map(|(k, v)| {
                serde_json::from_slice(&v).map_err(|e| Error::Failed(format!("outbox {k}: {e}")))
            })
            .collect()
    }

    /// One delivery round: sends up to `ROUND` pending entries whose time has
    /// come, then records the outcomes in one transaction. A sent entry leaves
    /// the outbox; a failed one waits for its backoff. Delivery is at least
    /// once: a crash between sending and recording sends again.
    pub fn outbox_deliver(&self, deliverer: &dyn Deliverer) -> Result<(usize, usize)> {
        const ROUND: usize = 500;
        let now = self.now();
        let retry = self.config().notify.retry_seconds.max(1) as i64;
        let due: Vec<OutboxEntry> = self
            .outbox_all()?
            .into_iter()
            .filter(|e| e.state == OutboxState::Pending && e.next_attempt <= now)
            .take(ROUND)
            .collect();
        if due.is_empty() {
            return Ok((0, 0));
        }
        // Several deliveries at once: each waits on a remote server, and an
        // SMTP exchange costs tens of milliseconds of round trips.
        let settle = |mut entry: OutboxEntry| {
            let outcome = self
                .opened(&entry.delivery)
                .and_then(|delivery| deliverer.deliver(&delivery));
            entry.attempts += 1;
            match outcome {
                Ok(()) => {
                    entry.state = OutboxState::Sent;
                    entry.sent_at = Some(self.now());
                    entry.last_error = None;
                }
                Err(e) => {
                    entry.last_error = Some(e);
                    let backoff = retry
                        .saturating_mul(1i64 << entry.attempts.saturating_sub(1).min(20))
                        .min(3600);
                    entry.next_attempt = self.now() + Duration::seconds(backoff);
                    if entry.attempts >= MAX_ATTEMPTS {
                        entry.state = OutboxState::Failed;
                    }
                }
            }
            entry
        };
        let queue = std::sync::Mutex::new(due.into_iter());
        let outcomes: Vec<OutboxEntry> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..WORKERS)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let next = match queue.lock() {
                                Ok(mut q) => q.next(),
                                Err(_) => None,
                            };
                            match next {
                                Some(entry) => done.push(settle(entry)),
                                None => return done,
                            }
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        });
        let sent = outcomes
            .iter()
            .filter(|e| e.state == OutboxState::Sent)
            .count();
        let failed = outcomes.len() - sent;
        self.write(&Actor::system("notify"), |tx| {
            for entry in &outcomes {
                match entry.state {
                    OutboxState::Sent => {
                        tx.put_record::<OutboxEntry>(Collection::Outbox, &key(entry.id), None)?
                    }
                    OutboxState::Failed => {
                        tx.put_record(Collection::Outbox, &key(entry.id), Some(entry))?;
                        let why = entry.last_error.clone().unwrap_or_default();
                        tx.event(
                            "notify.failed",
                            Some(&entry.account),
                            vec![],
                            Some(format!("{} #{}: {why}", entry.event, entry.id)),
                        );
                    }
                    OutboxState::Pending => {
                        tx.put_record(Collection::Outbox, &key(entry.id), Some(entry))?
                    }
                }
            }
            Ok(())
        })?;
        Ok((sent, failed))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::config::EXAMPLE;
    use crate::domain::{DisableReason, Kind};
    use crate::service::accounts::AccountInput;
    use crate::service::FixedClock;

    /// Fails while `down` is set; records what it delivered.
    #[derive(Default)]
    struct Fake {
        down: Mutex<bool>,
        sent: Mutex<Vec<Delivery>>,
    }

    impl Deliverer for Fake {
        fn deliver(&self, d: &Delivery) -> std::result::Result<(), String> {
            if *self.down.lock().unwrap() {
                return Err("connection refused".into());
            }
            self.sent.lock().unwrap().push(d.clone());
            Ok(())
        }
    }

    fn setup() -> (Services, Arc<FixedClock>, Actor) {
        let text = format!(
            "{EXAMPLE}\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = 2525\nfrom = \"tenure <t@x.io>\"\nsecurity = \"plain\"\n\n[[notify.webhooks]]\nurl = \"http://127.0.0.1:1/hook\"\nsecret_file = \"secret\"\nevents = [\"disabled\"]\n"
        );
        crate::service::testkit::services_with(&text, Some("root@x.io"))
    }

    fn bob(s: &Services, admin: &Actor, end_in: i64) {
        let input = AccountInput {
            email: Some("bob@x.io".into()),
            display_name: Some("Bob Builder".into()),
            kind: Some(Kind::Contractor),
            company: Some("Acme".into()),
            sponsor: Some("root".into()),
            end_date: Some(s.today() + Duration::days(end_in)),
            ..Default::default()
        };
        s.create(admin, "bob", input).unwrap();
    }

    #[test]
    fn creation_queues_a_mail_with_the_details_to_recipients_and_sponsor() {
        let (s, _clock, admin) = setup();
        bob(&s, &admin, 90);
        let queue = s.notify_queue(&admin).unwrap();
        let created: Vec<&OutboxEntry> = queue
            .iter()
            .filter(|e| e.event == "created" && e.account == "bob")
            .collect();
        assert_eq!(
            created.len(),
            1,
            "no webhook for 'created': that hook wants only 'disabled'"
        );
        let Delivery::Email {
            to, subject, body, ..
        } = &created[0].delivery
        else {
            panic!("not an email")
        };
        assert_eq!(
            to,
            &vec!["it-ops@example.com".to_string(), "root@x.io".to_string()]
        );
        assert!(
            subject.contains("bob")
                && body.contains("Bob Builder")
                && body.contains("Acme")
                && body.contains("contractor"),
            "{body}"
        );
    }

    #[test]
    fn mail_waits_while_the_server_is_down_and_goes_out_once_it_is_back() {
        let (s, clock, admin) = setup();
        bob(&s, &admin, 90);
        s.disable(
            &admin,
            "bob",
            DisableReason::Manual,
            Some("contract ended".into()),
        )
        .unwrap();
        let fake = Fake::default();
        *fake.down.lock().unwrap() = true;
        let (sent, failed) = s.outbox_deliver(&fake).unwrap();
        assert_eq!(sent, 0);
        assert!(failed >= 3, "created + disabled mail + disabled webhook");
        let pending = s.notify_queue(&admin).unwrap();
        assert!(pending
            .iter()
            .all(|e| e.attempts == 1 && e.last_error.as_deref() == Some("connection refused")));
        // Not retried before its backoff.
        *fake.down.lock().unwrap() = false;
        assert_eq!(s.outbox_deliver(&fake).unwrap(), (0, 0));
        clock.advance(Duration::seconds(31));
        let (sent, failed) = s.outbox_deliver(&fake).unwrap();
        assert_eq!((sent, failed), (pending.len(), 0));
        assert!(s.notify_queue(&admin).unwrap().is_empty());
        let sent = fake.sent.lock().unwrap();
        assert!(sent.iter().any(|d| matches!(d, Delivery::Webhook { payload, .. } if payload["event"] == "disabled" && payload["account"]["username"] == "bob")));
    }

    #[test]
    fn expiry_warnings_go_out_once_per_threshold_across_passes() {
        let (s, clock, admin) = setup();
        bob(&s, &admin, 20);
        let system = Actor::system("lifecycle");
        let warnings = |s: &Services| {
            s.notify_queue(&admin)
                .unwrap()
                .into_iter()
                .filter(|e| e.event == "expiry_warning")
                .count()
        };
        clock.advance(Duration::days(6)); // 14 days left
        s.lifecycle_run(&system, false).unwrap();
        s.lifecycle_run(&system, false).unwrap();
        assert_eq!(warnings(&s), 1);
        // A "restart": a new service over the same store sends nothing twice.
        let again = Services::new(
            Arc::new(s.config().clone()),
            s.inner.store.clone(),
            clock.clone(),
        )
        .unwrap();
        again.lifecycle_run(&system, false).unwrap();
        assert_eq!(warnings(&again), 1);
        clock.advance(Duration::days(13)); // 1 day left: the 7-day warning fell in the gap
        again.lifecycle_run(&system, false).unwrap();
        assert_eq!(
            warnings(&again),
            2,
            "one warning for the most urgent threshold, not two"
        );
        let bob = again.load("bob").unwrap();
        assert_eq!(bob.warnings_sent.len(), 3);
    }
}

#[cfg(test)]
mod template_tests {
    use super::*;
    use crate::config::EXAMPLE;
    use crate::domain::Kind;
    use crate::service::accounts::AccountInput;

    #[test]
    fn a_template_from_a_file_shapes_the_mail() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("created.txt"),
            "Hello {display_name}, you end on {end_date}.\n",
        )
        .unwrap();
        let text = format!(
            "{EXAMPLE}\n[notify.smtp]\nhost = \"127.0.0.1\"\nfrom = \"t@x.io\"\n[notify.templates.created]\nsubject = \"Hi {{username}}\"\nbody_file = \"created.txt\"\n"
        );
        let config = crate::config::Config::parse(&text, "test", dir.path()).unwrap();
        assert!(config.notify.templates["created"]
            .body
            .as_deref()
            .unwrap()
            .starts_with("Hello {display_name}"));
        let input = AccountInput {
            email: Some("bob@x.io".into()),
            display_name: Some("Bob".into()),
            kind: Some(Kind::Employee),
            ..Default::default()
        };
        let services = Services::new(
            std::sync::Arc::new(config),
            std::sync::Arc::new(crate::store::MemoryStore::new()),
            std::sync::Arc::new(crate::service::FixedClock::new(
                crate::service::testkit::t0(),
            )),
        )
        .unwrap();
        let admin = Actor::local_operator();
        services
            .initialize(&admin, "root", AccountInput::default())
            .unwrap();
        services.create(&admin, "bob", input).unwrap();
        let queue = services.notify_queue(&admin).unwrap();
        let mail = queue.iter().find(|e| e.account == "bob").unwrap();
        let Delivery::Email { subject, body, .. } = &mail.delivery else {
            panic!("an email")
        };
        assert_eq!(subject, "Hi bob");
        assert_eq!(body, "Hello Bob, you end on none.\n");
    }

    #[test]
    fn a_template_needs_exactly_one_body() {
        let text = format!("{EXAMPLE}\n[notify.templates.created]\nsubject = \"x\"\n");
        let err = crate::config::Config::parse(&text, "test", std::path::Path::new("/tmp"))
            .unwrap_err()
            .0;
        assert!(err.contains("exactly one of body and body_file"), "{err}");
    }
}
