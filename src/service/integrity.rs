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
    /// Only events after this sequence number (paging for scripts).
    pub since: Option<u64>,
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
    /// The checkpoint the check started after (`--since-checkpoint`), if any.
    pub since: Option<u64>,
}

/// The last verified point of the chain, kept in meta beside its audit event.
#[derive(serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    seq: u64,
    hash: String,
}

const CHECKPOINT: &str = "audit_checkpoint";

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
        let mut out = Vec::new();
        self.audit_tail_each(actor, filter, &mut |e| {
            out.push(e);
            Ok(())
        })?;
        Ok(out)
    }

    /// `audit_tail`, one event at a time, oldest first, in bounded memory:
    /// a first pass walks back from the newest event only counting matches
    /// to find where the tail starts, the second hands them over in order.
    /// With `since`, the first `limit` matches after that event instead.
    pub fn audit_tail_each(
        &self,
        actor: &Actor,
        filter: &AuditFilter,
        visit: &mut dyn FnMut(AuditEvent) -> Result<()>,
    ) -> Result<()> {
        self.require(actor, Permission::ReadAudit)?;
        let limit = filter.limit.max(1);
        let matches = |event: &AuditEvent| {
            filter.since.is_none_or(|s| event.seq > s)
                && filter.actor.as_ref().is_none_or(|a| &event.actor == a)
                && filter
                    .target
                    .as_ref()
                    .is_none_or(|t| event.target.as_ref() == Some(t))
                && filter
                    .action
                    .as_ref()
                    .is_none_or(|a| event.action.starts_with(a.as_str()))
        };
        let unfiltered =
            filter.actor.is_none() && filter.target.is_none() && filter.action.is_none();
        let start = match filter.since {
            Some(since) => since + 1,
            // Every event matches: the tail starts `limit` before the newest.
            None if unfiltered => match self.store().audit_last()? {
                Some(last) => last.seq.saturating_sub(limit as u64 - 1).max(1),
                None => return Ok(()),
            },
            None => {
                let mut seen = 0usize;
                let mut start = None;
                self.store().scan_audit(true, &mut |event| {
                    if matches(&event) {
                        seen += 1;
                        start = Some(event.seq);
                    }
                    seen < limit
                })?;
                match start {
                    Some(seq) => seq,
                    None => return Ok(()),
                }
            }
        };
        let mut given = 0usize;
        let mut failed: Option<Error> = None;
        self.store().scan_audit_blocks(start, &mut |block| {
            let events: Vec<AuditEvent> = match serde_json::from_slice(block) {
                Ok(events) => events,
                Err(e) => {
                    failed = Some(Error::Failed(format!(
                        "an audit block does not decode: {e}"
                    )));
                    return false;
                }
            };
            for event in events {
                if event.seq < start || !matches(&event) {
                    continue;
                }
                if let Err(e) = visit(event) {
                    failed = Some(e);
                    return false;
                }
                given += 1;
                if given >= limit {
                    return false;
                }
            }
            true
        })?;
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Recomputes the hash chain from the first event.
    /// Recomputes the hash chain, block by block at hash speed; from the
    /// last checkpoint with `since_checkpoint`. An intact chain is recorded
    /// as a checkpoint (an `audit.checkpoint` event naming the head it
    /// verified), so tomorrow's `--since-checkpoint` costs what changed since.
    pub fn audit_verify(&self, actor: &Actor, since_checkpoint: bool) -> Result<ChainReport> {
        self.require(actor, Permission::ReadAudit)?;
        let from = if since_checkpoint {
            self.store()
                .meta(CHECKPOINT)?
                .and_then(|bytes| serde_json::from_slice::<Checkpoint>(&bytes).ok())
        } else {
            None
        };
        let report = self.verify_chain_from(from.as_ref())?;
        if report.broken.is_none() && report.events > 0 {
            if let Some(head) = &report.head {
                let seq = from.as_ref().map_or(0, |c| c.seq) + report.events;
                let checkpoint = serde_json::to_vec(&Checkpoint {
                    seq,
                    hash: head.clone(),
                })
                .map_err(|e| Error::Failed(e.to_string()))?;
                let detail = format!("chain intact through event #{seq}, head {head}");
                self.write(actor, |tx| {
                    tx.set_meta(CHECKPOINT, &String::from_utf8_lossy(&checkpoint));
                    tx.event("audit.checkpoint", None, vec![], Some(detail.clone()));
                    Ok(())
                })?;
            }
        }
        Ok(report)
    }

    /// The chain check without recording a checkpoint (the console's audit screen).
    pub fn audit_chain(&self, actor: &Actor) -> Result<ChainReport> {
        self.require(actor, Permission::ReadAudit)?;
        self.verify_chain_from(None)
    }

    fn verify_chain(&self) -> Result<ChainReport> {
        self.verify_chain_from(None)
    }

    fn verify_chain_from(&self, from: Option<&Checkpoint>) -> Result<ChainReport> {
        let mut verifier = match from {
            Some(c) => ChainVerifier::resume(c.seq, &c.hash),
            None => ChainVerifier::default(),
        };
        let mut broken: Option<String> = None;
        let scanned = self
            .store()
            .scan_audit_blocks(from.map_or(0, |c| c.seq), &mut |block| match verifier
                .check_block(block)
            {
                Ok(()) => true,
                Err(b) => {
                    broken = Some(b.to_string());
                    false
                }
            });
        // A stored block or sealed segment that cannot be read (truncated,
        // altered in length) breaks the chain there.
        if let Err(e) = scanned {
            broken.get_or_insert(format!("after event #{}: {e}", verifier.head().0));
        }
        let head = (verifier.checked > 0).then(|| verifier.head().1.to_string());
        Ok(ChainReport {
            events: verifier.checked,
            head,
            broken,
            since: from.map(|c| c.seq),
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
        problems.extend(super::index::persisted::differences(
            self.store(),
            &accounts,
        )?);

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
