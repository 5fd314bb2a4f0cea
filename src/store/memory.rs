//! An in-memory store for tests: same encoding and atomicity as sled, no disk.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{audit_blocks, decode, encode, Collection, Result, Store, StoreError, WriteBatch};
use crate::domain::{Account, AuditEvent, Group};

#[derive(Default)]
struct Inner {
    accounts: BTreeMap<String, Vec<u8>>,
    groups: BTreeMap<String, Vec<u8>>,
    audit: BTreeMap<[u8; 8], Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
    records: BTreeMap<(Collection, String), Vec<u8>>,
    stage: BTreeMap<String, Vec<u8>>,
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Io("memory store lock poisoned".into()))
    }
}

fn put<K: Ord + Clone>(map: &mut BTreeMap<K, Vec<u8>>, key: K, value: Option<Vec<u8>>) {
    match value {
        Some(v) => {
            map.insert(key, v);
        }
        None => {
            map.remove(&key);
        }
    }
}

impl Store for MemoryStore {
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock()?.meta.get(key).cloned())
    }

    fn account(&self, username: &str) -> Result<Option<Account>> {
        let inner = self.lock()?;
        inner
            .accounts
            .get(username)
            .map(|bytes| decode(username, bytes))
            .transpose()
    }

    fn account_exists(&self, username: &str) -> Result<bool> {
        Ok(self.lock()?.accounts.contains_key(username))
    }

    fn scan_accounts(
        &self,
        visit: &mut dyn FnMut(String, std::result::Result<Account, String>),
    ) -> Result<()> {
        let snapshot = self.lock()?.accounts.clone();
        for (key, bytes) in snapshot {
            visit(
                key,
                serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
            );
        }
        Ok(())
    }

    fn groups(&self) -> Result<Vec<Group>> {
        let inner = self.lock()?;
        inner.groups.iter().map(|(k, v)| decode(k, v)).collect()
    }

    fn audit_last(&self) -> Result<Option<AuditEvent>> {
        let inner = self.lock()?;
        match inner.audit.values().next_back() {
            Some(bytes) => Ok(decode::<Vec<AuditEvent>>("audit", bytes)?.pop()),
            None => Ok(None),
        }
    }

    fn scan_accounts_after(
        &self,
        after: Option<&str>,
        visit: &mut dyn FnMut(String, std::result::Result<Account, String>) -> bool,
    ) -> Result<()> {
        let rows: Vec<(String, Vec<u8>)> = self
            .lock()?
            .accounts
            .iter()
            .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, value) in rows {
            let account = serde_json::from_slice(&value).map_err(|e| e.to_string());
            if !visit(key, account) {
                break;
            }
        }
        Ok(())
    }

    fn scan_audit_blocks(&self, from_seq: u64, visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        let blocks: Vec<Vec<u8>> = {
            let inner = self.lock()?;
            let start = inner
                .audit
                .range(..=from_seq.to_be_bytes())
                .next_back()
                .map(|(k, _)| *k)
                .unwrap_or([0; 8]);
            inner.audit.range(start..).map(|(_, v)| v.clone()).collect()
        };
        for block in &blocks {
            if !visit(block) {
                break;
            }
        }
        Ok(())
    }

    fn scan_audit(
        &self,
        newest_first: bool,
        visit: &mut dyn FnMut(AuditEvent) -> bool,
    ) -> Result<()> {
        let blocks: Vec<Vec<u8>> = self.lock()?.audit.values().cloned().collect();
        let ordered: Box<dyn Iterator<Item = &Vec<u8>>> = if newest_first {
            Box::new(blocks.iter().rev())
        } else {
            Box::new(blocks.iter())
        };
        for bytes in ordered {
            let mut events: Vec<AuditEvent> = decode("audit", bytes)?;
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

    fn commit(&self, batch: &WriteBatch) -> Result<()> {
        // Encode everything first, so a failure changes nothing.
        let mut accounts = Vec::new();
        for (k, v) in &batch.accounts {
            accounts.push((k.clone(), v.as_ref().map(encode).transpose()?));
        }
        let mut groups = Vec::new();
        for (k, v) in &batch.groups {
            groups.push((k.clone(), v.as_ref().map(encode).transpose()?));
        }
        for (k, bytes) in &batch.accounts_encoded {
            // Checked like a record written here would be.
            decode::<Account>(k, bytes)?;
            accounts.push((k.clone(), Some(bytes.clone())));
        }
        let audit = audit_blocks(batch)?;
        let mut inner = self.lock()?;
        for (k, v) in accounts {
            put(&mut inner.accounts, k, v);
        }
        for (k, v) in groups {
            put(&mut inner.groups, k, v);
        }
        for (k, v) in audit {
            inner.audit.insert(k, v);
        }
        for (c, k, v) in &batch.records {
            put(&mut inner.records, (*c, k.clone()), v.clone());
        }
        for (k, v) in &batch.meta {
            put(&mut inner.meta, k.clone(), v.clone());
        }
        Ok(())
    }

    fn record(&self, collection: Collection, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .lock()?
            .records
            .get(&(collection, key.to_string()))
            .cloned())
    }

    fn records(&self, collection: Collection) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self
            .lock()?
            .records
            .iter()
            .filter(|((c, _), _)| *c == collection)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn scan_records(
        &self,
        collection: Collection,
        prefix: &str,
        visit: &mut dyn FnMut(&str, &[u8]) -> bool,
    ) -> Result<()> {
        let matching: Vec<(String, Vec<u8>)> = self
            .lock()?
            .records
            .range((collection, prefix.to_string())..)
            .take_while(|((c, k), _)| *c == collection && k.starts_with(prefix))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &matching {
            if !visit(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn stage_put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.lock()?.stage.insert(key.to_string(), bytes.to_vec());
        Ok(())
    }

    fn stage_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock()?.stage.get(key).cloned())
    }

    fn stage_keys(&self) -> Result<Vec<String>> {
        Ok(self.lock()?.stage.keys().cloned().collect())
    }

    fn stage_remove(&self, key: &str) -> Result<()> {
        self.lock()?.stage.remove(key);
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        self.lock()
            .map(|i| {
                let sum =
                    |m: &BTreeMap<String, Vec<u8>>| m.values().map(|v| v.len() as u64).sum::<u64>();
                sum(&i.accounts)
                    + sum(&i.groups)
                    + i.audit.values().map(|v| v.len() as u64).sum::<u64>()
            })
            .unwrap_or(0)
    }

    fn export(
        &self,
        visit: &mut dyn FnMut(&str, &[u8], &[u8]) -> std::io::Result<()>,
    ) -> Result<()> {
        let inner = self.lock()?;
        let io = |e: std::io::Error| StoreError::Io(e.to_string());
        for (k, v) in &inner.accounts {
            visit("accounts", k.as_bytes(), v).map_err(io)?;
        }
        for (k, v) in &inner.audit {
            visit("audit", k, v).map_err(io)?;
        }
        for (k, v) in &inner.groups {
            visit("groups", k.as_bytes(), v).map_err(io)?;
        }
        for (k, v) in &inner.meta {
            visit("meta", k.as_bytes(), v).map_err(io)?;
        }
        for ((c, k), v) in &inner.records {
            visit(c.tree_name(), k.as_bytes(), v).map_err(io)?;
        }
        Ok(())
    }
}
