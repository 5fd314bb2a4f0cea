//! Secondary indexes, derived in memory from the primary records at start and
//! kept up to date by the single writer. `check` rebuilds them from the store
//! and compares.
//!
//! Usernames are interned (`Arc<str>`): every index shares one allocation per
//! account, which keeps a million accounts' indexes small.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;

use crate::domain::plan::next_action;
use crate::domain::{Account, Policy, Role};

use super::search::{Id, SearchIndex};

/// An interned username.
pub type Name = Arc<str>;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Indexes {
    /// `SHA256:…` → username (ordered: the console finds keys by prefix).
    pub by_fingerprint: BTreeMap<Box<str>, Name>,
    pub by_sponsor: HashMap<Name, BTreeSet<Name>>,
    /// (end date, search row) — rows, not names: 8 bytes an account.
    pub by_end: BTreeSet<(NaiveDate, Id)>,
    pub group_members: HashMap<Box<str>, BTreeSet<Name>>,
    /// (due date, username) of each account's next lifecycle action: the
    /// scheduler reads only what is due, never every account.
    pub by_due: BTreeSet<(NaiveDate, Id)>,
    /// The policy the due dates are computed with.
    pub policy: Option<Policy>,
    /// The console's search rows and posting lists.
    pub search: SearchIndex,
    /// Accounts with the admin role, whatever their state (a handful): the
    /// rule that keeps one admin able to log in checks them, not every account.
    pub admins: BTreeSet<Name>,
    /// Accounts with the host role (registered servers): `user show` lists
    /// where an account may log in from these, never from every account.
    pub hosts: BTreeSet<Name>,
}

impl Indexes {
    pub fn new(policy: &Policy) -> Self {
        Indexes {
            policy: Some(policy.clone()),
            ..Indexes::default()
        }
    }

    /// The shared copy of `name` (or a new one).
    fn intern(&self, name: &str) -> Name {
        self.search
            .name(name)
            .cloned()
            .unwrap_or_else(|| Arc::from(name))
    }

    fn due(&self, account: &Account) -> Option<NaiveDate> {
        Some(next_action(account, self.policy.as_ref()?)?.due)
    }

    pub fn insert(&mut self, account: &Account) {
        let name = self.intern(&account.username);
        // First: the search index holds the username set and the emails.
        let id = self.search.insert(&name, account);
        if let Some(due) = self.due(account) {
            self.by_due.insert((due, id));
        }
        for key in &account.credentials.keys {
            self.by_fingerprint
                .insert(key.fingerprint.clone().into_boxed_str(), name.clone());
        }
        if let Some(sponsor) = &account.sponsor {
            let sponsor = self.intern(sponsor);
            self.by_sponsor
                .entry(sponsor)
                .or_default()
                .insert(name.clone());
        }
        if let Some(end) = account.end_date {
            self.by_end.insert((end, id));
        }
        for group in &account.groups {
            self.group_members
                .entry(group.clone().into_boxed_str())
                .or_default()
                .insert(name.clone());
        }
        if account.roles.contains(&Role::Host) {
            self.hosts.insert(name.clone());
        }
        if account.roles.contains(&Role::Admin) {
            self.admins.insert(name);
        }
    }

    pub fn remove(&mut self, account: &Account) {
        let name = self.intern(&account.username);
        if let Some(id) = self.search.id(&name) {
            if let Some(due) = self.due(account) {
                self.by_due.remove(&(due, id));
            }
            if let Some(end) = account.end_date {
                self.by_end.remove(&(end, id));
            }
        }
        self.search.remove(&name);
        self.admins.remove(&name);
        self.hosts.remove(&name);
        for key in &account.credentials.keys {
            if self.by_fingerprint.get(key.fingerprint.as_str()) == Some(&name) {
                self.by_fingerprint.remove(key.fingerprint.as_str());
            }
        }
        if let Some(sponsor) = &account.sponsor {
            if let Some(set) = self.by_sponsor.get_mut(sponsor.as_str()) {
                set.remove(&name);
                if set.is_empty() {
                    self.by_sponsor.remove(sponsor.as_str());
                }
            }
        }
        for group in &account.groups {
            if let Some(set) = self.group_members.get_mut(group.as_str()) {
                set.remove(&name);
                if set.is_empty() {
                    self.group_members.remove(group.as_str());
                }
            }
        }
    }

    /// Removes every entry of these accounts without their records (what
    /// the index holds of them may be any version): one pass over each map.
    pub fn remove_names(&mut self, names: &std::collections::HashSet<String>) {
        let ids: std::collections::HashSet<Id> =
            names.iter().filter_map(|n| self.search.id(n)).collect();
        self.by_end.retain(|(_, id)| !ids.contains(id));
        self.by_due.retain(|(_, id)| !ids.contains(id));
        let gone = |n: &Name| names.contains(&**n);
        self.by_fingerprint.retain(|_, owner| !gone(owner));
        self.admins.retain(|n| !gone(n));
        for set in self.by_sponsor.values_mut() {
            set.retain(|n| !gone(n));
        }
        self.by_sponsor.retain(|_, set| !set.is_empty());
        for set in self.group_members.values_mut() {
            set.retain(|n| !gone(n));
        }
        self.group_members.retain(|_, set| !set.is_empty());
        for name in names {
            self.search.remove(name);
        }
    }

    pub fn exists(&self, name: &str) -> bool {
        self.search.name(name).is_some()
    }

    pub fn count(&self) -> usize {
        self.search.len()
    }

    pub fn email_owner(&self, email_lowercase: &str) -> Option<String> {
        self.search
            .email_owner(email_lowercase)
            .map(|n| n.to_string())
    }

    pub fn fingerprint_owner(&self, fingerprint: &str) -> Option<String> {
        self.by_fingerprint.get(fingerprint).map(|n| n.to_string())
    }

    /// The accounts `sponsor` sponsors.
    pub fn sponsored_by(&self, sponsor: &str) -> BTreeSet<String> {
        self.by_sponsor
            .get(sponsor)
            .map(|s| s.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default()
    }

    /// Every account with the admin role.
    pub fn admins(&self) -> impl Iterator<Item = &str> {
        self.admins.iter().map(|n| &**n)
    }

    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(|n| &**n)
    }

    pub fn members(&self, group: &str) -> BTreeSet<String> {
        self.group_members
            .get(group)
            .map(|s| s.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default()
    }

    /// Accounts whose end date is within [from, to], in date order.
    pub fn ending_between(&self, from: NaiveDate, to: NaiveDate) -> Vec<String> {
        self.named(self.by_end.range((from, 0)..=(to, Id::MAX)))
    }

    /// Accounts whose next lifecycle action falls due on or before `until`.
    pub fn due_until(&self, until: NaiveDate) -> Vec<String> {
        self.named(self.by_due.range(..=(until, Id::MAX)))
    }

    /// (date, row) entries as usernames, by date then name.
    fn named<'a>(&self, entries: impl Iterator<Item = &'a (NaiveDate, Id)>) -> Vec<String> {
        let mut out: Vec<(NaiveDate, &Name)> = entries
            .filter_map(|(day, id)| Some((*day, self.search.name_of(*id)?)))
            .collect();
        out.sort();
        out.into_iter().map(|(_, n)| n.to_string()).collect()
    }

    /// (date, row) entries as (date, username), for `check`.
    fn dated(&self, set: &BTreeSet<(NaiveDate, Id)>) -> BTreeSet<(NaiveDate, Name)> {
        set.iter()
            .filter_map(|(day, id)| Some((*day, self.search.name_of(*id)?.clone())))
            .collect()
    }

    /// Names every difference between two index sets (empty when equal).
    pub fn differences(&self, expected: &Indexes) -> Vec<String> {
        let mut out = Vec::new();
        let live: BTreeSet<&Name> = self.search.names().collect();
        let rebuilt: BTreeSet<&Name> = expected.search.names().collect();
        if live != rebuilt {
            let extra: Vec<&&Name> = live.difference(&rebuilt).take(5).collect();
            let missing: Vec<&&Name> = rebuilt.difference(&live).take(5).collect();
            out.push(format!(
                "username index: extra {extra:?}, missing {missing:?}"
            ));
        }
        let (live, rebuilt) = (self.search.email_pairs(), expected.search.email_pairs());
        if live != rebuilt {
            out.push(map_diff("email index", &live, &rebuilt));
        }
        if self.by_fingerprint != expected.by_fingerprint {
            out.push(map_diff(
                "key fingerprint index",
                &self.by_fingerprint,
                &expected.by_fingerprint,
            ));
        }
        if self.by_sponsor != expected.by_sponsor {
            out.push("sponsor index differs from the records".to_string());
        }
        if self.dated(&self.by_end) != expected.dated(&expected.by_end) {
            out.push("end date index differs from the records".to_string());
        }
        if self.dated(&self.by_due) != expected.dated(&expected.by_due) {
            out.push("lifecycle due-date index differs from the records".to_string());
        }
        if self.admins != expected.admins {
            out.push("admin index differs from the records".to_string());
        }
        if self.hosts != expected.hosts {
            out.push("host index differs from the records".to_string());
        }
        if self.group_members != expected.group_members {
            out.push("group membership index differs from the records".to_string());
        }
        if !self.search.matches_rebuilt(&expected.search) {
            out.push("search index differs from the records".to_string());
        }
        out
    }
}

/// Describes how two key → username maps differ (the `check` command).
fn map_diff<'a>(
    what: &str,
    live: impl IntoIterator<Item = (&'a Box<str>, &'a Name)>,
    expected: impl IntoIterator<Item = (&'a Box<str>, &'a Name)>,
) -> String {
    let live: BTreeMap<&str, &Name> = live.into_iter().map(|(k, v)| (&**k, v)).collect();
    let expected: BTreeMap<&str, &Name> = expected.into_iter().map(|(k, v)| (&**k, v)).collect();
    let wrong: Vec<&str> = live
        .iter()
        .filter(|(k, v)| expected.get(*k) != Some(*v))
        .map(|(k, _)| *k)
        .take(5)
        .collect();
    let missing: Vec<&str> = expected
        .keys()
        .filter(|k| !live.contains_key(*k))
        .copied()
        .take(5)
        .collect();
    format!("{what}: wrong or extra {wrong:?}, missing {missing:?}")
}

/// The indexes kept on disk in the `index` collection, written in the same
/// transaction as the accounts they describe: what a single-account command
/// needs to check uniqueness and the last-admin rule without deriving every
/// index from a million records first. Keys (a NUL cannot occur in a
/// username, an email or a fingerprint: validation refuses control
/// characters):
///
/// - `e\0EMAIL` → username (email lower-cased)
/// - `f\0SHA256:…` → username
/// - `a\0USERNAME` → empty (accounts with the admin role)
///
/// Sponsorship is not kept here: only a purge needs it, and one key less per
/// account keeps bulk creation fast; offline, a purge reads every record.
pub mod persisted {
    use std::collections::{BTreeMap, BTreeSet};

    use crate::domain::{Account, Role};
    use crate::store::{Collection, Store, WriteBatch};

    /// The layout of the `index` collection; a database without this
    /// version in its meta gets the collection rebuilt when opened.
    pub const VERSION: &str = "2";
    pub const VERSION_KEY: &str = "index.version";

    pub fn email(email_lowercase: &str) -> String {
        format!("e\0{email_lowercase}")
    }

    pub fn fingerprint(fingerprint: &str) -> String {
        format!("f\0{fingerprint}")
    }

    pub const ADMINS: &str = "a\0";

    /// Every entry an account puts in the collection.
    pub fn entries(account: &Account) -> BTreeSet<(String, String)> {
        let name = &account.username;
        let mut out = BTreeSet::new();
        out.insert((email(&account.email_key()), name.clone()));
        for key in &account.credentials.keys {
            out.insert((fingerprint(&key.fingerprint), name.clone()));
        }
        if account.roles.contains(&Role::Admin) {
            out.insert((format!("{ADMINS}{name}"), String::new()));
        }
        out
    }

    /// Writes the collection afresh from the records when the database does
    /// not have it at this version (a database from before it existed, or a
    /// rebuild cut short): everything old removed, then every account's
    /// entries, in batches, then the version. Returns the accounts indexed.
    pub fn ensure(store: &dyn Store) -> crate::store::Result<Option<usize>> {
        if store.meta(VERSION_KEY)?.as_deref() == Some(VERSION.as_bytes()) {
            return Ok(None);
        }
        const BATCH: usize = 10_000;
        let mut old = Vec::new();
        store.scan_records(Collection::Index, "", &mut |key, _| {
            old.push((Collection::Index, key.to_string(), None));
            true
        })?;
        for chunk in old.chunks(BATCH) {
            store.commit(&WriteBatch {
                records: chunk.to_vec(),
                ..Default::default()
            })?;
        }
        let mut indexed = 0;
        let mut batch: Vec<Account> = Vec::with_capacity(BATCH);
        let mut failed = None;
        let flush = |batch: &mut Vec<Account>| {
            let records = ops(batch.iter().map(|a| (None, Some(a))));
            batch.clear();
            store.commit(&WriteBatch {
                records,
                ..Default::default()
            })
        };
        store.scan_accounts(&mut |key, account| {
            if failed.is_some() {
                return;
            }
            match account {
                Ok(account) => {
                    batch.push(account);
                    indexed += 1;
                    if batch.len() == BATCH {
                        if let Err(e) = flush(&mut batch) {
                            failed = Some(e);
                        }
                    }
                }
                Err(why) => failed = Some(crate::store::StoreError::Corrupt { key, why }),
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        flush(&mut batch)?;
        store.commit(&WriteBatch {
            meta: vec![(VERSION_KEY.to_string(), Some(VERSION.as_bytes().to_vec()))],
            ..Default::default()
        })?;
        Ok(Some(indexed))
    }

    /// Every entry the records call for, for `check` to compare with what
    /// is stored.
    pub fn differences(
        store: &dyn Store,
        records: &[Account],
    ) -> crate::store::Result<Vec<String>> {
        let expected: BTreeMap<String, String> = records.iter().flat_map(entries).collect();
        let mut stored = BTreeMap::new();
        store.scan_records(Collection::Index, "", &mut |key, value| {
            stored.insert(key.to_string(), String::from_utf8_lossy(value).into_owned());
            true
        })?;
        let show = |k: &String| k.replace('\0', "/");
        let wrong: Vec<String> = stored
            .iter()
            .filter(|(k, v)| expected.get(*k) != Some(*v))
            .map(|(k, _)| show(k))
            .take(5)
            .collect();
        let missing: Vec<String> = expected
            .keys()
            .filter(|k| !stored.contains_key(*k))
            .map(show)
            .take(5)
            .collect();
        Ok(if wrong.is_empty() && missing.is_empty() {
            vec![]
        } else {
            vec![format!(
                "stored uniqueness index: wrong or extra {wrong:?}, missing {missing:?}"
            )]
        })
    }

    /// The writes that take the collection from the accounts' old versions
    /// to their new ones: every entry that went away is removed first, then
    /// every new one written, so two accounts that swap an email in one
    /// transaction end up with each other's.
    pub fn ops<'a>(
        changes: impl IntoIterator<Item = (Option<&'a Account>, Option<&'a Account>)>,
    ) -> Vec<(Collection, String, Option<Vec<u8>>)> {
        let mut net: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut puts = Vec::new();
        for (old, new) in changes {
            let before = old.map(entries).unwrap_or_default();
            let after = new.map(entries).unwrap_or_default();
            for (key, _) in before.difference(&after) {
                net.entry(key.clone()).or_insert(None);
            }
            puts.extend(after.difference(&before).cloned());
        }
        for (key, value) in puts {
            net.insert(key, Some(value));
        }
        net.into_iter()
            .map(|(k, v)| (Collection::Index, k, v.map(String::into_bytes)))
            .collect()
    }
}
