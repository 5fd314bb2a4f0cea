//! Persistence behind a small trait. The service computes a `WriteBatch`;
//! a store applies it atomically and durably, or not at all.
//!
//! Primary records are persisted (accounts, groups, audit blocks, meta), and
//! beside them the few secondary indexes a single-account command needs for
//! uniqueness (the `index` collection, written in the same transaction).
//! The rest (search, dates, groups) is derived in memory when first needed
//! (see `service::index`); a single writer guards uniqueness.

mod audit_segments;
pub mod backup;
mod memory;
mod sled_store;

pub use memory::MemoryStore;
pub use sled_store::SledStore;

use crate::domain::{Account, AuditEvent, Group};

/// The layout version of the persisted data.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database at {0} is in use by a running tenure server; use ssh (ssh -p PORT NAME@HOST <command>) or stop the server first")]
    InUse(String),
    #[error("storage error: {0}")]
    Io(String),
    #[error("corrupt record {key}: {why}")]
    Corrupt { key: String, why: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One atomic, durable change: records to put (`Some`) or remove (`None`),
/// audit events to append (already chained), meta values.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub accounts: Vec<(String, Option<Account>)>,
    pub groups: Vec<(String, Option<Group>)>,
    pub audit: Vec<AuditEvent>,
    pub meta: Vec<(String, Option<Vec<u8>>)>,
    /// Records of the smaller collections (requests, the notification outbox).
    pub records: Vec<(Collection, String, Option<Vec<u8>>)>,
    /// Account records already encoded (puts only; the bulk paths encode a
    /// record once), written after `accounts`.
    pub accounts_encoded: Vec<(String, Vec<u8>)>,
    /// Audit events already chained and encoded (`chain_encode`,
    /// `chain_unchained`), appended after `audit`.
    pub audit_encoded: Vec<EncodedEvent>,
}

/// An audit event chained onto the trail and encoded exactly as stored.
#[derive(Clone, Debug)]
pub struct EncodedEvent {
    pub seq: u64,
    pub hash: String,
    pub bytes: Vec<u8>,
}

/// The end of an event encoded with an empty hash (`AuditEvent::hash` is
/// its last field, `prev_hash` the one before).
const EMPTY_HASH_TAIL: &[u8] = b"\"hash\":\"\"}";

/// Fills the empty hash at the end of `bytes` (an event encoded with
/// `hash` empty) with the SHA-256 of those bytes: what
/// `AuditEvent::compute_hash` computes, without a second encoding.
fn seal(mut bytes: Vec<u8>, seq: u64) -> Option<EncodedEvent> {
    use sha2::Digest;
    if !bytes.ends_with(EMPTY_HASH_TAIL) {
        return None;
    }
    let hash = hex::encode(sha2::Sha256::digest(&bytes));
    bytes.truncate(bytes.len() - 2);
    bytes.extend_from_slice(hash.as_bytes());
    bytes.extend_from_slice(b"\"}");
    Some(EncodedEvent { seq, hash, bytes })
}

/// Chains `event` after (`prev_seq`, `prev_hash`) as `AuditEvent::chain_after`
/// does, and encodes it once: the bytes hashed are the bytes stored.
pub fn chain_encode(
    event: &mut AuditEvent,
    prev_seq: u64,
    prev_hash: &str,
) -> Result<EncodedEvent> {
    event.seq = prev_seq + 1;
    event.prev_hash = prev_hash.to_string();
    event.hash = String::new();
    let sealed = seal(encode(&*event)?, event.seq);
    let sealed = match sealed {
        Some(sealed) => sealed,
        // Not in the expected shape: hash and encode the slow way.
        None => {
            event.hash = event.compute_hash();
            EncodedEvent {
                seq: event.seq,
                hash: event.hash.clone(),
                bytes: encode(&*event)?,
            }
        }
    };
    event.hash = sealed.hash.clone();
    Ok(sealed)
}

/// Chains an event kept encoded and unchained (`seq` 0, `prev_hash` and
/// `hash` empty, as `Tx::event` makes it) after (`prev_seq`, `prev_hash`),
/// patching the three fields in place instead of decoding it.
pub fn chain_unchained(unchained: &[u8], prev_seq: u64, prev_hash: &str) -> Result<EncodedEvent> {
    const HEAD: &[u8] = b"{\"seq\":0,";
    const TAIL: &[u8] = b"\"prev_hash\":\"\",\"hash\":\"\"}";
    let seq = prev_seq + 1;
    let middle = unchained
        .strip_prefix(HEAD)
        .and_then(|rest| rest.strip_suffix(TAIL));
    let Some(middle) = middle else {
        // Another shape: decode and chain it as an event.
        let mut event: AuditEvent = decode("staged audit event", unchained)?;
        return chain_encode(&mut event, prev_seq, prev_hash);
    };
    let seq_text = seq.to_string();
    let mut bytes = Vec::with_capacity(unchained.len() + seq_text.len() + 2 * 64);
    bytes.extend_from_slice(b"{\"seq\":");
    bytes.extend_from_slice(seq_text.as_bytes());
    bytes.push(b',');
    bytes.extend_from_slice(middle);
    bytes.extend_from_slice(b"\"prev_hash\":\"");
    bytes.extend_from_slice(prev_hash.as_bytes());
    bytes.extend_from_slice(b"\",\"hash\":\"\"}");
    seal(bytes, seq).ok_or_else(|| StoreError::Io("audit event encoding: unexpected shape".into()))
}

/// Collections besides accounts, groups and audit: each a sled tree of JSON values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Collection {
    Requests,
    Outbox,
    /// Provisioning jobs waiting for a connector (see `service::connect`).
    Jobs,
    /// (connector, account) → what the target holds (see `service::connect`).
    Links,
    /// The uniqueness indexes kept on disk (email, key fingerprint, admins,
    /// sponsor → sponsored), so a single-account command needs no scan
    /// (see `service::index::persisted`).
    Index,
    /// Notices waiting for a recipient's digest (see `service::digest`).
    Digest,
    /// Certificates issued by the user CA and still valid (see `service::certs`).
    Certs,
    /// API tokens by name, their secrets hashed (see `service::tokens`).
    Tokens,
    /// What SCIM clients set that has no place on the account (userName,
    /// externalId, name parts, extra emails; see `service::scim`).
    Scim,
}

impl Collection {
    pub const ALL: [Collection; 9] = [
        Collection::Requests,
        Collection::Outbox,
        Collection::Jobs,
        Collection::Links,
        Collection::Index,
        Collection::Digest,
        Collection::Certs,
        Collection::Tokens,
        Collection::Scim,
    ];
    /// Where this collection is in `ALL` (declared in the same order).
    pub fn position(self) -> usize {
        self as usize
    }

    pub fn tree_name(self) -> &'static str {
        match self {
            Collection::Requests => "requests",
            Collection::Outbox => "outbox",
            Collection::Jobs => "jobs",
            Collection::Links => "links",
            Collection::Index => "index",
            Collection::Digest => "digest",
            Collection::Certs => "certs",
            Collection::Tokens => "tokens",
            Collection::Scim => "scim",
        }
    }
}

#[cfg(test)]
#[test]
fn every_collection_is_at_its_position_in_all() {
    for (i, c) in Collection::ALL.iter().enumerate() {
        assert_eq!(c.position(), i, "{c:?}");
    }
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.groups.is_empty()
            && self.audit.is_empty()
            && self.meta.is_empty()
            && self.records.is_empty()
            && self.accounts_encoded.is_empty()
            && self.audit_encoded.is_empty()
    }
}

pub trait Store: Send + Sync {
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    fn account(&self, username: &str) -> Result<Option<Account>>;
    /// Whether an account of that name is stored (nothing decoded).
    fn account_exists(&self, username: &str) -> Result<bool>;
    /// Every stored account, in username order; a record that does not decode
    /// is passed as `Err` with its key so `check` can name it.
    fn scan_accounts(
        &self,
        visit: &mut dyn FnMut(String, std::result::Result<Account, String>),
    ) -> Result<()>;
    /// Accounts in username order after `after` (from the first without
    /// it), until the visitor returns false.
    fn scan_accounts_after(
        &self,
        after: Option<&str>,
        visit: &mut dyn FnMut(String, std::result::Result<Account, String>) -> bool,
    ) -> Result<()>;
    fn groups(&self) -> Result<Vec<Group>>;
    /// The newest audit event, if any.
    fn audit_last(&self) -> Result<Option<AuditEvent>>;
    /// Audit events oldest first (or newest first when `newest_first`); the
    /// visitor returns false to stop.
    fn scan_audit(
        &self,
        newest_first: bool,
        visit: &mut dyn FnMut(AuditEvent) -> bool,
    ) -> Result<()>;
    /// The stored audit blocks (JSON arrays of events) in order, starting
    /// with the block that holds event `from_seq`; the visitor returns false
    /// to stop. Sealed and live blocks alike, one at a time, in bounded memory.
    fn scan_audit_blocks(&self, from_seq: u64, visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<()>;
    /// Applies the batch atomically; returns once it is on disk.
    fn commit(&self, batch: &WriteBatch) -> Result<()>;
    /// Approximate size on disk in bytes (reports).
    fn size_on_disk(&self) -> u64;
    fn record(&self, collection: Collection, key: &str) -> Result<Option<Vec<u8>>>;
    /// Every record of a collection, in key order.
    fn records(&self, collection: Collection) -> Result<Vec<(String, Vec<u8>)>>;
    /// The records of a collection whose keys start with `prefix`, in key
    /// order, until the visitor returns false.
    fn scan_records(
        &self,
        collection: Collection,
        prefix: &str,
        visit: &mut dyn FnMut(&str, &[u8]) -> bool,
    ) -> Result<()>;
    /// Every record of every tree, tree by tree in name order, for a backup.
    /// The caller keeps writers out while it runs.
    fn export(
        &self,
        visit: &mut dyn FnMut(&str, &[u8], &[u8]) -> std::io::Result<()>,
    ) -> Result<()>;

    /// Bulk-import staging (see `service::import`): large write-once chunks
    /// kept outside the transactional trees (sled would hold every staged
    /// byte in memory). `stage_put` returns once the chunk is durable.
    /// Keys are ASCII digits and `-`.
    fn stage_put(&self, key: &str, bytes: &[u8]) -> Result<()>;
    fn stage_get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Every staged key, in order.
    fn stage_keys(&self) -> Result<Vec<String>>;
    fn stage_remove(&self, key: &str) -> Result<()>;
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Io(format!("encode: {e}")))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        why: e.to_string(),
    })
}

/// Most events in one audit block: large enough that a bulk change writes few
/// keys, small enough that sled does not copy huge values around.
pub(crate) const AUDIT_BLOCK: usize = 64;

/// Audit events are stored in blocks of up to `AUDIT_BLOCK` consecutive
/// events, keyed by the first event's sequence number, so a bulk change of
/// 1,000 accounts writes 16 audit keys, not 1,000. A block is the JSON array
/// of its events: `batch.audit` (encoded here), then `batch.audit_encoded`.
pub(crate) fn audit_blocks(batch: &WriteBatch) -> Result<Vec<([u8; 8], Vec<u8>)>> {
    let encoded: Vec<(u64, Vec<u8>)> = batch
        .audit
        .iter()
        .map(|event| Ok((event.seq, encode(event)?)))
        .collect::<Result<_>>()?;
    let events: Vec<(u64, &[u8])> = encoded
        .iter()
        .map(|(seq, bytes)| (*seq, bytes.as_slice()))
        .chain(
            batch
                .audit_encoded
                .iter()
                .map(|e| (e.seq, e.bytes.as_slice())),
        )
        .collect();
    Ok(events
        .chunks(AUDIT_BLOCK)
        .filter_map(|chunk| {
            let first = chunk.first()?.0;
            let len = chunk.iter().map(|(_, b)| b.len() + 1).sum::<usize>() + 1;
            let mut block = Vec::with_capacity(len);
            block.push(b'[');
            for (i, (_, bytes)) in chunk.iter().enumerate() {
                if i > 0 {
                    block.push(b',');
                }
                block.extend_from_slice(bytes);
            }
            block.push(b']');
            Some((first.to_be_bytes(), block))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::Change;

    fn event(i: u64) -> AuditEvent {
        AuditEvent {
            seq: 0,
            at: chrono::DateTime::from_timestamp(1_800_000_000 + i as i64, 0).unwrap(),
            actor: "admin".into(),
            source: "ssh:127.0.0.1:4000".into(),
            session: (i % 2 == 0).then(|| format!("s{i}")),
            action: "user.create".into(),
            target: Some(format!("u\"{i}\\é")),
            changes: vec![Change {
                field: "account".into(),
                old: serde_json::Value::Null,
                new: serde_json::json!({"username": format!("u{i}"), "hash": "\"}"}),
            }],
            detail: (i % 3 == 0).then(|| "a \"quoted\" note, \"hash\":\"\"}".to_string()),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// Both fast paths give exactly the bytes and hashes `chain_after` and
    /// serde give, so `audit verify` and the stored blocks are unchanged.
    #[test]
    fn encoded_chaining_matches_chain_after_byte_for_byte() {
        let (mut seq, mut hash) = (41u64, crate::domain::audit::GENESIS.to_string());
        let mut slow_events = Vec::new();
        let mut fast = Vec::new();
        let mut patched = Vec::new();
        let (mut pseq, mut phash) = (seq, hash.clone());
        for i in 0..150 {
            let mut slow = event(i);
            slow.chain_after(seq, &hash);
            let mut quick = event(i);
            let encoded = chain_encode(&mut quick, seq, &hash).unwrap();
            assert_eq!(quick, slow);
            assert_eq!(encoded.bytes, serde_json::to_vec(&slow).unwrap());
            assert_eq!(
                (encoded.seq, encoded.hash.as_str()),
                (slow.seq, slow.hash.as_str())
            );
            let unchained = serde_json::to_vec(&event(i)).unwrap();
            let from_stage = chain_unchained(&unchained, pseq, &phash).unwrap();
            assert_eq!(from_stage.bytes, encoded.bytes);
            (seq, hash) = (slow.seq, slow.hash.clone());
            (pseq, phash) = (from_stage.seq, from_stage.hash.clone());
            slow_events.push(slow);
            fast.push(encoded);
            patched.push(from_stage);
        }
        let old_blocks: Vec<_> = slow_events
            .chunks(AUDIT_BLOCK)
            .map(|c| (c[0].seq.to_be_bytes(), serde_json::to_vec(c).unwrap()))
            .collect();
        let mixed = WriteBatch {
            audit: slow_events[..10].to_vec(),
            audit_encoded: fast[10..].to_vec(),
            ..Default::default()
        };
        assert_eq!(audit_blocks(&mixed).unwrap(), old_blocks);
        let staged = WriteBatch {
            audit_encoded: patched,
            ..Default::default()
        };
        assert_eq!(audit_blocks(&staged).unwrap(), old_blocks);
    }
}
