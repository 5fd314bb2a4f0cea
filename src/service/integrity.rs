//! Reading and verifying the audit trail, and `check`: the database's own
//! integrity report.

use std::collections::{BTreeSet, HashMap};

use super::authz::{allowed, Permission};
use super::{Actor, Error, Result, Services};
use crate::domain::audit::{ChainBreak, ChainVerifier};
use crate::domain::{Account, AuditEvent};
use crate::store::SCHEMA_VERSION;

#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub limit: usize,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub action: Option<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ChainReport {
    pub events: u64,
    pub head: Option<String>,
    /// The first problem found, if any.
    pub broken: Option<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckReport {
    pub accounts: usize,
    pub groups: usize,
    pub audit_events: u64,
    pub problems: Vec<String>,
}

impl Services {
    fn require(&self, actor: &Actor, permission: Permission) -> Result<()> {
        if allowed(actor, permission, None) {
            Ok(())
        } else {
            Err(self.deny(actor, permission, None))
        }
    }

    /// The newest matching events, returned oldest first.
    pub fn audit_tail(&self, actor: &Actor, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        self.require(actor, Permission::ReadAudit)?;
        let limit = filter.limit.max(1);
        let mut out = Vec::new();
        self.store().scan_audit(true, &mut |event| {
            let keep = filter.actor.as_ref().is_none_or(|a| &event.actor == a)
                && filter
                    .target
                    .as_ref()
                    .is_none_or(|t| event.target.as_ref() == Some(t))
                && filter
                    .action
                    .as_ref()
                    .is_none_or(|a| event.action.starts_with(a.as_str()));
            if keep {
                out.push(event);
            }
            out.len() < limit
        })?;
        out.reverse();
        Ok(out)
    }

    /// Recomputes the hash chain from the first event.
    pub fn audit_verify(&self, actor: &Actor) -> Result<ChainReport> {
        self.require(actor, Permission::ReadAudit)?;
        self.verify_chain()
    }

    fn verify_chain(&self) -> Result<ChainReport> {
        let mut verifier = ChainVerifier::default();
        let mut broken: Option<ChainBreak> = None;
        let mut head = None;
        self.store()
            .scan_audit(false, &mut |event| match verifier.check(&event) {
                Ok(()) => {
                    head = Some(event.hash);
                    true
                }
                Err(b) => {
                    broken = Some(b);
                    false
                }
            })?;
        Ok(ChainReport {
            events: verifier.checked,
            head,
            broken: broken.map(|b| b.to_string()),
        })
    }

    /// Verifies every record, every derived index and the audit chain.
    pub fn check(&self, actor: &Actor) -> Result<CheckReport> {
        self.require(actor, Permission::Check)?;
        let mut problems = Vec::new();
        match self.store().meta("schema_version")? {
            Some(v) if String::from_utf8_lossy(&v) == SCHEMA_VERSION.to_string() => {}
            Some(v) => problems.push(format!(
                "schema version is {}, expected {SCHEMA_VERSION}",
                String::from_utf8_lossy(&v)
            )),
            None => {
                problems.push("schema version key is missing (database not initialised?)".into())
            }
        }

        let mut accounts: Vec<Account> = Vec::new();
        self.store()
            .scan_accounts(&mut |key, account| match account {
                Ok(a) if a.username == key => accounts.push(a),
                Ok(a) => problems.push(format!("record '{key}' holds account '{}'", a.username)),
                Err(why) => problems.push(format!("record '{key}' does not decode: {why}")),
            })?;
        let names: BTreeSet<&str> = accounts.iter().map(|a| a.username.as_str()).collect();
        let groups: BTreeSet<String> = self.groups_all()?.into_iter().map(|g| g.name).collect();
        let mut emails: HashMap<String, &str> = HashMap::new();
        let mut fingerprints: HashMap<&str, &str> = HashMap::new();
        for a in &accounts {
            if let Some(other) = emails.insert(a.email_key(), &a.username) {
                problems.push(format!(
                    "email {} is used by both {other} and {}",
                    a.email, a.username
                ));
            }
            for k in &a.credentials.keys {
                if let Some(other) = fingerprints.insert(&k.fingerprint, &a.username) {
                    problems.push(format!(
                        "key {} is registered to both {other} and {}",
                        k.fingerprint, a.username
                    ));
                }
            }
            if let Some(s) = &a.sponsor {
                if !names.contains(s.as_str()) {
                    problems.push(format!("{}: sponsor '{s}' does not exist", a.username));
                }
            }
            for g in &a.groups {
                if !groups.contains(g) {
                    problems.push(format!("{}: group '{g}' does not exist", a.username));
                }
            }
        }

        // The live indexes against ones rebuilt from the records.
        let mut rebuilt = super::Indexes::new(&self.config().policy);
        for a in &accounts {
            rebuilt.insert(a);
        }
        {
            let guard = self.indexes()?;
            if let Some(live) = guard.as_ref() {
                problems.extend(live.differences(&rebuilt));
            }
        }

        let chain = self.verify_chain()?;
        if let Some(b) = &chain.broken {
            problems.push(format!("audit chain: {b}"));
        }
        Ok(CheckReport {
            accounts: accounts.len(),
            groups: groups.len(),
            audit_events: chain.events,
            problems,
        })
    }
}

impl From<ChainBreak> for Error {
    fn from(b: ChainBreak) -> Self {
        Error::Failed(b.to_string())
    }
}
