//! Secondary indexes, derived in memory from the primary records at start and
//! kept up to date by the single writer. `check` rebuilds them from the store
//! and compares.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;

use crate::domain::plan::next_action;
use crate::domain::{Account, Policy, Status};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Indexes {
    pub usernames: BTreeSet<String>,
    /// Lower-cased email → username.
    pub by_email: HashMap<String, String>,
    /// `SHA256:…` → username.
    pub by_fingerprint: HashMap<String, String>,
    pub by_sponsor: HashMap<String, BTreeSet<String>>,
    pub by_end: BTreeSet<(NaiveDate, String)>,
    pub by_status: BTreeMap<Status, BTreeSet<String>>,
    pub group_members: HashMap<String, BTreeSet<String>>,
    /// (due date, username) of each account's next lifecycle action: the
    /// scheduler reads only what is due, never every account.
    pub by_due: BTreeSet<(NaiveDate, String)>,
    /// The policy the due dates are computed with.
    pub policy: Option<Policy>,
}

impl Indexes {
    pub fn new(policy: &Policy) -> Self {
        Indexes {
            policy: Some(policy.clone()),
            ..Indexes::default()
        }
    }

    fn due(&self, account: &Account) -> Option<(NaiveDate, String)> {
        let planned = next_action(account, self.policy.as_ref()?)?;
        Some((planned.due, planned.username))
    }

    pub fn insert(&mut self, account: &Account) {
        let name = &account.username;
        if let Some(due) = self.due(account) {
            self.by_due.insert(due);
        }
        self.usernames.insert(name.clone());
        self.by_email.insert(account.email_key(), name.clone());
        for key in &account.credentials.keys {
            self.by_fingerprint
                .insert(key.fingerprint.clone(), name.clone());
        }
        if let Some(sponsor) = &account.sponsor {
            self.by_sponsor
                .entry(sponsor.clone())
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
                .entry(group.clone())
                .or_default()
                .insert(name.clone());
        }
    }

    pub fn remove(&mut self, account: &Account) {
        let name = &account.username;
        self.usernames.remove(name);
        if self.by_email.get(&account.email_key()) == Some(name) {
            self.by_email.remove(&account.email_key());
        }
        for key in &account.credentials.keys {
            if self.by_fingerprint.get(&key.fingerprint) == Some(name) {
                self.by_fingerprint.remove(&key.fingerprint);
            }
        }
        if let Some(sponsor) = &account.sponsor {
            remove_from(&mut self.by_sponsor, sponsor, name);
        }
        if let Some(end) = account.end_date {
            self.by_end.remove(&(end, name.clone()));
        }
        if let Some(due) = self.due(account) {
            self.by_due.remove(&due);
        }
        if let Some(set) = self.by_status.get_mut(&account.status) {
            set.remove(name);
            if set.is_empty() {
                self.by_status.remove(&account.status);
            }
        }
        for group in &account.groups {
            remove_from(&mut self.group_members, group, name);
        }
    }

    /// Names every difference between two index sets (empty when equal).
    pub fn differences(&self, expected: &Indexes) -> Vec<String> {
        let mut out = Vec::new();
        if self.usernames != expected.usernames {
            out.push(set_diff(
                "username index",
                &self.usernames,
                &expected.usernames,
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
        out
    }
}

fn remove_from<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, BTreeSet<String>>,
    key: &K,
    name: &str,
) {
    if let Some(set) = map.get_mut(key) {
        set.remove(name);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

fn set_diff(what: &str, live: &BTreeSet<String>, expected: &BTreeSet<String>) -> String {
    let extra: Vec<&String> = live.difference(expected).take(5).collect();
    let missing: Vec<&String> = expected.difference(live).take(5).collect();
    format!("{what}: extra {extra:?}, missing {missing:?}")
}

fn map_diff(
    what: &str,
    live: &HashMap<String, String>,
    expected: &HashMap<String, String>,
) -> String {
    let wrong: Vec<&String> = live
        .iter()
        .filter(|(k, v)| expected.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .take(5)
        .collect();
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !live.contains_key(*k))
        .take(5)
        .collect();
    format!("{what}: wrong or extra {wrong:?}, missing {missing:?}")
}
