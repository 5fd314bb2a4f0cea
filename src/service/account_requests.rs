//! Account requests: someone who may not create accounts (a sponsor, an
//! operator) asks for one — or for a CSV's worth, as one unit — and an admin
//! approves (the accounts are created in the same transaction as the
//! decision) or denies. A request is checked exactly like a creation when it
//! is made and again when it is approved; it reserves nothing meanwhile.

use chrono::Duration;
use serde::{Deserialize, Serialize};

use super::accounts::{create_in, prefix_row, AccountInput};
use super::authz::{allowed, Permission};
use super::lifecycle::PreviewItem;
use super::requests::{key, Request, RequestStatus};
use super::{Actor, Error, Result, Services, Tx};
use crate::store::Collection;

/// The most accounts one `request import` may ask for.
pub const MAX_REQUESTED_ACCOUNTS: usize = 5000;

/// One account a request asks for: its username and every create field.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestedAccount {
    pub username: String,
    pub input: AccountInput,
}

/// The same error with `request #ID` (and the row, for an import) in front.
fn about(e: Error, what: String) -> Error {
    match e {
        Error::Invalid(m) => Error::Invalid(format!("{what}: {m}")),
        Error::NotFound(m) => Error::NotFound(format!("{what}: {m}")),
        Error::Conflict(m) => Error::Conflict(format!("{what}: {m}")),
        Error::Denied(m) => Error::Denied(format!("{what}: {m}")),
        Error::Failed(m) => Error::Failed(format!("{what}: {m}")),
        other => other,
    }
}

/// Creates every account of an approved request within `tx` (all or none).
pub(super) fn create_requested(tx: &mut Tx<'_>, request: &Request) -> Result<()> {
    let id = request.id;
    for (i, a) in request.accounts.iter().enumerate() {
        create_in(tx, &a.username, &a.input).map_err(|e| {
            let e = if request.accounts.len() > 1 {
                prefix_row(e, format!("row {}", i + 1), &a.username)
            } else {
                e
            };
            about(
                e,
                format!("request #{id} cannot be approved (it stays pending)"),
            )
        })?;
    }
    tell_requester(tx, request, "request_approved", String::new())
}

/// Refuses an approval by an admin who is not among the `[requests]
/// approvers` of a kind the request asks for.
pub(super) fn check_approver(services: &Services, actor: &Actor, request: &Request) -> Result<()> {
    let approvers = &services.config().requests.approvers;
    for a in &request.accounts {
        let Some(kind) = a.input.kind.or_else(|| {
            let t = a.input.template.as_ref()?;
            services.config().templates.get(t).and_then(|t| t.kind)
        }) else {
            continue;
        };
        if let Some(names) = approvers.get(&kind) {
            if !names.iter().any(|n| *n == actor.name) {
                return Err(services.deny_because(
                    actor,
                    Permission::DecideRequest,
                    None,
                    Some(format!(
                        "{kind} accounts are approved by {} ([requests] approvers)",
                        names.join(", ")
                    )),
                ));
            }
        }
    }
    Ok(())
}

/// Queues `event` (approved, denied, expired) to the one who asked, if an account.
pub(super) fn tell_requester(
    tx: &mut Tx<'_>,
    request: &Request,
    event: &str,
    reason: String,
) -> Result<()> {
    let Some(requester) = tx.get(&request.requested_by)? else {
        return Ok(());
    };
    tx.notify(
        event,
        &requester,
        &[
            ("request_id", request.id.to_string()),
            ("request_kind", request.kind.clone()),
            ("request_for", request.account.clone()),
            ("request_reason", request.reason.clone()),
            ("decision_reason", reason),
        ],
    )
}

impl Services {
    /// May `actor` ask for accounts (sponsors and operators; admins too)?
    pub fn may_request_accounts(&self, actor: &Actor) -> bool {
        allowed(actor, Permission::RequestAccount, None)
    }

    /// Whether `name` is taken, for the create form of one who may create or
    /// request accounts (a request would say so too); others learn no more
    /// than `user show` tells them.
    pub fn username_taken(&self, actor: &Actor, name: &str) -> bool {
        if allowed(actor, Permission::CreateAccount, None) || self.may_request_accounts(actor) {
            return self.store().account_exists(name).unwrap_or(true);
        }
        !matches!(self.show(actor, name), Err(Error::NotFound(_)))
    }

    /// `request create NAME [create flags] --reason TEXT`.
    pub fn request_create(
        &self,
        actor: &Actor,
        name: &str,
        input: AccountInput,
        reason: &str,
    ) -> Result<Request> {
        let accounts = vec![RequestedAccount {
            username: name.to_string(),
            input,
        }];
        self.submit_accounts(actor, "create", accounts, reason)
    }

    /// `request import --reason TEXT < people.csv`: the rows as one request.
    pub fn request_import(
        &self,
        actor: &Actor,
        rows: super::import::ImportRows<'_>,
        reason: &str,
    ) -> Result<Request> {
        let mut accounts = Vec::new();
        for row in rows {
            let row = row?;
            if accounts.len() >= MAX_REQUESTED_ACCOUNTS {
                return Err(Error::Invalid(format!(
                    "a request asks for at most {MAX_REQUESTED_ACCOUNTS} accounts (use import)"
                )));
            }
            accounts.push(RequestedAccount {
                username: row.username,
                input: row.input,
            });
        }
        if accounts.is_empty() {
            return Err(Error::Invalid("the CSV has no rows".into()));
        }
        self.submit_accounts(actor, "import", accounts, reason)
    }

    fn submit_accounts(
        &self,
        actor: &Actor,
        kind: &str,
        accounts: Vec<RequestedAccount>,
        reason: &str,
    ) -> Result<Request> {
        if !self.may_request_accounts(actor) {
            return Err(self.deny(actor, Permission::RequestAccount, None));
        }
        if reason.trim().is_empty() {
            return Err(Error::Invalid(
                "a reason is required (--reason TEXT)".into(),
            ));
        }
        // Already asked for: the same username or email in a pending request.
        let pending = self
            .request_all()?
            .into_iter()
            .filter(|r| r.status == RequestStatus::Pending);
        for r in pending {
            for old in &r.accounts {
                for new in &accounts {
                    let same_email = match (&old.input.email, &new.input.email) {
                        (Some(a), Some(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
                        _ => false,
                    };
                    if old.username == new.username || same_email {
                        let what = if old.username == new.username {
                            format!("the username '{}'", new.username)
                        } else {
                            format!(
                                "the email '{}'",
                                new.input.email.clone().unwrap_or_default()
                            )
                        };
                        return Err(Error::Conflict(format!(
                            "{what} is already requested (request #{} by {})",
                            r.id, r.requested_by
                        )));
                    }
                }
            }
        }
        // Checked exactly like a creation, then dropped: nothing reserved.
        let many = accounts.len() > 1;
        self.write_or_try(actor, true, |tx| {
            for (i, a) in accounts.iter().enumerate() {
                create_in(tx, &a.username, &a.input).map_err(|e| {
                    if many {
                        prefix_row(e, format!("row {}", i + 1), &a.username)
                    } else {
                        e
                    }
                })?;
            }
            Ok(())
        })?;
        let label = if many {
            format!("{} accounts ({}, …)", accounts.len(), accounts[0].username)
        } else {
            accounts[0].username.clone()
        };
        let end_date = if many {
            None
        } else {
            accounts[0].input.end_date
        };
        let reason = reason.trim().to_string();
        self.write(actor, |tx| {
            let next: u64 = self
                .store()
                .meta("next_request_id")?
                .and_then(|b| String::from_utf8_lossy(&b).parse().ok())
                .unwrap_or(1);
            let request = Request {
                id: next,
                kind: kind.to_string(),
                account: label.clone(),
                end_date,
                reason: reason.clone(),
                requested_by: tx.actor.name.clone(),
                requested_at: tx.now,
                status: RequestStatus::Pending,
                decided_by: None,
                decided_at: None,
                decision_reason: None,
                accounts: accounts.clone(),
            };
            tx.set_meta("next_request_id", &(next + 1).to_string());
            tx.put_record(Collection::Requests, &key(next), Some(&request))?;
            let target = (!many).then_some(label.as_str());
            tx.event(
                "request.create",
                target,
                vec![],
                Some(format!("#{next}: {kind} {label}: {reason}")),
            );
            Ok(request)
        })
    }

    /// Closes the requests left pending past `[requests] expire_days`,
    /// telling each requester. Run by the lifecycle sweep.
    pub(crate) fn expire_requests(&self, actor: &Actor) -> Result<Vec<PreviewItem>> {
        let days = i64::from(self.config().requests.expire_days);
        let now = self.now();
        let due: Vec<Request> = self
            .request_all()?
            .into_iter()
            .filter(|r| r.status == RequestStatus::Pending)
            .filter(|r| r.requested_at + Duration::days(days) <= now)
            .collect();
        let mut done = Vec::new();
        for request in due {
            let item = self.write(actor, |tx| {
                let mut closed = request.clone();
                closed.status = RequestStatus::Expired;
                closed.decided_at = Some(tx.now);
                closed.decision_reason = Some(format!("not decided within {days} days"));
                tx.put_record(Collection::Requests, &key(request.id), Some(&closed))?;
                let target = (request.kind != "import").then_some(request.account.as_str());
                tx.event(
                    "request.expire",
                    target,
                    vec![],
                    Some(format!("#{}: not decided within {days} days", request.id)),
                );
                tell_requester(
                    tx,
                    &request,
                    "request_expired",
                    format!("not decided within {days} days"),
                )?;
                Ok(PreviewItem {
                    username: request.account.clone(),
                    date: tx.today(),
                    action: format!("expire request #{}", request.id),
                    why: format!("pending for {days} days"),
                })
            })?;
            done.push(item);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Kind, Role};
    use crate::service::testkit::services;
    use crate::service::Source;

    fn input(email: &str) -> AccountInput {
        AccountInput {
            email: Some(email.into()),
            display_name: Some("Neo".into()),
            kind: Some(Kind::Contractor),
            end_date: None,
            ..Default::default()
        }
    }

    #[test]
    fn a_request_is_checked_like_a_creation_reserves_nothing_and_is_approved_once() {
        let (s, clock, admin) = services();
        let sam = s
            .create(
                &admin,
                "sam",
                AccountInput {
                    email: Some("sam@x.io".into()),
                    display_name: Some("Sam".into()),
                    kind: Some(Kind::Employee),
                    roles: Some(vec![Role::Sponsor]),
                    ..Default::default()
                },
            )
            .unwrap();
        let sam = Actor::account(&sam, Source::Cli, None);
        // A contractor needs an end date: refused exactly like a creation.
        let e = s
            .request_create(&sam, "neo", input("neo@x.io"), "new hire")
            .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        let mut ok = input("neo@x.io");
        ok.end_date = Some(s.today() + Duration::days(30));
        ok.sponsor = Some("sam".into());
        let r = s
            .request_create(&sam, "neo", ok.clone(), "new hire")
            .unwrap();
        assert!(
            s.store().account("neo").unwrap().is_none(),
            "nothing reserved"
        );
        // The same username or email again: a conflict.
        let mut other = ok.clone();
        other.email = Some("other@x.io".into());
        assert_eq!(
            s.request_create(&sam, "neo", other, "again")
                .unwrap_err()
                .exit_code(),
            5
        );
        assert_eq!(
            s.request_create(&sam, "neo2", ok.clone(), "again")
                .unwrap_err()
                .exit_code(),
            5
        );
        // Only an admin decides.
        assert_eq!(
            s.request_decide(&sam, r.id, true, None)
                .unwrap_err()
                .exit_code(),
            4
        );
        let decided = s.request_decide(&admin, r.id, true, None).unwrap();
        assert_eq!(decided.status, RequestStatus::Approved);
        assert_eq!(s.load("neo").unwrap().sponsor.as_deref(), Some("sam"));
        // Expiry closes what is left pending.
        let mut late = input("late@x.io");
        late.end_date = Some(s.today() + Duration::days(60));
        let r2 = s.request_create(&sam, "late", late, "later").unwrap();
        clock.advance(Duration::days(14));
        let expired = s.expire_requests(&admin).unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(
            s.load_request(r2.id).unwrap().status,
            RequestStatus::Expired
        );
    }
}
