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
use crate::domain::{Account, Policy, Status};

use super::search::SearchIndex;

/// An interned username.
pub type Name = Arc<str>;

/// Sorts after every username (usernames are ASCII).
const AFTER_ALL: &str = "\u{10FFFF}";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Indexes {
    pub usernames: BTreeSet<Name>,
    /// Lower-cased email → username.
    pub by_email: HashMap<Box<str>, Name>,
    /// `SHA256:…` → username (ordered: the console finds keys by prefix).
    pub by_fingerprint: BTreeMap<Box<str>, Name>,
    pub by_sponsor: HashMap<Name, BTreeSet<Name>>,
    pub by_end: BTreeSet<(NaiveDate, Name)>,
    pub by_status: BTreeMap<Status, BTreeSet<Name>>,
    pub group_members: HashMap<Box<str>, BTreeSet<Name>>,
    /// (due date, username) of each account's next lifecycle action: the
    /// scheduler reads only what is due, never every account.
    pub by_due: BTreeSet<(NaiveDate, Name)>,
    /// The policy the due dates are computed with.
    pub policy: Option<Policy>,
    /// The console's search rows and posting lists.
    pub search: SearchIndex,
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
        self.usernames
            .get(name)
            .cloned()
            .unwrap_or_else(|| Arc::from(name))
    }

    fn due(&self, account: &Account, name: &Name) -> Option<(NaiveDate, Name)> {
        let planned = next_action(account, self.policy.as_ref()?)?;
        Some((planned.due, name.clone()))
    }

    pub fn insert(&mut self, account: &Account) {
        let name = self.intern(&account.username);
        self.usernames.insert(name.clone());
        self.search.insert(&name, account);
        if let Some(due) = self.due(account, &name) {
            self.by_due.insert(due);
        }
        self.by_email
            .insert(account.email_key().into_boxed_str(), name.clone());
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
            self.by_end.insert((end, name.clone()));
        }
        self.by_status
            .entry(account.status)
            .or_default()
            .insert(name.clone());
        for group in &account.groups {
            self.group_members
                .entry(group.clone().into_boxed_str())
                .or_default()
                .insert(name.clone());
        }
    }

    pub fn remove(&mut self, account: &Account) {
        let name = self.intern(&account.username);
        if let Some(due) = self.due(account, &name) {
            self.by_due.remove(&due);
        }
        self.usernames.remove(&name);
        self.search.remove(&name);
        if self.by_email.get(account.email_key().as_str()) == Some(&name) {
            self.by_email.remove(account.email_key().as_str());
        }
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
        if let Some(end) = account.end_date {
            self.by_end.remove(&(end, name.clone()));
        }
        if let Some(set) = self.by_status.get_mut(&account.status) {
            set.remove(&name);
            if set.is_empty() {
                self.by_status.remove(&account.status);
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
        self.usernames.contains(name)
    }

    pub fn count(&self) -> usize {
        self.usernames.len()
    }

    pub fn email_owner(&self, email_lowercase: &str) -> Option<String> {
        self.by_email.get(email_lowercase).map(|n| n.to_string())
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

    pub fn members(&self, group: &str) -> BTreeSet<String> {
        self.group_members
            .get(group)
            .map(|s| s.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default()
    }

    /// Accounts whose end date is within [from, to], in date order.
    pub fn ending_between(&self, from: NaiveDate, to: NaiveDate) -> Vec<String> {
        self.by_end
            .range((from, Name::from(""))..=(to, Name::from(AFTER_ALL)))
            .map(|(_, n)| n.to_string())
            .collect()
    }

    /// Accounts whose next lifecycle action falls due on or before `until`.
    pub fn due_until(&self, until: NaiveDate) -> Vec<String> {
        self.by_due
            .range(..=(until, Name::from(AFTER_ALL)))
            .map(|(_, n)| n.to_string())
            .collect()
    }

    /// Names every difference between two index sets (empty when equal).
    pub fn differences(&self, expected: &Indexes) -> Vec<String> {
        let mut out = Vec::new();
        if self.usernames != expected.usernames {
            let extra: Vec<&Name> = self
                .usernames
                .difference(&expected.usernames)
                .take(5)
                .collect();
            let missing: Vec<&Name> = expected
                .usernames
                .difference(&self.usernames)
                .take(5)
                .collect();
            out.push(format!(
                "username index: extra {extra:?}, missing {missing:?}"
            ));
        }
        if self.by_email != expected.by_email {
            out.push(map_diff("email index", &self.by_email, &expected.by_email));
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
        if self.by_end != expected.by_end {
            out.push("end date index differs from the records".to_string());
        }
        if self.by_status != expected.by_status {
            out.push("status index differs from the records".to_string());
        }
        if self.by_due != expected.by_due {
            out.push("lifecycle due-date index differs from the records".to_string());
        }
        if self.group_members != expected.group_members {
            out.push("group membership index differs from the records".to_string());
        }
        if self.search != expected.search {
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
