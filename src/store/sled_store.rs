//! The sled implementation: trees `accounts`, `groups`, `audit`, `meta` and one
//! per `Collection`; staged import chunks are files in `import_stage/` beside sled's own,
//! and the sealed older part of the audit trail is in `audit_segments/`
//! (see `audit_segments`).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};

use super::audit_segments::{SegmentInfo, SegmentReader, Segments, META_PREFIX};
use super::{audit_blocks, decode, encode, Collection, Result, Store, StoreError, WriteBatch};
use crate::domain::{Account, AuditEvent, Group};

pub struct SledStore {
    db: sled::Db,
    /// Where staged import chunks live (`DIR/import_stage`).
    stage_dir: std::path::PathBuf,
    accounts: Tree,
    groups: Tree,
    audit: Tree,
    meta: Tree,
    /// One tree per `Collection`, in the order of `Collection::ALL`.
    collections: Vec<Tree>,
    segments: Arc<Segments>,
    sealer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Ok(mut w) = self.segments.wake.lock() {
            w.1 = true;
            self.segments.bell.notify_all();
        }
        if let Some(sealer) = self.sealer.take() {
            let _ = sealer.join();
        }
    }
}

/// A sled transaction's outcome as the store's: the error it aborted with,
/// or sled's own failure.
fn committed(result: std::result::Result<(), TransactionError<StoreError>>) -> Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(io(e)),
    }
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the database in `dir`. A second process gets
    /// `StoreError::InUse` instead of sled's raw lock error.
    pub fn open(dir: &Path) -> Result<Self> {
        SledStore::open_sealing(dir, Segments::new(dir))
    }

    fn open_sealing(dir: &Path, segments: Segments) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            // sled holds far more than this at a million accounts (its page
            // table); a small cache keeps the server's memory down, and the
            // OS page cache serves what falls out of it.
            .cache_capacity(16 * 1024 * 1024)
            .open()
            .map_err(|e| match &e {
                sled::Error::Io(io_err)
                    if io_err.kind() == std::io::ErrorKind::WouldBlock
                        || io_err.to_string().contains("could not acquire lock") =>
                {
                    StoreError::InUse(dir.display().to_string())
                }
                _ => StoreError::Io(format!("cannot open database at {}: {e}", dir.display())),
            })?;
        let mut store = SledStore {
            stage_dir: dir.join("import_stage"),
            accounts: db.open_tree("accounts").map_err(io)?,
            groups: db.open_tree("groups").map_err(io)?,
            audit: db.open_tree("audit").map_err(io)?,
            meta: db.open_tree("meta").map_err(io)?,
            collections: Collection::ALL
                .iter()
                .map(|c| db.open_tree(c.tree_name()).map_err(io))
                .collect::<Result<_>>()?,
            db,
            segments: Arc::new(segments),
            sealer: None,
        };
        let sealer = store.sealer();
        sealer.segments.remove_orphans(&sealer.indexed()?)?;
        sealer.note_first_live()?;
        // An existing database's trail is sealed here, before anything reads it.
        sealer.seal_all();
        store.sealer = Some(
            std::thread::Builder::new()
                .name("audit-sealer".into())
                .spawn(move || sealer.run())
                .map_err(io)?,
        );
        Ok(store)
    }

    fn sealer(&self) -> Sealer {
        Sealer {
            db: self.db.clone(),
            audit: self.audit.clone(),
            meta: self.meta.clone(),
            segments: self.segments.clone(),
        }
    }

    /// The sealed segments in order (from the index in meta).
    fn segment_list(&self) -> Result<Vec<SegmentInfo>> {
        segment_list(&self.meta)
    }

    /// Every stored block, oldest first, from the block holding `from_seq`:
    /// the sealed segments, then the live tree. The caller holds the gate.
    fn each_block(
        &self,
        from_seq: u64,
        visit: &mut dyn FnMut(u64, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let mut buf = Vec::new();
        for info in self.segment_list()? {
            if info.last < from_seq {
                continue;
            }
            let mut reader = SegmentReader::open(&self.segments, &info)?;
            for i in reader.position_of(from_seq)..reader.index.len() {
                reader.block(i, &mut buf)?;
                if !visit(reader.index[i].0, &buf)? {
                    return Ok(());
                }
            }
        }
        let start = match self.audit.range(..=from_seq.to_be_bytes()).next_back() {
            Some(item) => item.map_err(io)?.0.to_vec(),
            None => Vec::new(),
        };
        for item in self.audit.range(start..) {
            let (key, value) = item.map_err(io)?;
            if !visit(block_key(&key), &value)? {
                break;
            }
        }
        Ok(())
    }
}

fn block_key(key: &[u8]) -> u64 {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

fn segment_list(meta: &Tree) -> Result<Vec<SegmentInfo>> {
    meta.scan_prefix(META_PREFIX)
        .map(|item| {
            let (key, value) = item.map_err(io)?;
            decode(&String::from_utf8_lossy(&key), &value)
        })
        .collect()
}

/// Moves the oldest audit blocks out of sled into sealed segments, in the
/// background once the live tail is long enough (see `audit_segments`).
struct Sealer {
    db: sled::Db,
    audit: Tree,
    meta: Tree,
    segments: Arc<Segments>,
}

impl Sealer {
    fn indexed(&self) -> Result<Vec<SegmentInfo>> {
        segment_list(&self.meta)
    }

    fn note_first_live(&self) -> Result<()> {
        let first = self
            .audit
            .first()
            .map_err(io)?
            .map_or(0, |(k, _)| block_key(&k));
        self.segments.first_live.store(first, Ordering::Relaxed);
        Ok(())
    }

    fn stopping(&self) -> bool {
        self.segments.wake.lock().map_or(true, |w| w.1)
    }

    fn run(self) {
        loop {
            {
                let Ok(mut w) = self.segments.wake.lock() else {
                    return;
                };
                while !w.0 && !w.1 {
                    w = match self.segments.bell.wait(w) {
                        Ok(w) => w,
                        Err(_) => return,
                    };
                }
                if w.1 {
                    return;
                }
                w.0 = false;
            }
            self.seal_all();
        }
    }

    /// Seals segments while the live tail is long enough. A failure is not
    /// fatal: the trail stays whole in sled and is sealed on a later round.
    fn seal_all(&self) {
        loop {
            match self.seal_once() {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    crate::log_limited!(warn, "audit-seal", "could not seal audit events: {e}");
                    break;
                }
            }
        }
    }

    /// Seals one segment if the live tail is long enough; true if it did.
    fn seal_once(&self) -> Result<bool> {
        let (Some((first, _)), Some((last, _))) = (
            self.audit.first().map_err(io)?,
            self.audit.last().map_err(io)?,
        ) else {
            return Ok(false);
        };
        let (first, last) = (block_key(&first), block_key(&last));
        let every = self.segments.every;
        if last.saturating_sub(first) < every + self.segments.keep {
            return Ok(false);
        }
        // Whole blocks from the front, up to `every` events; the segment
        // ends just before the first block left live.
        let upto = first + every;
        let mut keys: Vec<u64> = Vec::new();
        let mut next = None;
        for item in self.audit.iter().keys() {
            let key = block_key(&item.map_err(io)?);
            if key >= upto && !keys.is_empty() {
                next = Some(key);
                break;
            }
            keys.push(key);
        }
        let Some(next) = next else {
            return Ok(false);
        };
        let end = next - 1;
        let mut blocks = self
            .audit
            .range(first.to_be_bytes()..next.to_be_bytes())
            .map(|item| item.map(|(k, v)| (block_key(&k), v)).map_err(io));
        let info = self.segments.write(first, end, &mut blocks)?;
        if info.blocks != keys.len() as u64 {
            let _ = std::fs::remove_file(self.segments.path(&info));
            return Err(io("the audit tree changed while it was being sealed"));
        }
        let index = serde_json::to_vec(&info).map_err(io)?;
        // Readers walk segments then the tree under the gate: swap while none is.
        let _gate = loop {
            if self.stopping() {
                // The file is removed as an orphan on the next open.
                return Ok(false);
            }
            match self.segments.gate.try_write() {
                Ok(gate) => break gate,
                Err(std::sync::TryLockError::WouldBlock) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(std::sync::TryLockError::Poisoned(_)) => {
                    return Err(io("the audit segment lock is poisoned"))
                }
            }
        };
        let result = (&self.audit, &self.meta).transaction(|(audit, meta)| {
            for key in &keys {
                audit.remove(&key.to_be_bytes())?;
            }
            meta.insert(SegmentInfo::meta_key(first).as_str(), index.as_slice())?;
            Ok::<(), ConflictableTransactionError<StoreError>>(())
        });
        committed(result)?;
        self.db.flush().map_err(io)?;
        self.segments.first_live.store(next, Ordering::Relaxed);
        Ok(true)
    }
}

impl SledStore {
    fn stage_path(&self, key: &str) -> Result<std::path::PathBuf> {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return Err(StoreError::Io(format!("invalid staging key {key:?}")));
        }
        Ok(self.stage_dir.join(format!("{key}.chunk")))
    }

    /// Builds a database in `dir` (which must not exist) from a backup. The
    /// checksum is checked at the end: on any error the directory is removed
    /// again, so nothing half-restored is ever left where a server could open it.
    pub fn restore(
        dir: &Path,
        reader: &mut super::backup::Reader<impl std::io::Read>,
    ) -> Result<u64> {
        let built = (|| -> Result<u64> {
            let db = sled::Config::new().path(dir).open().map_err(io)?;
            let mut count = 0u64;
            let mut tree_name = String::new();
            let mut tree: Option<Tree> = None;
            while let Some((name, key, value)) = reader.next_record().map_err(io)? {
                if tree.is_none() || name != tree_name {
                    tree = Some(db.open_tree(&name).map_err(io)?);
                    tree_name = name;
                }
                if let Some(t) = &tree {
                    t.insert(key, value).map_err(io)?;
                }
                count += 1;
            }
            db.flush().map_err(io)?;
            Ok(count)
        })();
        if built.is_err() {
            let _ = std::fs::remove_dir_all(dir);
        }
        built
    }

    fn tree(&self, collection: Collection) -> &Tree {
        &self.collections[collection.position()]
    }
}

fn decode_block(key: &[u8], value: &[u8]) -> Result<Vec<AuditEvent>> {
    let seq = <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .unwrap_or(0);
    decode(&format!("audit block #{seq}"), value)
}

impl Store for SledStore {
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.meta.get(key).map_err(io)?.map(|v| v.to_vec()))
    }

    fn account(&self, username: &str) -> Result<Option<Account>> {
        match self.accounts.get(username).map_err(io)? {
            Some(bytes) => Ok(Some(decode(username, &bytes)?)),
            None => Ok(None),
        }
    }

    fn account_exists(&self, username: &str) -> Result<bool> {
        self.accounts.contains_key(username).map_err(io)
    }

    fn scan_accounts(
        &self,
        visit: &mut dyn FnMut(String, std::result::Result<Account, String>),
    ) -> Result<()> {
        for item in self.accounts.iter() {
            let (key, value) = item.map_err(io)?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let account = serde_json::from_slice(&value).map_err(|e| e.to_string());
            visit(key, account);
        }
        Ok(())
    }

    fn scan_accounts_after(
        &self,
        after: Option<&str>,
        visit: &mut dyn FnMut(String, std::result::Result<Account, String>) -> bool,
    ) -> Result<()> {
        use std::ops::Bound;
        let from = match after {
            Some(a) => Bound::Excluded(a.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        for item in self.accounts.range::<Vec<u8>, _>((from, Bound::Unbounded)) {
            let (key, value) = item.map_err(io)?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let account = serde_json::from_slice(&value).map_err(|e| e.to_string());
            if !visit(key, account) {
                break;
            }
        }
        Ok(())
    }

    fn groups(&self) -> Result<Vec<Group>> {
        self.groups
            .iter()
            .map(|item| {
                let (key, value) = item.map_err(io)?;
                decode(&String::from_utf8_lossy(&key), &value)
            })
            .collect()
    }

    fn audit_last(&self) -> Result<Option<AuditEvent>> {
        let _gate = self.segments.read()?;
        if let Some((key, value)) = self.audit.last().map_err(io)? {
            return Ok(decode_block(&key, &value)?.pop());
        }
        match self.segment_list()?.pop() {
            Some(info) => {
                let mut reader = SegmentReader::open(&self.segments, &info)?;
                let mut buf = Vec::new();
                let last = reader.index.len().saturating_sub(1);
                reader.block(last, &mut buf)?;
                Ok(decode_block(&reader.index[last].0.to_be_bytes(), &buf)?.pop())
            }
            None => Ok(None),
        }
    }

    fn scan_audit(
        &self,
        newest_first: bool,
        visit: &mut dyn FnMut(AuditEvent) -> bool,
    ) -> Result<()> {
        let _gate = self.segments.read()?;
        let mut each = |key: u64, block: &[u8]| -> Result<bool> {
            let mut events = decode_block(&key.to_be_bytes(), block)?;
            if newest_first {
                events.reverse();
            }
            Ok(events.into_iter().all(&mut *visit))
        };
        if !newest_first {
            return self.each_block(0, &mut each);
        }
        // Newest first: the live tree backwards, then each segment backwards.
        for item in self.audit.iter().rev() {
            let (key, value) = item.map_err(io)?;
            if !each(block_key(&key), &value)? {
                return Ok(());
            }
        }
        let mut buf = Vec::new();
        for info in self.segment_list()?.iter().rev() {
            let mut reader = SegmentReader::open(&self.segments, info)?;
            for i in (0..reader.index.len()).rev() {
                reader.block(i, &mut buf)?;
                if !each(reader.index[i].0, &buf)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn scan_audit_blocks(&self, from_seq: u64, visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        let _gate = self.segments.read()?;
        self.each_block(from_seq, &mut |_, block| Ok(visit(block)))
    }

    fn commit(&self, batch: &WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // Encode outside the transaction: sled may run the closure more than once.
        let accounts: Vec<(&str, Option<Vec<u8>>)> = batch
            .accounts
            .iter()
            .map(|(k, v)| Ok((k.as_str(), v.as_ref().map(encode).transpose()?)))
            .collect::<Result<_>>()?;
        let groups: Vec<(&str, Option<Vec<u8>>)> = batch
            .groups
            .iter()
            .map(|(k, v)| Ok((k.as_str(), v.as_ref().map(encode).transpose()?)))
            .collect::<Result<_>>()?;
        let audit = audit_blocks(batch)?;
        // The four primary trees, then one per collection (`Collection::ALL` order).
        let mut trees: Vec<&Tree> = vec![&self.accounts, &self.groups, &self.audit, &self.meta];
        trees.extend(self.collections.iter());
        let result = trees.as_slice().transaction(|views| {
            let [accounts_t, groups_t, audit_t, meta_t, collections @ ..] = views.as_slice() else {
                unreachable!("four primary trees and the collections")
            };
            for (collection, key, value) in &batch.records {
                let tree = &collections[collection.position()];
                match value {
                    Some(bytes) => tree.insert(key.as_str(), bytes.as_slice())?,
                    None => tree.remove(key.as_str())?,
                };
            }
            for (key, value) in &accounts {
                match value {
                    Some(bytes) => accounts_t.insert(*key, bytes.as_slice())?,
                    None => accounts_t.remove(*key)?,
                };
            }
            for (key, bytes) in &batch.accounts_encoded {
                accounts_t.insert(key.as_str(), bytes.as_slice())?;
            }
            for (key, value) in &groups {
                match value {
                    Some(bytes) => groups_t.insert(*key, bytes.as_slice())?,
                    None => groups_t.remove(*key)?,
                };
            }
            for (key, bytes) in &audit {
                audit_t.insert(key, bytes.as_slice())?;
            }
            for (key, value) in &batch.meta {
                match value {
                    Some(bytes) => meta_t.insert(key.as_str(), bytes.as_slice())?,
                    None => meta_t.remove(key.as_str())?,
                };
            }
            Ok::<(), ConflictableTransactionError<StoreError>>(())
        });
        committed(result)?;
        self.db.flush().map_err(io)?;
        if let Some(last) = batch.audit.last() {
            if self.segments.due(last.seq) {
                self.segments.ring();
            }
        }
        Ok(())
    }

    fn record(&self, collection: Collection, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .tree(collection)
            .get(key)
            .map_err(io)?
            .map(|v| v.to_vec()))
    }

    fn records(&self, collection: Collection) -> Result<Vec<(String, Vec<u8>)>> {
        self.tree(collection)
            .iter()
            .map(|item| {
                let (k, v) = item.map_err(io)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    fn scan_records(
        &self,
        collection: Collection,
        prefix: &str,
        visit: &mut dyn FnMut(&str, &[u8]) -> bool,
    ) -> Result<()> {
        for item in self.tree(collection).scan_prefix(prefix) {
            let (k, v) = item.map_err(io)?;
            if !visit(&String::from_utf8_lossy(&k), &v) {
                break;
            }
        }
        Ok(())
    }

    fn stage_put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        let path = self.stage_path(key)?;
        std::fs::create_dir_all(&self.stage_dir).map_err(io)?;
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io)?;
        // The rename is durable once the directory is.
        std::fs::File::open(&self.stage_dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }

    fn stage_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match std::fs::read(self.stage_path(key)?) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    fn stage_keys(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.stage_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io(e)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let name = entry.map_err(io)?.file_name();
            let name = name.to_string_lossy();
            // A `.tmp` was never renamed into place: it is garbage, listed
            // under its own name so it gets removed too.
            keys.push(name.strip_suffix(".chunk").unwrap_or(&name).to_string());
        }
        keys.sort();
        Ok(keys)
    }

    fn stage_remove(&self, key: &str) -> Result<()> {
        let path = match key.strip_suffix(".tmp") {
            Some(_) => self.stage_dir.join(key),
            None => self.stage_path(key)?,
        };
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    fn size_on_disk(&self) -> u64 {
        let sealed: u64 = self
            .segment_list()
            .map_or(0, |list| list.iter().map(|s| s.bytes).sum());
        self.db.size_on_disk().unwrap_or(0) + sealed
    }

    fn export(
        &self,
        visit: &mut dyn FnMut(&str, &[u8], &[u8]) -> std::io::Result<()>,
    ) -> Result<()> {
        let mut names: Vec<String> = self
            .db
            .tree_names()
            .into_iter()
            .map(|n| String::from_utf8_lossy(&n).into_owned())
            // sled's own default tree holds nothing of ours.
            .filter(|n| n != "__sled__default")
            .collect();
        names.sort();
        // The backup holds the whole trail as `audit` records, sealed or
        // not, and no segment index: a restored database seals on open.
        let _gate = self.segments.read()?;
        for name in names {
            if name == "audit" {
                for info in self.segment_list()? {
                    let mut reader = SegmentReader::open(&self.segments, &info)?;
                    let mut buf = Vec::new();
                    for i in 0..reader.index.len() {
                        reader.block(i, &mut buf)?;
                        visit(&name, &reader.index[i].0.to_be_bytes(), &buf).map_err(io)?;
                    }
                }
            }
            let tree = self.db.open_tree(&name).map_err(io)?;
            for item in tree.iter() {
                let (key, value) = item.map_err(io)?;
                if name == "meta" && key.starts_with(META_PREFIX.as_bytes()) {
                    continue;
                }
                visit(&name, &key, &value).map_err(io)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::{ChainVerifier, GENESIS};

    fn event(seq: u64, prev: &str) -> AuditEvent {
        let mut e = AuditEvent {
            seq: 0,
            at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            actor: "admin".into(),
            source: "cli".into(),
            session: None,
            action: "user.update".into(),
            target: Some(format!("u{seq}")),
            changes: vec![],
            detail: Some("x".repeat(200)),
            prev_hash: String::new(),
            hash: String::new(),
        };
        e.chain_after(seq - 1, prev);
        e
    }

    /// Commits of one to three events race the background sealer while
    /// readers walk the trail: every walk sees one whole chain, no event
    /// twice or missing, and ends up mostly in sealed segments.
    #[test]
    fn readers_see_one_whole_chain_while_the_sealer_moves_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let mut segments = Segments::new(dir.path());
        segments.every = 16;
        segments.keep = 4;
        let store = Arc::new(SledStore::open_sealing(dir.path(), segments).unwrap());
        let writer = {
            let store = store.clone();
            std::thread::spawn(move || {
                let (mut seq, mut hash) = (0u64, GENESIS.to_string());
                for i in 0..400u64 {
                    let mut batch = WriteBatch::default();
                    for _ in 0..=(i % 3) {
                        let e = event(seq + 1, &hash);
                        (seq, hash) = (e.seq, e.hash.clone());
                        batch.audit.push(e);
                    }
                    store.commit(&batch).unwrap();
                }
                seq
            })
        };
        let mut walks = 0;
        while !writer.is_finished() || walks < 3 {
            let mut v = ChainVerifier::default();
            let mut broken = None;
            store
                .scan_audit_blocks(0, &mut |block| match v.check_block(block) {
                    Ok(()) => true,
                    Err(b) => {
                        broken = Some(b);
                        false
                    }
                })
                .unwrap();
            assert_eq!(broken, None, "after {} events", v.checked);
            let mut newest = Vec::new();
            store
                .scan_audit(true, &mut |e| {
                    newest.push(e.seq);
                    true
                })
                .unwrap();
            assert!(newest.windows(2).all(|w| w[0] == w[1] + 1), "{newest:?}");
            walks += 1;
        }
        let last = writer.join().unwrap();
        // The sealer catches up (bounded wait), then the whole chain is there.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while store.segments.due(last) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let sealed = store.segment_list().unwrap();
        assert!(sealed.len() >= 40, "{} segments", sealed.len());
        let mut v = ChainVerifier::default();
        store
            .scan_audit_blocks(0, &mut |block| v.check_block(block).is_ok())
            .unwrap();
        assert_eq!(v.checked, last);
        assert_eq!(store.audit_last().unwrap().map(|e| e.seq), Some(last));
    }
}
