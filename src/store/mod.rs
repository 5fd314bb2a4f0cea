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
/// 1,000 accounts writes 16 audit keys, not 1,000.
pub(crate) fn audit_blocks(events: &[AuditEvent]) -> Result<Vec<([u8; 8], Vec<u8>)>> {
    events
        .chunks(AUDIT_BLOCK)
        .filter_map(|chunk| chunk.first().map(|first| (first.seq.to_be_bytes(), chunk)))
        .map(|(key, chunk)| Ok((key, encode(&chunk)?)))
        .collect()
}
