//! Audit events: append-only, each hashing its predecessor so that a change
//! to any stored event breaks the chain from there on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::account::Account;

/// The hash the first event links to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One field that changed. Secrets never appear here: credentials are
/// described (fingerprints, "password set"), never copied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    #[serde(default)]
    pub old: Value,
    #[serde(default)]
    pub new: Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// Who did it: a username, `local:<os user>` offline, or `system:<job>`.
    pub actor: String,
    /// Where from: `cli`, `ssh:<addr>`, `scheduler`…
    pub source: String,
    #[serde(default)]
    pub session: Option<String>,
    /// Dotted verb: `user.create`, `key.add`, `auth.denied`…
    pub action: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub changes: Vec<Change>,
    /// A short human note (a reason, a refused permission).
    #[serde(default)]
    pub detail: Option<String>,
    pub prev_hash: String,
    #[serde(default)]
    pub hash: String,
}

impl AuditEvent {
    /// SHA-256 over the canonical JSON of every field but `hash`.
    pub fn compute_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash = String::new();
        // serde_json maps are sorted, so the encoding is canonical.
        let bytes = serde_json::to_vec(&unhashed).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }

    /// Sets `seq`, `prev_hash` and `hash` to follow `prev`.
    pub fn chain_after(&mut self, prev_seq: u64, prev_hash: &str) {
        self.seq = prev_seq + 1;
        self.prev_hash = prev_hash.to_string();
        self.hash = self.compute_hash();
    }
}

/// Where a chain check stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainBreak {
    /// The event's own hash does not match its content.
    Altered { seq: u64 },
    /// The event does not link to its predecessor's hash.
    Unlinked { seq: u64 },
    /// A sequence number is missing (an event was removed).
    Gap { expected: u64, found: u64 },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainBreak::Altered { seq } => write!(
                f,
                "event #{seq} was altered (its hash does not match its content)"
            ),
            ChainBreak::Unlinked { seq } => write!(
                f,
                "event #{seq} does not link to event #{} (chain broken)",
                seq.saturating_sub(1)
            ),
            ChainBreak::Gap { expected, found } => {
                write!(f, "event #{expected} is missing (next stored is #{found})")
            }
        }
    }
}

/// Walks events in order, checking each against its predecessor.
#[derive(Debug)]
pub struct ChainVerifier {
    prev_seq: u64,
    prev_hash: String,
    pub checked: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            prev_seq: 0,
            prev_hash: GENESIS.to_string(),
            checked: 0,
        }
    }
}

impl ChainVerifier {
    pub fn check(&mut self, event: &AuditEvent) -> Result<(), ChainBreak> {
        if event.seq != self.prev_seq + 1 {
            return Err(ChainBreak::Gap {
                expected: self.prev_seq + 1,
                found: event.seq,
            });
        }
        if event.compute_hash() != event.hash {
            return Err(ChainBreak::Altered { seq: event.seq });
        }
        if event.prev_hash != self.prev_hash {
            return Err(ChainBreak::Unlinked { seq: event.seq });
        }
        self.prev_seq = event.seq;
        self.prev_hash = event.hash.clone();
        self.checked += 1;
        Ok(())
    }
}

/// The account as the audit trail may show it: credentials reduced to
/// fingerprints and flags.
pub fn redacted(account: &Account) -> Value {
    let mut value = serde_json::to_value(account).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("credentials");
        map.remove("last_login");
        map.remove("updated_at");
        map.remove("updated_by");
        let keys: Vec<Value> = account
            .credentials
            .keys
            .iter()
            .map(|k| json!(k.fingerprint))
            .collect();
        map.insert("keys".into(), Value::Array(keys));
        map.insert(
            "password".into(),
            json!(account.credentials.password_hash.is_some()),
        );
        map.insert(
            "totp".into(),
            json!(account.credentials.totp_secret.is_some()),
        );
        map.insert(
            "password_set_at".into(),
            json!(account.credentials.password_set_at),
        );
        map.retain(|_, v| !v.is_null());
    }
    value
}

/// Field-by-field differences between two versions of an account. A
/// creation (or purge) is one change carrying the whole record, which keeps
/// bulk imports' audit blocks compact.
pub fn diff(old: Option<&Account>, new: Option<&Account>) -> Vec<Change> {
    match (old, new) {
        (None, Some(created)) => {
            return vec![Change {
                field: "account".into(),
                old: Value::Null,
                new: redacted(created),
            }]
        }
        (Some(gone), None) => {
            return vec![Change {
                field: "account".into(),
                old: redacted(gone),
                new: Value::Null,
            }]
        }
        _ => {}
    }
    let empty = serde_json::Map::new();
    let old_v = old.map(redacted).unwrap_or(Value::Null);
    let new_v = new.map(redacted).unwrap_or(Value::Null);
    let old_m = old_v.as_object().unwrap_or(&empty);
    let new_m = new_v.as_object().unwrap_or(&empty);
    let mut fields: Vec<&String> = old_m.keys().chain(new_m.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter_map(|field| {
            let o = old_m.get(field).cloned().unwrap_or(Value::Null);
            let n = new_m.get(field).cloned().unwrap_or(Value::Null);
            (o != n).then(|| Change {
                field: field.clone(),
                old: o,
                new: n,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str) -> AuditEvent {
        AuditEvent {
            seq: 0,
            at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            actor: "admin".into(),
            source: "cli".into(),
            session: None,
            action: action.into(),
            target: Some("bob".into()),
            changes: vec![],
            detail: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn chain(n: usize) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for i in 0..n {
            let mut e = event(&format!("user.update.{i}"));
            let (seq, hash) = out
                .last()
                .map(|p| (p.seq, p.hash.clone()))
                .unwrap_or((0, GENESIS.to_string()));
            e.chain_after(seq, &hash);
            out.push(e);
        }
        out
    }

    fn verify(events: &[AuditEvent]) -> Result<(), ChainBreak> {
        let mut v = ChainVerifier::default();
        events.iter().try_for_each(|e| v.check(e))
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(()));
    }

    #[test]
    fn altered_removed_or_relinked_events_are_named() {
        let mut altered = chain(5);
        altered[2].target = Some("mallory".into());
        assert_eq!(verify(&altered), Err(ChainBreak::Altered { seq: 3 }));

        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(
            verify(&removed),
            Err(ChainBreak::Gap {
                expected: 2,
                found: 3
            })
        );

        // Rewriting an event and recomputing its own hash still breaks the link after it.
        let mut rehashed = chain(5);
        rehashed[2].detail = Some("forged".into());
        rehashed[2].hash = rehashed[2].compute_hash();
        assert_eq!(verify(&rehashed), Err(ChainBreak::Unlinked { seq: 4 }));
    }
}
