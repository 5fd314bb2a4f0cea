//! The sled implementation: trees `accounts`, `groups`, `audit`, `meta` and one
//! per `Collection`; staged import chunks are files in `import_stage/` beside sled's own.

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};

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
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the database in `dir`. A second process gets
    /// `StoreError::InUse` instead of sled's raw lock error.
    pub fn open(dir: &Path) -> Result<Self> {
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
        Ok(SledStore {
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
        })
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
        match self.audit.last().map_err(io)? {
            Some((key, value)) => Ok(decode_block(&key, &value)?.pop()),
            None => Ok(None),
        }
    }

    fn scan_audit(
        &self,
        newest_first: bool,
        visit: &mut dyn FnMut(AuditEvent) -> bool,
    ) -> Result<()> {
        let blocks: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            if newest_first {
                Box::new(self.audit.iter().rev())
            } else {
                Box::new(self.audit.iter())
            };
        for item in blocks {
            let (key, value) = item.map_err(io)?;
            let mut events = decode_block(&key, &value)?;
            if newest_first {
                events.reverse();
            }
            for event in events {
                if !visit(event) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn scan_audit_blocks(&self, from_seq: u64, visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        let start = match self.audit.range(..=from_seq.to_be_bytes()).next_back() {
            Some(item) => item.map_err(io)?.0.to_vec(),
            None => Vec::new(),
        };
        for item in self.audit.range(start..) {
            let (_, value) = item.map_err(io)?;
            if !visit(&value) {
                break;
            }
        }
        Ok(())
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
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(io(e)),
        }
        self.db.flush().map_err(io)?;
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
        self.db.size_on_disk().unwrap_or(0)
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
        for name in names {
            let tree = self.db.open_tree(&name).map_err(io)?;
            for item in tree.iter() {
                let (key, value) = item.map_err(io)?;
                visit(&name, &key, &value).map_err(io)?;
            }
        }
        Ok(())
    }
}
