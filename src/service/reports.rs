//! Reports: the orphan report finds what nobody is accountable for.

use chrono::Duration;
use serde::Serialize;

use super::authz::{allowed, Permission};
use super::{Actor, Result, Services};
use crate::domain::lifecycle::{effective, Effective};
use crate::domain::{Account, Kind};

#[derive(Clone, Debug, Serialize)]
pub struct Orphan {
    pub username: String,
    /// sponsor_inactive, sponsor_missing, no_sponsor, no_end_date, never_logged_in, key_unused
    pub problem: String,
    pub detail: String,
}

impl Services {
    /// Active non-employees whose sponsor is disabled, deleted or missing;
    /// accounts without the end date policy wants; accounts that never logged
    /// in; keys unused for `key_unused_days`.
    pub fn report_orphans(&self, actor: &Actor) -> Result<Vec<Orphan>> {
        if !allowed(actor, Permission::Export, None) {
            return Err(self.deny(actor, Permission::Export, None));
        }
        let today = self.today();
        let policy = &self.config().policy;
        let mut accounts: Vec<Account> = Vec::new();
        self.store().scan_accounts(&mut |_, a| {
            if let Ok(a) = a {
                accounts.push(a);
            }
        })?;
        let by_name: std::collections::HashMap<&str, &Account> =
            accounts.iter().map(|a| (a.username.as_str(), a)).collect();
        let mut out = Vec::new();
        let mut add = |a: &Account, problem: &str, detail: String| {
            out.push(Orphan {
                username: a.username.clone(),
                problem: problem.into(),
                detail,
            });
        };
        for a in &accounts {
            let state = effective(a, today);
            if !matches!(state, Effective::Active | Effective::Staged) {
                continue;
            }
            if a.kind != Kind::Employee {
                match a.sponsor.as_deref() {
                    None => add(a, "no_sponsor", format!("{} with no sponsor", a.kind)),
                    Some(s) => match by_name.get(s) {
                        None => add(
                            a,
                            "sponsor_missing",
                            format!("sponsor '{s}' no longer exists"),
                        ),
                        Some(sp) => {
                            let st = effective(sp, today);
                            if !matches!(st, Effective::Active) {
                                add(
                                    a,
                                    "sponsor_inactive",
                                    format!("sponsor '{s}' is {}", st.as_str()),
                                );
                            }
                        }
                    },
                }
            }
            if a.end_date.is_none() {
                if let Some(days) = policy.max_duration(a.kind) {
                    add(
                        a,
                        "no_end_date",
                        format!("a {} needs an end date (max {days} days)", a.kind),
                    );
                }
            }
            if a.last_login.is_none() {
                let since = (today - a.created_at.date_naive()).num_days();
                add(
                    a,
                    "never_logged_in",
                    format!(
                        "created {} ({since} days ago), never logged in",
                        a.created_at.date_naive()
                    ),
                );
            }
            if policy.key_unused_days > 0 {
                let limit = Duration::days(i64::from(policy.key_unused_days));
                for k in &a.credentials.keys {
                    let last = k.last_used.unwrap_or(k.added_at);
                    if self.now() - last >= limit {
                        add(
                            a,
                            "key_unused",
                            format!("key {} unused since {}", k.fingerprint, last.date_naive()),
                        );
                    }
                }
            }
        }
        Ok(out)
    }
}
