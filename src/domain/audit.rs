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

/// `"hash":"` + 64 hex digits + `"}`: the end of a stored event, the part
/// replaced by `"}` (an empty hash) when hashing.
const HASH_TAIL: usize = 66;
const PREV_TAIL: &[u8] = b"\",\"hash\":\"";
/// What ends an event's fields but its hash: `,"hash":"`.
const HASH_KEY: &[u8] = b",\"hash\":\"";

/// `seq`, `prev_hash` and `hash` read in place from an event's stored bytes
/// `{"seq":N,…,"prev_hash":"HEX","hash":"HEX"}`; `None` if not in that shape.
fn fast_fields(bytes: &[u8]) -> Option<(u64, &[u8], &[u8])> {
    let rest = bytes.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let seq: u64 = std::str::from_utf8(rest.get(..digits)?)
        .ok()?
        .parse()
        .ok()?;
    let n = bytes.len();
    // …"prev_hash":"<64>","hash":"<64>"}
    let hash = bytes.get(n.checked_sub(66)?..n - 2)?;
    let before_hash = bytes.get(..n - 66)?;
    let before_prev = before_hash.strip_suffix(PREV_TAIL)?;
    let prev_hash = before_prev.get(before_prev.len().checked_sub(64)?..)?;
    let head = before_prev.get(..before_prev.len() - 64)?;
    if !head.ends_with(b",\"prev_hash\":\"") || !bytes.ends_with(b"\"}") {
        return None;
    }
    // Not checked for hex digits here: `hash` is compared with the digest
    // computed in hex and `prev_hash` with the previous (checked) hash, so
    // anything else fails those comparisons with the parser's verdicts.
    Some((seq, prev_hash, hash))
}

/// Finds `,"hash":"` (built once: most of a block's check is this search and SHA-256).
static HASH_KEY_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(HASH_KEY));

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
    /// Resuming from a checkpoint: events up to it (in its block) are skipped.
    skip_through: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            prev_seq: 0,
            prev_hash: GENESIS.to_string(),
            checked: 0,
            skip_through: 0,
        }
    }
}

impl ChainVerifier {
    /// Continues a chain from a verified point (a checkpoint).
    pub fn resume(seq: u64, hash: &str) -> ChainVerifier {
        ChainVerifier {
            prev_seq: seq,
            prev_hash: hash.to_string(),
            checked: 0,
            skip_through: seq,
        }
    }

    /// The last event checked: (seq, hash).
    pub fn head(&self) -> (u64, &str) {
        (self.prev_seq, &self.prev_hash)
    }

    /// Checks a stored audit block (a JSON array of events) at hash speed:
    /// each event's bytes are exactly the encoding its hash was computed
    /// from, but for the hash's own value, which is the last field. So the
    /// check hashes the stored bytes with that value blanked, reads `seq`
    /// and `prev_hash` in place, and decodes nothing.
    ///
    /// The events are found without a JSON parser: an event starts
    /// `{"seq":` and ends at the first `,"hash":"` (which no JSON string can
    /// hold: its `"` follows a `,`), its 64 hex digits and `"}`, followed by
    /// `,` or the block's closing `]`. Every byte of the block is either
    /// framing or hashed, so a wrong split cannot let an edit through; and
    /// any doubt (a nested `"hash"` key, a mismatch) sends the block through
    /// the JSON parser, which names the exact event.
    pub fn check_block(&mut self, block: &[u8]) -> Result<(), ChainBreak> {
        let saved = (self.prev_seq, self.prev_hash.clone(), self.checked);
        if self.check_block_framed(block).is_some() {
            return Ok(());
        }
        (self.prev_seq, self.prev_hash, self.checked) = saved;
        self.check_block_parsed(block)
    }

    /// The fast split; `None` when the block is not in the expected shape
    /// or any event does not check (the caller then parses it).
    fn check_block_framed(&mut self, block: &[u8]) -> Option<()> {
        let mut rest = block.strip_prefix(b"[")?;
        if rest == b"]" {
            return Some(());
        }
        loop {
            if !rest.starts_with(b"{\"seq\":") {
                return None;
            }
            let end = HASH_KEY_FINDER.find(rest)? + HASH_KEY.len() + 64 + 2;
            let event = rest.get(..end)?;
            let fields = fast_fields(event)?;
            self.check_fast(event, fields).ok()?;
            match rest.get(end)? {
                b',' => rest = &rest[end + 1..],
                b']' if end + 1 == rest.len() => return Some(()),
                _ => return None,
            }
        }
    }

    /// The block through the JSON parser: exact verdicts for any shape.
    fn check_block_parsed(&mut self, block: &[u8]) -> Result<(), ChainBreak> {
        let raw: Vec<&serde_json::value::RawValue> = match serde_json::from_slice(block) {
            Ok(raw) => raw,
            Err(_) => {
                return Err(ChainBreak::Altered {
                    seq: self.prev_seq + 1,
                })
            }
        };
        for event in raw {
            let bytes = event.get().as_bytes();
            match fast_fields(bytes) {
                Some(fields) => self.check_fast(bytes, fields)?,
                None => {
                    let decoded: AuditEvent =
                        serde_json::from_str(event.get()).map_err(|_| ChainBreak::Altered {
                            seq: self.prev_seq + 1,
                        })?;
                    if decoded.seq <= self.skip_through {
                        continue;
                    }
                    self.check(&decoded)?;
                }
            }
        }
        Ok(())
    }

    /// One event's stored bytes, with `seq`, `prev_hash` and `hash` read in place.
    fn check_fast(
        &mut self,
        bytes: &[u8],
        (seq, prev_hash, hash): (u64, &[u8], &[u8]),
    ) -> Result<(), ChainBreak> {
        // The checkpoint's own event must still carry the hash it recorded.
        if seq == self.skip_through && seq > 0 {
            if hash != self.prev_hash.as_bytes() {
                return Err(ChainBreak::Altered { seq });
            }
            return Ok(());
        }
        if seq < self.skip_through {
            return Ok(());
        }
        if seq != self.prev_seq + 1 {
            return Err(ChainBreak::Gap {
                expected: self.prev_seq + 1,
                found: seq,
            });
        }
        let mut sha = Sha256::new();
        sha.update(&bytes[..bytes.len() - HASH_TAIL]);
        sha.update(b"\"}");
        let digest = sha.finalize();
        let mut hex_digest = [0u8; 64];
        hex::encode_to_slice(digest, &mut hex_digest).map_err(|_| ChainBreak::Altered { seq })?;
        if hex_digest != hash {
            return Err(ChainBreak::Altered { seq });
        }
        if prev_hash != self.prev_hash.as_bytes() {
            return Err(ChainBreak::Unlinked { seq });
        }
        self.prev_seq = seq;
        self.prev_hash.clear();
        self.prev_hash
            .push_str(std::str::from_utf8(hash).unwrap_or_default());
        self.checked += 1;
        Ok(())
    }

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

    /// The chain stored as blocks of `per` events, as the store writes them.
    fn blocks(events: &[AuditEvent], per: usize) -> Vec<Vec<u8>> {
        events
            .chunks(per)
            .map(|c| serde_json::to_vec(c).unwrap())
            .collect()
    }

    fn verify_blocks(v: &mut ChainVerifier, blocks: &[Vec<u8>]) -> Result<(), ChainBreak> {
        blocks.iter().try_for_each(|b| v.check_block(b))
    }

    #[test]
    fn stored_blocks_verify_at_hash_speed_with_the_same_verdicts() {
        let mut events = chain(10);
        events[3].detail = Some("a \"quoted\" détail, \u{1b}[2J and all".into());
        events[3].changes = vec![Change {
            field: "end_date".into(),
            old: serde_json::json!("2027-01-01"),
            new: serde_json::json!({"a": [1, 2]}),
        }];
        // A nested `"hash"` key (a custom field of that name) trips the fast
        // split; that block goes through the parser and still verifies.
        events[7].changes = vec![Change {
            field: "fields".into(),
            old: Value::Null,
            new: serde_json::json!({"a": "x", "hash": "ab".repeat(32)}),
        }];
        let (prev_seq, prev_hash) = (events[2].seq, events[2].hash.clone());
        events[3].chain_after(prev_seq, &prev_hash);
        for i in 4..10 {
            let (seq, hash) = (events[i - 1].seq, events[i - 1].hash.clone());
            events[i].chain_after(seq, &hash);
        }
        // Every event as the store writes it takes the fast path.
        for e in &events {
            assert!(fast_fields(&serde_json::to_vec(e).unwrap()).is_some());
        }
        // Blocks without a nested "hash" key are split without the parser.
        let mut v = ChainVerifier::default();
        assert_eq!(v.check_block_framed(&blocks(&events, 4)[0]), Some(()));
        assert_eq!(v.check_block_framed(&blocks(&events, 4)[1]), None);
        let mut v = ChainVerifier::default();
        assert_eq!(verify_blocks(&mut v, &blocks(&events, 4)), Ok(()));
        assert_eq!(v.checked, 10);
        assert_eq!(v.head(), (10, events[9].hash.as_str()));
        // The nested key's block, altered after it: the parser names the event.
        let mut stored = blocks(&events, 4);
        let text = String::from_utf8(stored[1].clone()).unwrap();
        stored[1] = text
            .replacen("user.update.7", "user.update.Y", 1)
            .into_bytes();
        let mut v = ChainVerifier::default();
        assert_eq!(
            verify_blocks(&mut v, &stored),
            Err(ChainBreak::Altered { seq: 8 })
        );

        // One byte changed in a stored block: that event is named.
        let mut stored = blocks(&events, 4);
        let text = String::from_utf8(stored[1].clone()).unwrap();
        stored[1] = text
            .replacen("user.update.5", "user.update.X", 1)
            .into_bytes();
        let mut v = ChainVerifier::default();
        assert_eq!(
            verify_blocks(&mut v, &stored),
            Err(ChainBreak::Altered { seq: 6 })
        );

        // From a checkpoint: only what follows is checked, and the
        // checkpoint's own event must still carry the recorded hash.
        let mut v = ChainVerifier::resume(6, &events[5].hash);
        assert_eq!(verify_blocks(&mut v, &blocks(&events, 4)[1..]), Ok(()));
        assert_eq!(v.checked, 4);
        let mut v = ChainVerifier::resume(6, &events[4].hash);
        assert_eq!(
            verify_blocks(&mut v, &blocks(&events, 4)[1..]),
            Err(ChainBreak::Altered { seq: 6 })
        );
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
