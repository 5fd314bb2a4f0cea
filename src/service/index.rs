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
