//! Reports: the orphan report finds what nobody is accountable for.

use chrono::Duration;
use serde::Serialize;

use super::authz::{allowed, Permission};
use super::{Actor, Result, Services};
use crate::domain::lifecycle::{effective, Effective};
use crate::domain::Kind;

#[derive(Clone, Debug, Serialize)]
pub struct Orphan {
    pub username: String,
    /// sponsor_inactive, sponsor_missing, no_sponsor, no_end_date, never_logged_in, key_unused,
    /// target_orphan (an object a connector's target holds that no account accounts for),
    /// target_disputed (the object under an account's name in a target is someone else's)
    pub problem: String,
    pub detail: String,
    /// For an object left in a target (`target_orphan`): the connector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
}

impl Services {
    /// Active non-employees whose sponsor is disabled, deleted or missing;
    /// accounts without the end date policy wants; accounts that never logged
    /// in; keys unused for `key_unused_days`.
    pub fn report_orphans(&self, actor: &Actor) -> Result<Vec<Orphan>> {
        let mut out = Vec::new();
        self.report_orphans_each(actor, &mut |o| {
            out.push(o);
            Ok(())
        })?;
        Ok(out)
    }

    /// `report_orphans`, one finding at a time, in username order: the
    /// accounts are walked once, sponsors looked up (and remembered: there
    /// are few of them), nothing else held (see `scan`).
    pub fn report_orphans_each(
        &self,
        actor: &Actor,
        visit: &mut dyn FnMut(Orphan) -> Result<()>,
    ) -> Result<()> {
        if !allowed(actor, Permission::Export, None) {
            return Err(self.deny(actor, Permission::Export, None));
        }
        let today = self.today();
        let now = self.now();
        let policy = &self.config().policy;
        let mut sponsors: std::collections::HashMap<String, Option<Effective>> =
            std::collections::HashMap::new();
        self.each_account(None, None, &mut |a| {
            let state = effective(&a, today);
            // A host is a server, not a person nobody answers for (`host list`).
            if !matches!(state, Effective::Active | Effective::Staged)
                || crate::domain::host::is_host(&a)
            {
                return Ok(true);
            }
            let mut add = |problem: &str, detail: String| {
                visit(Orphan {
                    username: a.username.clone(),
                    problem: problem.into(),
                    detail,
                    connector: None,
                })
            };
            if a.kind != Kind::Employee {
                match a.sponsor.as_deref() {
                    None => add("no_sponsor", format!("{} with no sponsor", a.kind))?,
                    Some(s) => {
                        let sponsor = match sponsors.get(s) {
                            Some(known) => known.clone(),
                            None => {
                                let found =
                                    self.store().account(s)?.map(|sp| effective(&sp, today));
                                sponsors.insert(s.to_string(), found.clone());
                                found
                            }
                        };
                        match sponsor {
                            None => {
                                add("sponsor_missing", format!("sponsor '{s}' no longer exists"))?
                            }
                            Some(st) if !matches!(st, Effective::Active) => add(
                                "sponsor_inactive",
                                format!("sponsor '{s}' is {}", st.as_str()),
                            )?,
                            Some(_) => {}
                        }
                    }
                }
            }
            if a.end_date.is_none() {
                if let Some(days) = policy.max_duration(a.kind) {
                    add(
                        "no_end_date",
                        format!("a {} needs an end date (max {days} days)", a.kind),
                    )?;
                }
            }
            if a.last_login.is_none() {
                let since = (today - a.created_at.date_naive()).num_days();
                add(
                    "never_logged_in",
                    format!(
                        "created {} ({since} days ago), never logged in",
                        a.created_at.date_naive()
                    ),
                )?;
            }
            if policy.key_unused_days > 0 {
                let limit = Duration::days(i64::from(policy.key_unused_days));
                for k in &a.credentials.keys {
                    let last = k.last_used.unwrap_or(k.added_at);
                    if now - last >= limit {
                        add(
                            "key_unused",
                            format!("key {} unused since {}", k.fingerprint, last.date_naive()),
                        )?;
                    }
                }
            }
            Ok(true)
        })?;
        // Objects in a target that look like someone else's, which tenure
        // refuses to overwrite until an admin adopts them.
        for l in self.links_all()? {
            if l.status != super::connect::LinkStatus::Disputed {
                continue;
            }
            visit(Orphan {
                username: l.account.clone(),
                problem: "target_disputed".into(),
                detail: format!(
                    "{}: {} (not overwritten; `connector retry {} --user {} --adopt` takes it over)",
                    l.connector,
                    l.last_error.clone().unwrap_or_default(),
                    l.connector,
                    l.account
                ),
                connector: Some(l.connector.clone()),
            })?;
        }
        // Objects the targets hold that no account accounts for, as the
        // last reconcile of each connector found them.
        for c in &self.config().connectors {
            let Some(report) = self.last_reconcile(&c.name)? else {
                continue;
            };
            for u in &report.unmatched {
                visit(Orphan {
                    username: u.username.clone().unwrap_or_else(|| u.object.clone()),
                    problem: "target_orphan".into(),
                    detail: format!(
                        "{}: {} ({}; {}, reconciled {})",
                        c.name,
                        u.object,
                        u.why,
                        if u.enabled { "enabled" } else { "disabled" },
                        report.at.format("%Y-%m-%d %H:%M UTC")
                    ),
                    connector: Some(c.name.clone()),
                })?;
            }
        }
        Ok(())
    }
}
