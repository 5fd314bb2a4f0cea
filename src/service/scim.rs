//! What the SCIM server changes, as service operations: each one checks
//! authorisation, then writes the account (or group) changes, their audit
//! events and the SCIM side record in one transaction.
//!
//! SCIM names things its own way: an identity provider's `userName` is
//! often an email address, its group names any text. tenure keeps its own
//! usernames and group names (derived from them, then fixed: they are the
//! SCIM `id`s) and stores the SCIM-only data — userName, externalId and
//! attributes with no place on the account — in the `scim` collection:
//! `u:NAME` / `g:NAME` the record, `n:`/`x:` (users) and `gn:`/`gx:`
//! (groups) the lowercased userName / displayName and externalId → NAME.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::accounts::{create_group_in, create_in, transition_in, update_in, AccountInput};
use super::authz::Permission;
use super::{Actor, Error, Result, Services, Tx};
use crate::domain::lifecycle::Transition;
use crate::domain::validate::validate_username;
use crate::domain::{Account, DisableReason, Group, Kind, Status};
use crate::store::Collection;

/// The SCIM side of an account.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserMeta {
    #[serde(rename = "userName")]
    pub user_name: String,
    #[serde(rename = "externalId", default)]
    pub external_id: Option<String>,
    /// Attributes kept as the client sent them (name, emails, title,
    /// phoneNumbers, addresses, enterprise employeeNumber, department…).
    #[serde(default)]
    pub extra: Map<String, Value>,
}

/// The SCIM side of a group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupMeta {
    #[serde(rename = "displayName")]
    pub display_name: String,
    #[serde(rename = "externalId", default)]
    pub external_id: Option<String>,
}

/// The whole state a SCIM client wants a user in (POST, PUT, PATCH result).
#[derive(Clone, Debug, Default)]
pub struct UserState {
    pub meta: UserMeta,
    pub display_name: String,
    pub email: String,
    /// None: unchanged (and enabled on create).
    pub active: Option<bool>,
    pub company: Option<String>,
    pub sponsor: Option<String>,
    /// None: the configured kind on create, unchanged on replace.
    pub kind: Option<Kind>,
    pub project: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub language: Option<String>,
    /// The custom fields the client manages (absent ones are cleared on replace).
    pub fields: BTreeMap<String, String>,
}

/// A group as SCIM sees it.
#[derive(Clone, Debug)]
pub struct ScimGroup {
    pub group: Group,
    pub meta: GroupMeta,
    pub members: BTreeSet<String>,
}

fn text_key(prefix: &str, value: &str) -> String {
    format!("{prefix}:{}", value.to_lowercase())
}

/// A tenure name (username or group name) for a SCIM name: the part
/// before an '@', lowercased, other characters folded to '-', starting
/// with a letter, at most 32 long; a taken one gets a number.
pub fn derive_name(wanted: &str, taken: &dyn Fn(&str) -> bool) -> String {
    if validate_username(wanted).is_ok() && !taken(wanted) {
        return wanted.to_string();
    }
    let local = wanted.split('@').next().unwrap_or(wanted).to_lowercase();
    let mut base: String = local
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
        base = format!("u{base}");
    }
    base.truncate(26);
    let base = base.trim_end_matches(['-', '.', '_']).to_string();
    let base = if base.is_empty() {
        "u".to_string()
    } else {
        base
    };
    if !taken(&base) {
        return base;
    }
    for n in 2..1000 {
        let candidate = format!("{base}-{n}");
        if !taken(&candidate) {
            return candidate;
        }
    }
    let mut random = [0u8; 4];
    let _ = getrandom::fill(&mut random);
    format!("{base}-{}", hex::encode(random))
}

impl Services {
    fn scim_record<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.store().record(Collection::Scim, key)? {
            Some(bytes) => Ok(Some(crate::store::decode(key, &bytes)?)),
            None => Ok(None),
        }
    }

    fn scim_pointer(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .store()
            .record(Collection::Scim, key)?
            .map(|b| String::from_utf8_lossy(&b).trim_matches('"').to_string()))
    }

    /// The SCIM record of an account (a default one for accounts made elsewhere).
    pub fn scim_user_meta(&self, account: &Account) -> Result<UserMeta> {
        Ok(self
            .scim_record::<UserMeta>(&format!("u:{}", account.username))?
            .unwrap_or_else(|| UserMeta {
                user_name: account.username.clone(),
                ..Default::default()
            }))
    }

    /// A user as SCIM may see it: deleted accounts are gone for SCIM.
    pub fn scim_user(&self, actor: &Actor, id: &str) -> Result<(Account, UserMeta)> {
        let account = self.target(actor, Permission::ReadAccount, id)?;
        if account.status == Status::Deleted {
            return Err(Error::NotFound(format!("no user with id '{id}'")));
        }
        let meta = self.scim_user_meta(&account)?;
        Ok((account, meta))
    }

    /// The account whose SCIM userName is `user_name` (any case), if any.
    pub fn scim_find_user_name(&self, user_name: &str) -> Result<Option<String>> {
        if let Some(name) = self.scim_pointer(&text_key("n", user_name))? {
            if let Some(a) = self.store().account(&name)? {
                let meta = self.scim_user_meta(&a)?;
                if a.status != Status::Deleted && meta.user_name.eq_ignore_ascii_case(user_name) {
                    return Ok(Some(name));
                }
            }
        }
        // Accounts made over SSH: their userName is their username.
        let lower = user_name.to_lowercase();
        if validate_username(&lower).is_ok() {
            if let Some(a) = self.store().account(&lower)? {
                if a.status != Status::Deleted && self.scim_user_meta(&a)?.user_name == a.username {
                    return Ok(Some(lower));
                }
            }
        }
        Ok(None)
    }

    /// Accounts whose SCIM userName may start with `prefix` (any case), in
    /// name order: the SCIM userName pointers under it (an ordered key
    /// range) and the usernames under it (accounts made elsewhere, whose
    /// userName is their username). A superset: the caller checks the filter.
    pub fn scim_user_name_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let lower = prefix.to_lowercase();
        let mut names = BTreeSet::new();
        self.store()
            .scan_records(Collection::Scim, &text_key("n", &lower), &mut |_, bytes| {
                names.insert(String::from_utf8_lossy(bytes).trim_matches('"').to_string());
                true
            })?;
        let guard = self.indexes()?;
        let indexes = guard
            .as_ref()
            .ok_or_else(|| Error::Failed("indexes not loaded".into()))?;
        names.extend(
            indexes
                .search
                .names_with_prefix(&lower)
                .map(|n| n.to_string()),
        );
        Ok(names.into_iter().collect())
    }

    /// The disabled accounts (SCIM `active eq false`), from the in-memory rows.
    pub fn scim_disabled_names(&self) -> Result<Vec<String>> {
        let guard = self.indexes()?;
        let indexes = guard
            .as_ref()
            .ok_or_else(|| Error::Failed("indexes not loaded".into()))?;
        Ok(indexes
            .search
            .names_with_status(Status::Disabled)
            .into_iter()
            .map(|n| n.to_string())
            .collect())
    }

    /// The account with this externalId, if any.
    pub fn scim_find_external_id(&self, external_id: &str) -> Result<Option<String>> {
        let Some(name) = self.scim_pointer(&format!("x:{external_id}"))? else {
            return Ok(None);
        };
        match self.store().account(&name)? {
            Some(a) if a.status != Status::Deleted => {
                let meta = self.scim_user_meta(&a)?;
                Ok((meta.external_id.as_deref() == Some(external_id)).then_some(name))
            }
            _ => Ok(None),
        }
    }

    /// POST /Users: a new account of the configured template and kind.
    pub fn scim_create_user(&self, actor: &Actor, state: &UserState) -> Result<Account> {
        self.authorize(actor, Permission::CreateAccount, None)?;
        let (template, kind) = match &self.config().http {
            Some(h) => (h.scim_template.clone(), h.scim_kind),
            None => (Some("contractor".to_string()), None),
        };
        let template = template.filter(|t| self.config().templates.contains_key(t));
        self.write(actor, |tx| {
            if self.scim_find_user_name(&state.meta.user_name)?.is_some() {
                return Err(Error::Conflict(format!(
                    "userName '{}' is already in use",
                    state.meta.user_name
                )));
            }
            if let Some(x) = &state.meta.external_id {
                if self.scim_find_external_id(x)?.is_some() {
                    return Err(Error::Conflict(format!(
                        "externalId '{x}' is already in use"
                    )));
                }
            }
            let name = derive_name(&state.meta.user_name, &|n| tx.exists(n).unwrap_or(true));
            let input = AccountInput {
                display_name: Some(state.display_name.clone()),
                email: Some(state.email.clone()),
                kind: state.kind.or(kind),
                company: state.company.clone(),
                sponsor: state.sponsor.clone(),
                project: state.project.clone(),
                start_date: state.start_date,
                end_date: state.end_date,
                fields: state.fields.clone(),
                template: template.clone(),
                language: state.language.clone(),
                ..Default::default()
            };
            let mut account = create_in(tx, &name, &input)?;
            if state.active == Some(false) {
                account = transition_in(
                    tx,
                    &name,
                    "user.disable",
                    &Transition::Disable {
                        reason: DisableReason::SourceRemoved,
                        note: Some("SCIM active=false".into()),
                    },
                    Some("SCIM active=false".into()),
                )?;
            }
            put_user_meta(tx, &name, None, &state.meta)?;
            Ok(account)
        })
    }

    /// PUT (and PATCH, once applied): the account becomes `state`.
    /// `active` false disables (reason source_removed), true enables.
    pub fn scim_replace_user(&self, actor: &Actor, id: &str, state: &UserState) -> Result<Account> {
        let (current, old_meta) = self.scim_user(actor, id)?;
        let mut input = AccountInput::default();
        let differs = |a: &Option<String>, b: &Option<String>| {
            a.as_deref().unwrap_or("") != b.as_deref().unwrap_or("")
        };
        if state.display_name != current.display_name {
            input.display_name = Some(state.display_name.clone());
        }
        if !state.email.eq_ignore_ascii_case(&current.email) || state.email != current.email {
            input.email = Some(state.email.clone());
        }
        if differs(&state.company, &current.company) {
            input.company = Some(state.company.clone().unwrap_or_default());
        }
        if differs(&state.sponsor, &current.sponsor) {
            input.sponsor = Some(state.sponsor.clone().unwrap_or_default());
        }
        if differs(&state.project, &current.project) {
            input.project = Some(state.project.clone().unwrap_or_default());
        }
        if differs(&state.language, &current.language) {
            input.language = Some(state.language.clone().unwrap_or_default());
        }
        if let Some(k) = state.kind.filter(|k| *k != current.kind) {
            input.kind = Some(k);
        }
        if let Some(d) = state.start_date.filter(|d| *d != current.start_date) {
            input.start_date = Some(d);
        }
        if let Some(d) = state.end_date.filter(|d| Some(*d) != current.end_date) {
            input.end_date = Some(d);
        }
        for (k, v) in &state.fields {
            if current.fields.get(k) != Some(v) {
                input.fields.insert(k.clone(), v.clone());
            }
        }
        for k in current.fields.keys() {
            if !state.fields.contains_key(k) {
                input.fields.insert(k.clone(), String::new());
            }
        }
        let account_changes = input.display_name.is_some()
            || input.email.is_some()
            || input.company.is_some()
            || input.sponsor.is_some()
            || input.project.is_some()
            || input.language.is_some()
            || input.kind.is_some()
            || input.start_date.is_some()
            || input.end_date.is_some()
            || !input.fields.is_empty();
        if account_changes || old_meta != state.meta {
            self.authorize(actor, Permission::UpdateAccount, Some(&current))?;
        }
        let enabled = current.status != Status::Disabled;
        let transition = match (enabled, state.active) {
            (true, Some(false)) => {
                self.authorize(actor, Permission::DisableAccount, Some(&current))?;
                if actor.name == id {
                    return Err(Error::Conflict(
                        "you cannot disable your own account".into(),
                    ));
                }
                Some(Transition::Disable {
                    reason: DisableReason::SourceRemoved,
                    note: Some("SCIM active=false".into()),
                })
            }
            (false, Some(true)) => {
                self.authorize(actor, Permission::EnableAccount, Some(&current))?;
                Some(Transition::Enable)
            }
            _ => None,
        };
        if let Some(owner) = self.scim_find_user_name(&state.meta.user_name)? {
            if owner != id {
                return Err(Error::Conflict(format!(
                    "userName '{}' is already in use",
                    state.meta.user_name
                )));
            }
        }
        if let Some(x) = &state.meta.external_id {
            if self.scim_find_external_id(x)?.is_some_and(|o| o != id) {
                return Err(Error::Conflict(format!(
                    "externalId '{x}' is already in use"
                )));
            }
        }
        self.write(actor, |tx| {
            let mut account = tx.load(id)?;
            // Enable before other changes (an update of a disabled account is
            // fine; re-enabling first keeps the order people expect).
            if let Some(t @ Transition::Enable) = &transition {
                account = transition_in(tx, id, "user.enable", t, Some("SCIM active=true".into()))?;
            }
            if account_changes {
                account = update_in(tx, id, &input)?;
            }
            if let Some(t @ Transition::Disable { .. }) = &transition {
                account =
                    transition_in(tx, id, "user.disable", t, Some("SCIM active=false".into()))?;
            }
            if old_meta != state.meta {
                put_user_meta(tx, id, Some(&old_meta), &state.meta)?;
                if !account_changes && transition.is_none() {
                    tx.event(
                        "user.update",
                        Some(id),
                        vec![],
                        Some(format!("SCIM attributes of {id} changed")),
                    );
                }
            }
            Ok(account)
        })
    }

    /// DELETE /Users/{id}: a soft delete (restorable; purged by retention).
    pub fn scim_delete_user(&self, actor: &Actor, id: &str) -> Result<Account> {
        self.scim_user(actor, id)?;
        self.delete(actor, id)
    }

    /// An unfiltered page of users for an admin or operator: how many
    /// accounts are not deleted, and the page (`skip` of them first) —
    /// counted from the index, only the page read from the store. `None`
    /// for anyone else (who lists through `list_each`, narrowed).
    pub fn scim_user_page(
        &self,
        actor: &Actor,
        skip: usize,
        take: usize,
    ) -> Result<Option<(usize, Vec<Account>)>> {
        self.authorize(actor, Permission::ListAccounts, None)?;
        let wide =
            actor.has(crate::domain::Role::Admin) || actor.has(crate::domain::Role::Operator);
        if !wide {
            return Ok(None);
        }
        let (total, names) = {
            let guard = self.indexes()?;
            let indexes = guard
                .as_ref()
                .ok_or_else(|| Error::Failed("indexes not loaded".into()))?;
            (
                indexes.search.live_count(),
                indexes.search.live_page(skip, take),
            )
        };
        let mut page = Vec::with_capacity(names.len());
        for name in names {
            if let Some(a) = self.store().account(&name)? {
                page.push(a);
            }
        }
        Ok(Some((total, page)))
    }

    // ----- groups

    fn scim_group_meta(&self, group: &Group) -> Result<GroupMeta> {
        Ok(self
            .scim_record::<GroupMeta>(&format!("g:{}", group.name))?
            .unwrap_or_else(|| GroupMeta {
                display_name: group.name.clone(),
                external_id: None,
            }))
    }

    fn check_group_permission(&self, actor: &Actor, permission: Permission) -> Result<()> {
        if super::authz::allowed(actor, permission, None) {
            Ok(())
        } else {
            Err(self.deny(actor, permission, None))
        }
    }

    /// Every group with its SCIM record and live (not deleted) members.
    pub fn scim_groups(&self, actor: &Actor) -> Result<Vec<ScimGroup>> {
        self.check_group_permission(actor, Permission::ReadGroups)?;
        let groups = self.groups_all()?;
        let guard = self.indexes()?;
        let indexes = guard
            .as_ref()
            .ok_or_else(|| Error::Failed("indexes not loaded".into()))?;
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            let meta = self.scim_group_meta(&group)?;
            let members = indexes.members(&group.name);
            out.push(ScimGroup {
                group,
                meta,
                members,
            });
        }
        Ok(out)
    }

    pub fn scim_group(&self, actor: &Actor, id: &str) -> Result<ScimGroup> {
        self.check_group_permission(actor, Permission::ReadGroups)?;
        let group = self
            .groups_all()?
            .into_iter()
            .find(|g| g.name == id)
            .ok_or_else(|| Error::NotFound(format!("no group with id '{id}'")))?;
        let meta = self.scim_group_meta(&group)?;
        let members = {
            let guard = self.indexes()?;
            guard.as_ref().map(|i| i.members(id)).unwrap_or_default()
        };
        Ok(ScimGroup {
            group,
            meta,
            members,
        })
    }

    fn live_members(&self, members: &BTreeSet<String>) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for m in members {
            match self.store().account(m)? {
                Some(a) if a.status != Status::Deleted => {
                    out.insert(m.clone());
                }
                _ => {
                    return Err(Error::NotFound(format!("no user with id '{m}' (a member)")));
                }
            }
        }
        Ok(out)
    }

    /// POST /Groups.
    pub fn scim_create_group(
        &self,
        actor: &Actor,
        meta: &GroupMeta,
        members: &BTreeSet<String>,
    ) -> Result<ScimGroup> {
        self.check_group_permission(actor, Permission::ChangeGroups)?;
        if meta.display_name.trim().is_empty() {
            return Err(Error::Invalid("displayName is required".into()));
        }
        let members = self.live_members(members)?;
        let existing = self.scim_groups(actor)?;
        if existing
            .iter()
            .any(|g| g.meta.display_name.eq_ignore_ascii_case(&meta.display_name))
        {
            return Err(Error::Conflict(format!(
                "a group with displayName '{}' already exists",
                meta.display_name
            )));
        }
        if let Some(x) = &meta.external_id {
            if existing
                .iter()
                .any(|g| g.meta.external_id.as_deref() == Some(x))
            {
                return Err(Error::Conflict(format!(
                    "externalId '{x}' is already in use"
                )));
            }
        }
        let names: BTreeSet<String> = existing.into_iter().map(|g| g.group.name).collect();
        let name = derive_name(&meta.display_name, &|n| names.contains(n));
        self.write(actor, |tx| {
            create_group_in(tx, &name, Some("from SCIM".into()))?;
            tx.put_record(Collection::Scim, &format!("g:{name}"), Some(meta))?;
            for m in &members {
                set_membership(tx, &name, m, true)?;
            }
            Ok(())
        })?;
        self.scim_group(actor, &name)
    }

    /// PUT /Groups/{id} (and PATCH, once applied): its displayName and members.
    pub fn scim_replace_group(
        &self,
        actor: &Actor,
        id: &str,
        meta: &GroupMeta,
        members: &BTreeSet<String>,
    ) -> Result<ScimGroup> {
        self.check_group_permission(actor, Permission::ChangeGroups)?;
        let current = self.scim_group(actor, id)?;
        if meta.display_name.trim().is_empty() {
            return Err(Error::Invalid("displayName is required".into()));
        }
        let wanted = self.live_members(members)?;
        let others = self.scim_groups(actor)?;
        if others.iter().any(|g| {
            g.group.name != id && g.meta.display_name.eq_ignore_ascii_case(&meta.display_name)
        }) {
            return Err(Error::Conflict(format!(
                "a group with displayName '{}' already exists",
                meta.display_name
            )));
        }
        self.write(actor, |tx| {
            if current.meta != *meta {
                tx.put_record(Collection::Scim, &format!("g:{id}"), Some(meta))?;
                tx.event(
                    "group.update",
                    Some(id),
                    vec![],
                    Some(format!("SCIM displayName '{}'", meta.display_name)),
                );
            }
            for m in wanted.difference(&current.members) {
                set_membership(tx, id, m, true)?;
            }
            for m in current.members.difference(&wanted) {
                set_membership(tx, id, m, false)?;
            }
            Ok(())
        })?;
        self.scim_group(actor, id)
    }

    /// DELETE /Groups/{id}: members leave it, then it is gone (audited).
    pub fn scim_delete_group(&self, actor: &Actor, id: &str) -> Result<()> {
        self.check_group_permission(actor, Permission::ChangeGroups)?;
        let current = self.scim_group(actor, id)?;
        self.write(actor, |tx| {
            for m in &current.members {
                set_membership(tx, id, m, false)?;
            }
            // Deleted accounts keep the name in their record: drop it there too.
            tx.put_group(id, None);
            tx.put_record::<GroupMeta>(Collection::Scim, &format!("g:{id}"), None)?;
            tx.event("group.delete", Some(id), vec![], Some("via SCIM".into()));
            Ok(())
        })
    }
}

fn set_membership(tx: &mut Tx<'_>, group: &str, name: &str, member: bool) -> Result<()> {
    let old = tx.load(name)?;
    if old.groups.contains(group) == member {
        return Ok(());
    }
    let mut new = old.clone();
    if member {
        new.groups.insert(group.to_string());
    } else {
        new.groups.remove(group);
    }
    new.updated_at = tx.now;
    new.updated_by = tx.actor.name.clone();
    let (action, detail) = if member {
        ("group.add", format!("added to {group}"))
    } else {
        ("group.remove", format!("removed from {group}"))
    };
    tx.put(action, Some(&old), Some(new), Some(detail));
    Ok(())
}

fn put_user_meta(
    tx: &mut Tx<'_>,
    name: &str,
    old: Option<&UserMeta>,
    new: &UserMeta,
) -> Result<()> {
    let pointer = serde_json::Value::String(name.to_string());
    if let Some(old) = old {
        if !old.user_name.eq_ignore_ascii_case(&new.user_name) {
            tx.put_record::<Value>(Collection::Scim, &text_key("n", &old.user_name), None)?;
        }
        if let Some(x) = &old.external_id {
            if new.external_id.as_ref() != Some(x) {
                tx.put_record::<Value>(Collection::Scim, &format!("x:{x}"), None)?;
            }
        }
    }
    tx.put_record(
        Collection::Scim,
        &text_key("n", &new.user_name),
        Some(&pointer),
    )?;
    if let Some(x) = &new.external_id {
        tx.put_record(Collection::Scim, &format!("x:{x}"), Some(&pointer))?;
    }
    tx.put_record(Collection::Scim, &format!("u:{name}"), Some(new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derived_from_scim_names_are_valid_and_free() {
        let none = |_: &str| false;
        assert_eq!(derive_name("bob", &none), "bob");
        assert_eq!(derive_name("Alice.Smith@Example.com", &none), "alice.smith");
        assert_eq!(
            derive_name("1c4e2a9e-8b7f-4d2c-9e1a-0b9c8d7e6f5a", &none),
            "u1c4e2a9e-8b7f-4d2c-9e1a-0"
        );
        assert_eq!(derive_name("Sales Team", &none), "sales-team");
        let taken = |n: &str| n == "bob" || n == "bob-2";
        assert_eq!(derive_name("bob", &taken), "bob-3");
        for odd in ["", "@", "ÄÖÜ", "---"] {
            assert!(
                validate_username(&derive_name(odd, &none)).is_ok(),
                "{odd:?}"
            );
        }
    }
}
