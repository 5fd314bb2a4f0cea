//! Requests an admin decides: for now, extensions of an end date asked for by
//! the account holder or its sponsor. Approval re-checks the kind's maximum and
//! extends in the same transaction as the decision.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::accounts::extend_in;
use super::authz::{allowed, Permission};
use super::{Actor, Error, Result, Services};
use crate::domain::{Role, Status};
use crate::store::Collection;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    Approved,
    Denied,
    /// Left undecided past `[requests] expire_days`.
    Expired,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub kind: String,
    pub account: String,
    /// The new end date (extension), or the requested account's (creation).
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
    pub reason: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub status: RequestStatus,
    #[serde(default)]
    pub decided_by: Option<String>,
    #[serde(default)]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub decision_reason: Option<String>,
    /// The accounts to create (`create`: one; `import`: a CSV's rows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<super::account_requests::RequestedAccount>,
}

pub(super) fn key(id: u64) -> String {
    format!("{id:012}")
}

impl Services {
    pub(super) fn load_request(&self, id: u64) -> Result<Request> {
        let bytes = self
            .store()
            .record(Collection::Requests, &key(id))?
            .ok_or_else(|| Error::NotFound(format!("no request #{id}")))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Failed(format!("request #{id}: {e}")))
    }

    /// `request extend NAME --end DATE --reason TEXT`: by the account itself,
    /// its sponsor, or an admin.
    pub fn request_extend(
        &self,
        actor: &Actor,
        name: &str,
        end: NaiveDate,
        reason: &str,
    ) -> Result<Request> {
        let account = self.store().account(name)?;
        if !allowed(actor, Permission::RequestExtension, account.as_ref()) {
            return Err(self.deny(actor, Permission::RequestExtension, Some(name)));
        }
        let account =
            account.ok_or_else(|| Error::NotFound(format!("no account named '{name}'")))?;
        if reason.trim().is_empty() {
            return Err(Error::Invalid(
                "a reason is required (--reason TEXT)".into(),
            ));
        }
        if end < self.today() {
            return Err(Error::Invalid(format!("end date {end} is in the past")));
        }
        if account.status == Status::Deleted {
            return Err(Error::Conflict(format!("{name} is deleted")));
        }
        if account.end_date.is_some_and(|current| end <= current) {
            return Err(Error::Invalid(format!(
                "{end} is not later than the current end date {}",
                account.end_date.unwrap_or(end)
            )));
        }
        let pending = self
            .request_all()?
            .into_iter()
            .any(|r| r.account == name && r.status == RequestStatus::Pending);
        if pending {
            return Err(Error::Conflict(format!(
                "{name} already has a pending extension request"
            )));
        }
        self.write(actor, |tx| {
            let next: u64 = self
                .store()
                .meta("next_request_id")?
                .and_then(|b| String::from_utf8_lossy(&b).parse().ok())
                .unwrap_or(1);
            let request = Request {
                id: next,
                kind: "extend".into(),
                account: name.to_string(),
                end_date: Some(end),
                reason: reason.trim().to_string(),
                requested_by: tx.actor.name.clone(),
                requested_at: tx.now,
                status: RequestStatus::Pending,
                decided_by: None,
                decided_at: None,
                decision_reason: None,
                accounts: Vec::new(),
            };
            tx.set_meta("next_request_id", &(next + 1).to_string());
            tx.put_record(Collection::Requests, &key(next), Some(&request))?;
            tx.event(
                "request.create",
                Some(name),
                vec![],
                Some(format!("#{next}: extend to {end}: {}", request.reason)),
            );
            Ok(request)
        })
    }

    pub(super) fn request_all(&self) -> Result<Vec<Request>> {
        self.store()
            .records(Collection::Requests)?
            .into_iter()
            .map(|(k, v)| {
                serde_json::from_slice(&v).map_err(|e| Error::Failed(format!("request {k}: {e}")))
            })
            .collect()
    }

    /// Admins and operators see every request; others the ones they made or that concern them.
    pub fn request_list(&self, actor: &Actor) -> Result<Vec<Request>> {
        let wide = actor.has(Role::Admin) || actor.has(Role::Operator);
        Ok(self
            .request_all()?
            .into_iter()
            .filter(|r| {
                wide || (actor.is_account
                    && (r.requested_by == actor.name || r.account == actor.name))
            })
            .collect())
    }

    pub fn request_decide(
        &self,
        actor: &Actor,
        id: u64,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Request> {
        // Through `allowed`, so an API token's scope narrows it too.
        if !allowed(actor, Permission::DecideRequest, None) {
            return Err(self.deny(actor, Permission::DecideRequest, None));
        }
        let request = self.load_request(id)?;
        if approve {
            super::account_requests::check_approver(self, actor, &request)?;
        }
        if request.status != RequestStatus::Pending {
            return Err(Error::Conflict(
                format!("request #{id} is already {:?}", request.status).to_lowercase(),
            ));
        }
        if !approve && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            return Err(Error::Invalid(
                "a reason is required to deny (--reason TEXT)".into(),
            ));
        }
        self.write(actor, |tx| {
            let mut decided = request.clone();
            decided.status = if approve {
                RequestStatus::Approved
            } else {
                RequestStatus::Denied
            };
            decided.decided_by = Some(tx.actor.name.clone());
            decided.decided_at = Some(tx.now);
            decided.decision_reason = reason.clone();
            match (approve, request.kind.as_str()) {
                (true, "extend") => {
                    let end = request
                        .end_date
                        .ok_or_else(|| Error::Failed(format!("request #{id} has no end date")))?;
                    extend_in(
                        tx,
                        &request.account,
                        end,
                        Some(format!("request #{id} approved")),
                    )?;
                }
                (true, _) => super::account_requests::create_requested(tx, &request)?,
                (false, _) => super::account_requests::tell_requester(
                    tx,
                    &request,
                    "request_denied",
                    reason.clone().unwrap_or_default(),
                )?,
            }
            tx.put_record(Collection::Requests, &key(id), Some(&decided))?;
            let verb = if approve {
                "request.approve"
            } else {
                "request.deny"
            };
            let target = (request.kind != "import").then_some(request.account.as_str());
            tx.event(
                verb,
                target,
                vec![],
                Some(format!(
                    "#{id}{}",
                    reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                )),
            );
            Ok(decided)
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::Kind;
    use crate::service::accounts::AccountInput;
    use crate::service::testkit::services;
    use crate::service::Source;

    fn person(
        s: &Services,
        admin: &Actor,
        name: &str,
        kind: Kind,
        sponsor: Option<&str>,
        role: Role,
    ) -> Actor {
        let input = AccountInput {
            email: Some(format!("{name}@x.io")),
            display_name: Some(name.into()),
            kind: Some(kind),
            sponsor: sponsor.map(str::to_string),
            end_date: (kind != Kind::Employee).then(|| s.today() + Duration::days(30)),
            roles: Some(vec![role]),
            ..Default::default()
        };
        let account = s.create(admin, name, input).unwrap();
        Actor::account(&account, Source::Cli, None)
    }

    #[test]
    fn the_holder_or_sponsor_asks_and_only_an_admin_decides() {
        let (s, _clock, admin) = services();
        let sara = person(&s, &admin, "sara", Kind::Employee, None, Role::Sponsor);
        let carl = person(
            &s,
            &admin,
            "carl",
            Kind::Contractor,
            Some("sara"),
            Role::User,
        );
        let eve = person(&s, &admin, "eve", Kind::Contractor, None, Role::User);
        let later = s.today() + Duration::days(90);

        assert_eq!(
            s.request_extend(&eve, "carl", later, "please")
                .unwrap_err()
                .exit_code(),
            4
        );
        let asked = s
            .request_extend(&carl, "carl", later, "project extended")
            .unwrap();
        assert_eq!(
            s.request_extend(&sara, "carl", later, "again")
                .unwrap_err()
                .exit_code(),
            5,
            "one pending at a time"
        );
        assert_eq!(
            s.request_decide(&sara, asked.id, true, None)
                .unwrap_err()
                .exit_code(),
            4
        );
        assert_eq!(
            s.request_list(&eve).unwrap().len(),
            0,
            "eve sees nothing of carl's"
        );
        assert_eq!(s.request_list(&carl).unwrap().len(), 1);

        let approved = s.request_decide(&admin, asked.id, true, None).unwrap();
        assert_eq!(approved.status, RequestStatus::Approved);
        assert_eq!(s.load("carl").unwrap().end_date, Some(later));
        assert_eq!(
            s.request_decide(&admin, asked.id, false, Some("no".into()))
                .unwrap_err()
                .exit_code(),
            5
        );
    }

    #[test]
    fn approval_rechecks_the_kinds_maximum() {
        let (s, _clock, admin) = services();
        let carl = person(&s, &admin, "carl", Kind::Contractor, None, Role::User);
        // Contractors may be extended at most 365 days ahead.
        let asked = s
            .request_extend(
                &carl,
                "carl",
                s.today() + Duration::days(500),
                "long project",
            )
            .unwrap();
        let err = s.request_decide(&admin, asked.id, true, None).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(err.to_string().contains("365-day maximum"), "{err}");
        assert_eq!(
            s.request_list(&admin).unwrap()[0].status,
            RequestStatus::Pending,
            "nothing half-written"
        );
        let denied = s
            .request_decide(&admin, asked.id, false, Some("too long".into()))
            .unwrap();
        assert_eq!(denied.status, RequestStatus::Denied);
    }
}
