//! Bulk import, all or nothing, in bounded memory.
//!
//! A file of a million rows cannot be one sled transaction (it would hold
//! every record and event in memory), so an import is written in three
//! phases, each durable before the next begins:
//!
//! 1. **Stage.** Rows are read from the CSV as a stream, `CHUNK` at a time.
//!    Each chunk is checked by the ordinary `create_in` inside a `Tx` that
//!    also sees what earlier chunks staged (an `Overlay`: their usernames,
//!    emails and groups in memory, their records read back on demand), and
//!    what it would write (accounts, groups, unchained audit events, outbox
//!    entries, meta) is written durably as one staged chunk `IMPORT_ID-CHUNK`
//!    (`Store::stage_put`: a file beside sled's, fsynced; in sled it would
//!    stay in memory, ~1.6 KB a row). Nothing staged is visible to anyone. A
//!    bad row stops the import and its staged chunks are removed.
//! 2. **Commit.** One small transaction writes the meta marker
//!    `import.commit = IMPORT_ID` together with the `user.import` audit
//!    event. This write is the commit point: before it the import never
//!    happened, after it the import will complete.
//! 3. **Apply.** Each staged chunk is written into the live trees in one
//!    transaction (its accounts, their `user.create` events chained onto the
//!    trail, outbox entries, meta) that also records it as applied
//!    (`import.applied = CHUNK`); the last one removes the marker. Staged
//!    files are deleted once applied.
//!
//! `recover` runs whenever the database is opened, before anything reads
//! the audit head: with a marker it applies the chunks after the last one
//! recorded as applied (so a SIGKILL during phase 3 finishes the import);
//! without one it deletes any staged chunks (a SIGKILL during phase 1 leaves
//! no trace). Each step is a single sled transaction, so recovery
//! interrupted in turn just resumes.
//!
//! A dry run stages exactly the same way (later chunks read sponsors staged
//! by earlier ones back from the stage) and then deletes its chunks instead
//! of committing them; nothing it staged is ever visible.
//!
//! The writer lock is held for the whole import, so the import's events form
//! one contiguous run of the audit chain and no other change can invalidate
//! what was checked while staging. Other writes wait for it.
//!
//! Speed (`cargo bench --bench store`, 100,000 rows): each event is encoded
//! once, at staging, and chained at apply by patching its seq and hashes into
//! the staged bytes; account records are stored as staged. Staging writes
//! each chunk on a second thread while the next is checked, and applying
//! reads the next chunk on a second thread while the current one commits.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::accounts::{create_in, prefix_row, AccountInput};
use super::{Actor, AuditHead, Error, Permission, Result, Services, Tx};
use crate::domain::{Account, AuditEvent, Group};
use crate::store::{Collection, Store, WriteBatch};

/// Rows checked and staged together (one staged value, one apply transaction).
const CHUNK: usize = 1000;
/// The meta key whose presence means "this import is committed".
const MARKER: &str = "import.commit";
/// The meta key naming the last chunk of the committed import applied.
const APPLIED: &str = "import.applied";

/// One CSV row: its line in the file, the username and the fields.
pub struct ImportRow {
    pub line: u64,
    pub username: String,
    pub input: AccountInput,
}

pub type ImportRows<'r> = Box<dyn Iterator<Item = Result<ImportRow>> + 'r>;

#[derive(Clone, Copy, Debug, Default)]
pub struct ImportOptions {
    /// Check every row and write nothing.
    pub dry_run: bool,
    /// Rows whose username already exists are skipped (a re-run finishes the job).
    pub skip_existing: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub imported: usize,
    pub skipped: usize,
}

/// What one chunk writes when it is applied. Accounts and events are kept
/// as the JSON they will be stored as: applying copies the records and
/// patches each event's seq and hashes in place (`store::chain_unchained`),
/// with no second encoding and no decoding of the events.
#[derive(Serialize, Deserialize)]
struct Stage {
    /// Each the account record's JSON.
    accounts: Vec<Box<RawValue>>,
    groups: Vec<(String, Option<Group>)>,
    /// In order, each an event's JSON not yet chained (seq 0, empty
    /// hashes; they are set when applied).
    events: Vec<Box<RawValue>>,
    /// (collection tree name, key, JSON value).
    records: Vec<(String, String, Option<String>)>,
    meta: Vec<(String, Option<String>)>,
}

/// A checked chunk on its way to the stage (encoded and written by the
/// staging thread).
struct Checked {
    /// In username order.
    accounts: Arc<Vec<Account>>,
    groups: Vec<(String, Option<Group>)>,
    events: Vec<AuditEvent>,
    records: Vec<(String, String, Option<String>)>,
    meta: Vec<(String, Option<String>)>,
}

impl Checked {
    /// The staged chunk's bytes.
    fn encode(self) -> Result<Vec<u8>> {
        let stage = Stage {
            accounts: self.accounts.iter().map(raw).collect::<Result<_>>()?,
            groups: self.groups,
            events: self.events.iter().map(raw).collect::<Result<_>>()?,
            records: self.records,
            meta: self.meta,
        };
        serde_json::to_vec(&stage).map_err(|e| Error::Failed(format!("encode staged chunk: {e}")))
    }
}

/// The chunks checked last, kept in memory: more than the staging thread
/// can have in hand (one being written, one waiting).
const RECENT: usize = 3;

/// What earlier chunks of the running import staged, as later chunks see it.
pub(crate) struct Overlay {
    store: Arc<dyn Store>,
    import_id: String,
    /// Username → the chunk that staged it.
    names: HashMap<String, u32>,
    /// Lower-cased email → username.
    emails: HashMap<String, String>,
    groups: HashSet<String>,
    /// The accounts of the chunk read last (sponsors cluster).
    cache: RefCell<Option<(u32, HashMap<String, Account>)>>,
    /// The last `RECENT` chunks checked, their accounts in username order
    /// (the newest may not be on disk yet).
    recent: Vec<(u32, Arc<Vec<Account>>)>,
}

impl Overlay {
    pub(crate) fn chunk_of(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied()
    }

    pub(crate) fn email_owner(&self, email_key: &str) -> Option<String> {
        self.emails.get(email_key).cloned()
    }

    pub(crate) fn has_group(&self, name: &str) -> bool {
        self.groups.contains(name)
    }

    /// A staged account, read back from its chunk.
    pub(crate) fn account(&self, name: &str) -> Result<Option<Account>> {
        let Some(chunk) = self.chunk_of(name) else {
            return Ok(None);
        };
        if let Some((_, accounts)) = self.recent.iter().find(|(c, _)| *c == chunk) {
            return Ok(accounts
                .binary_search_by(|a| a.username.as_str().cmp(name))
                .ok()
                .map(|i| accounts[i].clone()));
        }
        let mut cache = self.cache.borrow_mut();
        if cache.as_ref().is_none_or(|(c, _)| *c != chunk) {
            let stage = read_stage(self.store.as_ref(), &stage_key(&self.import_id, chunk))?;
            let accounts = stage
                .accounts
                .iter()
                .map(|raw| {
                    let a = decode_account(raw)?;
                    Ok((a.username.clone(), a))
                })
                .collect::<Result<_>>()?;
            *cache = Some((chunk, accounts));
        }
        Ok(cache
            .as_ref()
            .and_then(|(_, accounts)| accounts.get(name).cloned()))
    }
}

fn stage_key(import_id: &str, chunk: u32) -> String {
    format!("{import_id}-{chunk:08}")
}

/// The chunk number of a staged key of `import_id`, if it is one.
fn chunk_number(import_id: &str, key: &str) -> Option<u32> {
    key.strip_prefix(import_id)?.strip_prefix('-')?.parse().ok()
}

fn read_stage(store: &dyn Store, key: &str) -> Result<Stage> {
    let bytes = store
        .stage_get(key)?
        .ok_or_else(|| Error::Failed(format!("staged import chunk {key} is missing")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Failed(format!("staged import chunk {key}: {e}")))
}

fn decode_account(raw: &RawValue) -> Result<Account> {
    serde_json::from_str(raw.get())
        .map_err(|e| Error::Failed(format!("staged account record: {e}")))
}

fn raw<T: Serialize>(value: &T) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(value)
        .map_err(|e| Error::Failed(format!("encode staged record: {e}")))
}

fn collection_named(name: &str) -> Result<Collection> {
    Collection::ALL
        .into_iter()
        .find(|c| c.tree_name() == name)
        .ok_or_else(|| Error::Failed(format!("staged record of unknown collection {name}")))
}

fn text(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| Error::Failed(format!("staged value: {e}")))
}

/// Removes staged chunks (an import that failed, was never committed, or
/// has been applied).
fn discard(store: &dyn Store, keys: &[String]) -> Result<()> {
    keys.iter().try_for_each(|k| store.stage_remove(k))?;
    Ok(())
}

/// A staged chunk read back and decoded, ready to be chained and written.
struct Prepared {
    /// Each an event's JSON, not yet chained.
    events: Vec<Box<RawValue>>,
    accounts: Vec<Account>,
    accounts_encoded: Vec<(String, Vec<u8>)>,
    groups: Vec<(String, Option<Group>)>,
    records: Vec<(Collection, String, Option<Vec<u8>>)>,
    meta: Vec<(String, Option<Vec<u8>>)>,
}

/// Reads staged chunk `key` back; the records go to the store as staged,
/// decoded once for the indexes.
fn prepare(store: &dyn Store, key: &str) -> Result<Prepared> {
    let stage = read_stage(store, key)?;
    let mut accounts = Vec::with_capacity(stage.accounts.len());
    let mut accounts_encoded = Vec::with_capacity(stage.accounts.len());
    for record in stage.accounts {
        let account = decode_account(&record)?;
        let bytes = Box::<str>::from(record).into_string().into_bytes();
        accounts_encoded.push((account.username.clone(), bytes));
        accounts.push(account);
    }
    let records = stage
        .records
        .into_iter()
        .map(|(c, k, v)| Ok((collection_named(&c)?, k, v.map(String::into_bytes))))
        .collect::<Result<Vec<_>>>()?;
    let meta = stage
        .meta
        .into_iter()
        .map(|(k, v)| (k, v.map(String::into_bytes)))
        .collect();
    Ok(Prepared {
        events: stage.events,
        accounts,
        accounts_encoded,
        groups: stage.groups,
        records,
        meta,
    })
}

/// Writes staged chunk number `chunk` into the live trees, chained after
/// `head`, and records it as applied, in one transaction. `last` also
/// removes the commit marker. Returns the accounts written.
fn apply(
    store: &dyn Store,
    head: &mut AuditHead,
    key: &str,
    chunk: u32,
    last: bool,
) -> Result<Vec<Account>> {
    apply_prepared(store, head, prepare(store, key)?, chunk, last)
}

/// `apply` of a chunk already read back.
fn apply_prepared(
    store: &dyn Store,
    head: &mut AuditHead,
    prepared: Prepared,
    chunk: u32,
    last: bool,
) -> Result<Vec<Account>> {
    let (mut seq, mut hash) = (head.seq, head.hash.clone());
    let mut audit_encoded = Vec::with_capacity(prepared.events.len());
    for event in &prepared.events {
        let encoded = crate::store::chain_unchained(event.get().as_bytes(), seq, &hash)?;
        seq = encoded.seq;
        hash = encoded.hash.clone();
        audit_encoded.push(encoded);
    }
    let mut meta = prepared.meta;
    if last {
        meta.push((MARKER.to_string(), None));
        meta.push((APPLIED.to_string(), None));
    } else {
        meta.push((APPLIED.to_string(), Some(chunk.to_string().into_bytes())));
    }
    store.commit(&WriteBatch {
        accounts_encoded: prepared.accounts_encoded,
        groups: prepared.groups,
        audit_encoded,
        meta,
        records: prepared.records,
        ..Default::default()
    })?;
    head.seq = seq;
    head.hash = hash;
    Ok(prepared.accounts)
}

/// Finishes or discards an import interrupted by a crash. Runs when the
/// database is opened, before the audit head is read. Returns what it did.
pub(crate) fn recover(store: &dyn Store) -> Result<Option<String>> {
    let keys = store.stage_keys()?;
    let marker = store.meta(MARKER)?.map(text).transpose()?;
    let Some(import_id) = marker else {
        if keys.is_empty() {
            return Ok(None);
        }
        let n = keys.len();
        discard(store, &keys)?;
        return Ok(Some(format!(
            "discarded {n} staged chunk(s) of an import that was never committed"
        )));
    };
    let applied: Option<u32> = store
        .meta(APPLIED)?
        .map(text)
        .transpose()?
        .and_then(|t| t.parse().ok());
    let mut mine: Vec<(u32, String)> = keys
        .iter()
        .filter_map(|k| chunk_number(&import_id, k).map(|n| (n, k.clone())))
        .collect();
    mine.sort();
    let last = mine.last().map(|(n, _)| *n);
    let todo: Vec<&(u32, String)> = mine
        .iter()
        .filter(|(n, _)| applied.is_none_or(|a| *n > a))
        .collect();
    if todo.is_empty() {
        return Err(Error::Failed(format!(
            "import {import_id} was committed but its staged chunks are missing: it cannot be completed"
        )));
    }
    let mut head = match store.audit_last()? {
        Some(last) => AuditHead {
            seq: last.seq,
            hash: last.hash,
        },
        None => AuditHead {
            seq: 0,
            hash: crate::domain::audit::GENESIS.to_string(),
        },
    };
    let mut accounts = 0;
    for (n, key) in &todo {
        accounts += apply(store, &mut head, key, *n, Some(*n) == last)?.len();
    }
    discard(store, &keys)?;
    Ok(Some(format!(
        "completed committed import {import_id}: {accounts} account(s) in {} chunk(s)",
        todo.len()
    )))
}

impl Services {
    /// Whether `actor` may import at all: the SSH front door asks before it
    /// collects stdin, so a refused actor is refused (and audited by
    /// `import`) without uploading anything.
    pub fn may_import(&self, actor: &Actor) -> bool {
        super::authz::allowed(actor, Permission::CreateAccount, None)
    }

    /// Bulk import from a stream of rows: authorised first (a refusal is
    /// audited before any input is read), then every row checked, then all
    /// written or none (see the module notes). With `skip_existing`, rows
    /// naming an existing account are skipped, so a re-run completes a file.
    pub fn import<'r>(
        &self,
        actor: &Actor,
        options: ImportOptions,
        open: impl FnOnce() -> Result<ImportRows<'r>>,
    ) -> Result<ImportReport> {
        self.authorize(actor, Permission::CreateAccount, None)?;
        let mut rows = open()?;
        let mut head = self.lock_writer()?;
        let now = self.now();
        let import_id = format!("{:020}", now.timestamp_nanos_opt().unwrap_or_default());
        let mut overlay = Overlay {
            store: self.inner.store.clone(),
            import_id: import_id.clone(),
            names: HashMap::new(),
            emails: HashMap::new(),
            groups: HashSet::new(),
            cache: RefCell::new(None),
            recent: Vec::new(),
        };
        let mut report = ImportReport::default();
        let mut chunks: Vec<String> = Vec::new();
        let started = std::time::Instant::now();
        let mut outbox_next = None;
        let mut jobs_next = (None, None);
        // Checking runs here; encoding and writing each checked chunk (an
        // fsync) runs on a second thread, one chunk behind.
        let staged = std::thread::scope(|scope| -> Result<()> {
            let (sender, receiver) = std::sync::mpsc::sync_channel::<(String, Checked)>(1);
            let store = self.store();
            let writer = scope.spawn(move || -> Result<()> {
                for (key, checked) in receiver {
                    store.stage_put(&key, &checked.encode()?)?;
                }
                Ok(())
            });
            let checked = (|| -> Result<()> {
                loop {
                    let chunk: Vec<ImportRow> = rows.by_ref().take(CHUNK).collect::<Result<_>>()?;
                    if chunk.is_empty() {
                        return Ok(());
                    }
                    let number = chunks.len() as u32;
                    let checked = self.stage_chunk(
                        actor,
                        now,
                        &overlay,
                        &mut outbox_next,
                        &mut jobs_next,
                        chunk,
                        options,
                        &mut report,
                    )?;
                    if checked.accounts.is_empty() {
                        continue;
                    }
                    for account in checked.accounts.iter() {
                        overlay.names.insert(account.username.clone(), number);
                        overlay
                            .emails
                            .insert(account.email_key(), account.username.clone());
                    }
                    for (name, group) in &checked.groups {
                        if group.is_some() {
                            overlay.groups.insert(name.clone());
                        }
                    }
                    // Until the writer has it on disk, later chunks read it here.
                    overlay.recent.push((number, checked.accounts.clone()));
                    if overlay.recent.len() > RECENT {
                        overlay.recent.remove(0);
                    }
                    let key = stage_key(&import_id, number);
                    chunks.push(key.clone());
                    if sender.send((key, checked)).is_err() {
                        // The writer stopped; its error is returned below.
                        return Ok(());
                    }
                }
            })();
            drop(sender);
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(Error::Failed("the import staging thread failed".into())));
            checked.and(written)
        });
        if let Err(e) = staged {
            if let Err(cleanup) = discard(self.store(), &chunks) {
                tracing::warn!(error = %cleanup, "staged import chunks stay until the next start");
            }
            return Err(e);
        }
        if options.dry_run || report.imported + report.skipped == 0 {
            discard(self.store(), &chunks)?;
        }
        if report.imported + report.skipped == 0 {
            return Err(Error::Invalid("no rows to import".into()));
        }
        if options.dry_run {
            return Ok(report);
        }
        drop(overlay);
        tracing::info!(
            rows = report.imported,
            chunks = chunks.len(),
            seconds = started.elapsed().as_secs_f64(),
            "import staged"
        );

        // The commit point: the marker and the import's own event, together.
        let mut summary = AuditEvent {
            seq: 0,
            at: now,
            actor: actor.name.clone(),
            source: actor.source.to_string(),
            session: actor.session.clone(),
            action: "user.import".into(),
            target: None,
            changes: vec![],
            detail: Some(format!(
                "{} account(s) created, {} existing skipped (import {import_id})",
                report.imported, report.skipped
            )),
            prev_hash: String::new(),
            hash: String::new(),
        };
        summary.chain_after(head.seq, &head.hash);
        let marker =
            (!chunks.is_empty()).then(|| (MARKER.to_string(), Some(import_id.into_bytes())));
        self.store().commit(&WriteBatch {
            audit: vec![summary.clone()],
            meta: marker.into_iter().collect(),
            ..Default::default()
        })?;
        head.seq = summary.seq;
        head.hash = summary.hash;

        // A second thread reads and decodes the next chunk while this one
        // is written.
        std::thread::scope(|scope| -> Result<()> {
            let (sender, receiver) = std::sync::mpsc::sync_channel::<Result<Prepared>>(1);
            let store = self.store();
            let keys = &chunks;
            scope.spawn(move || {
                for key in keys {
                    let prepared = prepare(store, key);
                    let failed = prepared.is_err();
                    if sender.send(prepared).is_err() || failed {
                        return;
                    }
                }
            });
            for (i, key) in chunks.iter().enumerate() {
                let prepared = receiver
                    .recv()
                    .map_err(|_| Error::Failed("the import reading thread stopped".into()))??;
                let accounts = apply_prepared(
                    self.store(),
                    &mut head,
                    prepared,
                    i as u32,
                    i + 1 == chunks.len(),
                )?;
                self.store().stage_remove(key)?;
                self.indexes_follow(accounts.into_iter().map(|a| (None, Some(a))));
            }
            Ok(())
        })?;
        self.inner
            .generation
            .store(head.seq, std::sync::atomic::Ordering::Release);
        tracing::info!(
            rows = report.imported,
            seconds = started.elapsed().as_secs_f64(),
            "import applied"
        );
        Ok(report)
    }

    /// Checks one chunk of rows in a transaction that sees the store and
    /// the chunks before it; returns what applying it will write.
    #[allow(clippy::too_many_arguments)]
    fn stage_chunk(
        &self,
        actor: &Actor,
        now: chrono::DateTime<chrono::Utc>,
        overlay: &Overlay,
        outbox_next: &mut Option<u64>,
        jobs_next: &mut (Option<u64>, Option<u32>),
        rows: Vec<ImportRow>,
        options: ImportOptions,
        report: &mut ImportReport,
    ) -> Result<Checked> {
        let index_guard = self.read_indexes()?;
        let indexes = index_guard.as_ref();
        let mut tx = Tx::new(self, indexes, actor, now);
        tx.outbox_next = *outbox_next;
        tx.overlay = Some(overlay);
        for row in rows {
            // Only accounts that existed before this import are skipped: a
            // name twice in the file is still an error.
            if options.skip_existing
                && match indexes {
                    Some(indexes) => indexes.exists(&row.username),
                    None => self.store().account_exists(&row.username)?,
                }
                && overlay.chunk_of(&row.username).is_none()
                && !tx.accounts.contains_key(&row.username)
            {
                report.skipped += 1;
                continue;
            }
            create_in(&mut tx, &row.username, &row.input)
                .map_err(|e| prefix_row(e, format!("line {}", row.line), &row.username))?;
            report.imported += 1;
        }
        *outbox_next = tx.outbox_next;
        // Provisioning jobs for the new accounts, applied with the chunk.
        (tx.jobs_next, tx.uid_next) = *jobs_next;
        tx.queue_connector_jobs()?;
        *jobs_next = (tx.jobs_next, tx.uid_next);
        let mut accounts = Vec::with_capacity(tx.accounts.len());
        for (name, (old, new)) in std::mem::take(&mut tx.accounts) {
            match (old, new) {
                (None, Some(account)) => accounts.push(account),
                _ => {
                    return Err(Error::Failed(format!(
                        "an import only creates accounts, but it would change {name}"
                    )))
                }
            }
        }
        let mut records = std::mem::take(&mut tx.records);
        records.extend(super::index::persisted::ops(
            accounts.iter().map(|a| (None, Some(a))),
        ));
        let records = records
            .into_iter()
            .map(|(c, k, v)| Ok((c.tree_name().to_string(), k, v.map(text).transpose()?)))
            .collect::<Result<_>>()?;
        let meta = std::mem::take(&mut tx.meta)
            .into_iter()
            .map(|(k, v)| Ok((k, v.map(text).transpose()?)))
            .collect::<Result<_>>()?;
        Ok(Checked {
            accounts: Arc::new(accounts),
            groups: std::mem::take(&mut tx.groups).into_iter().collect(),
            events: std::mem::take(&mut tx.events),
            records,
            meta,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::config::{Config, EXAMPLE};
    use crate::domain::{Account, AuditEvent, Group, Kind};
    use crate::service::testkit::t0;
    use crate::service::FixedClock;
    use crate::store::{MemoryStore, StoreError};

    /// A store that dies at its n-th write (a commit or a staging call):
    /// that write and every later one fail, as if the process had been
    /// killed there; what `inner` holds is what a restart finds.
    struct DiesAt {
        inner: Arc<MemoryStore>,
        writes: AtomicUsize,
        die_at: usize,
    }

    impl DiesAt {
        fn write(&self) -> crate::store::Result<()> {
            let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= self.die_at {
                Err(StoreError::Io(format!("killed at write {n}")))
            } else {
                Ok(())
            }
        }
    }

    type R<T> = crate::store::Result<T>;

    impl Store for DiesAt {
        fn meta(&self, key: &str) -> R<Option<Vec<u8>>> {
            self.inner.meta(key)
        }
        fn account_exists(&self, username: &str) -> R<bool> {
            self.inner.account_exists(username)
        }
        fn scan_records(
            &self,
            collection: Collection,
            prefix: &str,
            visit: &mut dyn FnMut(&str, &[u8]) -> bool,
        ) -> R<()> {
            self.inner.scan_records(collection, prefix, visit)
        }
        fn account(&self, username: &str) -> R<Option<Account>> {
            self.inner.account(username)
        }
        fn scan_accounts(
            &self,
            visit: &mut dyn FnMut(String, std::result::Result<Account, String>),
        ) -> R<()> {
            self.inner.scan_accounts(visit)
        }
        fn scan_accounts_after(
            &self,
            after: Option<&str>,
            visit: &mut dyn FnMut(String, std::result::Result<Account, String>) -> bool,
        ) -> R<()> {
            self.inner.scan_accounts_after(after, visit)
        }
        fn groups(&self) -> R<Vec<Group>> {
            self.inner.groups()
        }
        fn audit_last(&self) -> R<Option<AuditEvent>> {
            self.inner.audit_last()
        }
        fn scan_audit(
            &self,
            newest_first: bool,
            visit: &mut dyn FnMut(AuditEvent) -> bool,
        ) -> R<()> {
            self.inner.scan_audit(newest_first, visit)
        }
        fn scan_audit_blocks(&self, from_seq: u64, visit: &mut dyn FnMut(&[u8]) -> bool) -> R<()> {
            self.inner.scan_audit_blocks(from_seq, visit)
        }
        fn commit(&self, batch: &WriteBatch) -> R<()> {
            self.write()?;
            self.inner.commit(batch)
        }
        fn size_on_disk(&self) -> u64 {
            self.inner.size_on_disk()
        }
        fn record(&self, collection: Collection, key: &str) -> R<Option<Vec<u8>>> {
            self.inner.record(collection, key)
        }
        fn records(&self, collection: Collection) -> R<Vec<(String, Vec<u8>)>> {
            self.inner.records(collection)
        }
        fn export(
            &self,
            visit: &mut dyn FnMut(&str, &[u8], &[u8]) -> std::io::Result<()>,
        ) -> R<()> {
            self.inner.export(visit)
        }
        fn stage_put(&self, key: &str, bytes: &[u8]) -> R<()> {
            self.write()?;
            self.inner.stage_put(key, bytes)
        }
        fn stage_get(&self, key: &str) -> R<Option<Vec<u8>>> {
            self.inner.stage_get(key)
        }
        fn stage_keys(&self) -> R<Vec<String>> {
            self.inner.stage_keys()
        }
        fn stage_remove(&self, key: &str) -> R<()> {
            self.write()?;
            self.inner.stage_remove(key)
        }
    }

    fn open(store: Arc<dyn Store>) -> Services {
        let dir = crate::service::testkit::test_dir();
        let config = Config::parse(EXAMPLE, "test", &dir).expect("config");
        Services::new(Arc::new(config), store, Arc::new(FixedClock::new(t0()))).expect("open")
    }

    /// 2,500 contractors sponsored by root, the last ones by the first: three chunks.
    fn rows() -> Vec<ImportRow> {
        contractors(2500, |i| {
            if i > 2400 {
                "c00000".into()
            } else {
                "root".into()
            }
        })
    }

    /// `total` contractors `c00000`…, each sponsored by `sponsor_of(i)`.
    fn contractors(total: u64, sponsor_of: impl Fn(u64) -> String) -> Vec<ImportRow> {
        (0..total)
            .map(|i| ImportRow {
                line: i + 2,
                username: format!("c{i:05}"),
                input: AccountInput {
                    display_name: Some(format!("C {i}")),
                    email: Some(format!("c{i:05}@acme.example")),
                    kind: Some(Kind::Contractor),
                    sponsor: Some(sponsor_of(i)),
                    end_date: Some(t0().date_naive() + chrono::Duration::days(30)),
                    ..Default::default()
                },
            })
            .collect()
    }

    fn creations(services: &Services) -> usize {
        let mut n = 0;
        services
            .store()
            .scan_audit(false, &mut |e| {
                n += usize::from(e.action == "user.create");
                true
            })
            .expect("scan");
        n
    }

    #[test]
    fn a_crash_at_any_write_of_an_import_leaves_every_row_or_none_after_a_restart() {
        let admin = Actor::local_operator();
        // A whole import writes 3 chunks, the marker, 3 applies and 3 removals.
        for die_at in 1..=11 {
            let inner = Arc::new(MemoryStore::new());
            open(inner.clone())
                .initialize(&admin, "root", AccountInput::default())
                .expect("initialise");
            let dying = open(Arc::new(DiesAt {
                inner: inner.clone(),
                writes: AtomicUsize::new(0),
                die_at,
            }));
            let outcome = dying.import(&admin, ImportOptions::default(), || {
                Ok(Box::new(rows().into_iter().map(Ok)))
            });
            assert_eq!(outcome.is_ok(), die_at == 11, "died at write {die_at}");

            let restarted = open(inner.clone());
            let report = restarted.check(&admin).expect("check");
            assert!(
                report.problems.is_empty(),
                "{die_at}: {:?}",
                report.problems
            );
            // The commit point is the 4th write (the marker).
            let expected = if die_at <= 4 { 1 } else { 2501 };
            assert_eq!(report.accounts, expected, "died at write {die_at}");
            assert_eq!(creations(&restarted), expected, "an event per account");
            assert!(
                inner.stage_keys().expect("keys").is_empty(),
                "no staged chunk left"
            );
            assert_eq!(inner.meta(MARKER).expect("meta"), None);
            let sponsored = restarted.store().account("c02499").expect("read");
            assert_eq!(
                sponsored.map(|a| a.sponsor),
                (expected > 1).then(|| Some("c00000".to_string()))
            );
        }
    }

    /// A sponsor staged by an earlier chunk is found whether that chunk is
    /// still in memory (possibly not yet written by the staging thread) or
    /// only on disk.
    #[test]
    fn later_chunks_see_sponsors_from_chunks_in_flight_and_on_disk() {
        let (services, _clock, admin) = crate::service::testkit::services();
        let chunk = CHUNK as u64;
        let total = (RECENT as u64 + 2) * chunk;
        let sponsor_of = |i: u64| -> String {
            if i >= total - 5 {
                // The first chunk: no longer among the recent ones.
                "c00000".into()
            } else if i >= chunk && i % chunk == 0 {
                // The last row of the chunk just before.
                format!("c{:05}", i - 1)
            } else {
                "root".into()
            }
        };
        let rows = contractors(total, sponsor_of);
        let report = services
            .import(&admin, ImportOptions::default(), || {
                Ok(Box::new(rows.into_iter().map(Ok)))
            })
            .expect("import");
        assert_eq!(report.imported as u64, total);
        for i in [chunk, 2 * chunk, total - 1] {
            let account = services.load(&format!("c{i:05}")).expect("load");
            assert_eq!(account.sponsor, Some(sponsor_of(i)), "c{i:05}");
        }
        assert_eq!(creations(&services), total as usize + 1);
        assert!(services.store().stage_keys().expect("keys").is_empty());
        let report = services.check(&admin).expect("check");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    #[test]
    fn skip_existing_finishes_a_file_and_a_name_twice_in_it_is_still_an_error() {
        let (services, _clock, admin) = crate::service::testkit::services();
        let first: Vec<ImportRow> = rows().into_iter().take(1200).collect();
        let report = services
            .import(&admin, ImportOptions::default(), || {
                Ok(Box::new(first.into_iter().map(Ok)))
            })
            .expect("first part");
        assert_eq!(report.imported, 1200);
        let again = ImportOptions {
            skip_existing: true,
            ..Default::default()
        };
        let report = services
            .import(&admin, again, || Ok(Box::new(rows().into_iter().map(Ok))))
            .expect("the rest");
        assert_eq!(
            report,
            ImportReport {
                imported: 1300,
                skipped: 1200
            }
        );
        // In a file of new names, one twice: the second is an error, not skipped.
        let (fresh, _clock, admin) = crate::service::testkit::services();
        let mut twice: Vec<ImportRow> = rows().into_iter().take(1500).collect();
        twice.push(ImportRow {
            line: 1502,
            ..rows().remove(1300)
        });
        let err = fresh
            .import(&admin, again, || Ok(Box::new(twice.into_iter().map(Ok))))
            .expect_err("a duplicate in the file");
        assert!(err.to_string().contains("line 1502 (c01300)"), "{err}");
        assert_eq!(
            fresh.check(&admin).expect("check").accounts,
            1,
            "nothing written"
        );
    }
}
