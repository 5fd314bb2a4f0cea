//! Groups: names with members; membership is stored on the accounts.

use std::collections::BTreeSet;

use super::accounts::create_group_in;
use super::authz::Permission;
use super::{Actor, Error, Result, Services};
use crate::domain::validate::validate_group_name;
use crate::domain::{Group, Status};

#[derive(Clone, Debug, serde::Serialize)]
pub struct GroupView {
    #[serde(flatten)]
    pub group: Group,
    pub members: BTreeSet<String>,
}

impl Services {
    fn check_groups(&self, actor: &Actor, permission: Permission) -> Result<()> {
        if super::authz::allowed(actor, permission, None) {
            Ok(())
        } else {
            Err(self.deny(actor, permission, None))
        }
    }

    pub fn group_list(&self, actor: &Actor) -> Result<Vec<GroupView>> {
        self.check_groups(actor, Permission::ReadGroups)?;
        let groups = self.groups_all()?;
        let guard = self.indexes()?;
        let indexes = guard.as_ref();
        Ok(groups
            .into_iter()
            .map(|group| GroupView {
                members: indexes.map(|i| i.members(&group.name)).unwrap_or_default(),
                group,
            })
            .collect())
    }

    pub fn group_create(&self, actor: &Actor, name: &str) -> Result<()> {
        self.check_groups(actor, Permission::ChangeGroups)?;
        validate_group_name(name).map_err(Error::Invalid)?;
        self.write(actor, |tx| {
            if tx.group_exists(name)? {
                return Err(Error::Conflict(format!("group '{name}' already exists")));
            }
            create_group_in(tx, name, None)
        })
    }

    pub fn group_add(&self, actor: &Actor, group: &str, name: &str) -> Result<()> {
        self.check_groups(actor, Permission::ChangeGroups)?;
        self.write(actor, |tx| {
            if !tx.group_exists(group)? {
                return Err(Error::NotFound(format!(
                    "group '{group}' does not exist (group create {group})"
                )));
            }
            let old = tx.load(name)?;
            if old.status == Status::Deleted {
                return Err(Error::Conflict(format!(
                    "{name} is deleted: restore it first"
                )));
            }
            if old.groups.contains(group) {
                return Err(Error::Conflict(format!(
                    "{name} is already in group '{group}'"
                )));
            }
            super::sources::refuse_owned(tx.actor, &old, &[format!("group:{group}")])?;
            let mut new = old.clone();
            new.groups.insert(group.to_string());
            new.updated_at = tx.now;
            new.updated_by = tx.actor.name.clone();
            tx.put(
                "group.add",
                Some(&old),
                Some(new),
                Some(format!("added to {group}")),
            );
            Ok(())
        })
    }

    pub fn group_remove(&self, actor: &Actor, group: &str, name: &str) -> Result<()> {
        self.check_groups(actor, Permission::ChangeGroups)?;
        self.write(actor, |tx| {
            let old = tx.load(name)?;
            if !old.groups.contains(group) {
                return Err(Error::NotFound(format!("{name} is not in group '{group}'")));
            }
            super::sources::refuse_owned(tx.actor, &old, &[format!("group:{group}")])?;
            let mut new = old.clone();
            new.groups.remove(group);
            new.updated_at = tx.now;
            new.updated_by = tx.actor.name.clone();
            tx.put(
                "group.remove",
                Some(&old),
                Some(new),
                Some(format!("removed from {group}")),
            );
            Ok(())
        })
    }
}
