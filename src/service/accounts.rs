//! Account operations: create (one or a batch), clone, update, lifecycle
//! transitions, list and show.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate};

use super::admins::keep_an_admin;
use super::authz::{allowed, refusal_reason, Permission};
use super::{Actor, Error, Result, Services, Tx};
use crate::domain::lifecycle::{self, Effective, Transition};
use crate::domain::validate::{latest_end, validate_account, validate_username};
use crate::domain::{Account, DisableReason, Group, Kind, Role, Status};
use crate::store::SCHEMA_VERSION;

/// What a caller may set on an account. `None` leaves a value as it is (or
/// takes the template's / the default on create); `Some("")` clears optional text.
/// Kept as it is in an account request until the request is decided.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AccountInput {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub kind: Option<Kind>,
    pub company: Option<String>,
    pub sponsor: Option<String>,
    pub project: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// Replaces the group set when given.
    pub groups: Option<Vec<String>>,
    /// Replaces the role set when given.
    pub roles: Option<Vec<Role>>,
    /// Merged into the custom fields; an empty value removes the field.
    pub fields: BTreeMap<String, String>,
    pub template: Option<String>,
    pub timezone: Option<String>,
    pub language: Option<String>,
    /// The console theme (`default`, `light`, `high-contrast`); empty clears it.
    pub theme: Option<String>,
    pub notes: Option<String>,
    pub inactivity_exempt: Option<bool>,
    /// Replaces the per-account allowlist when given.
    pub allowlist: Option<Vec<ipnet::IpNet>>,
    /// The directory link of an account a source creates (never from a client).
    #[serde(skip)]
    pub source: Option<crate::domain::source::SourceLink>,
}

/// Filters of `user list`.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Matches the effective status (`expired` too).
    pub status: Option<String>,
    pub kind: Option<Kind>,
    pub sponsor: Option<String>,
    pub project: Option<String>,
    pub expiring_within: Option<u32>,
    /// Paging: only accounts whose username sorts after this one…
    pub after: Option<String>,
    /// …and at most this many.
    pub limit: Option<usize>,
}

fn optional(value: Option<String>, current: Option<String>) -> Option<String> {
    match value {
        Some(v) if v.trim().is_empty() => None,
        Some(v) => Some(v.trim().to_string()),
        None => current,
    }
}

/// Applies `input` on top of `base`.
fn merge(mut base: Account, input: &AccountInput) -> Account {
    if let Some(v) = &input.display_name {
        base.display_name = v.trim().to_string();
    }
    if let Some(v) = &input.email {
        base.email = v.trim().to_string();
    }
    if let Some(v) = input.kind {
        base.kind = v;
    }
    base.company = optional(input.company.clone(), base.company);
    base.sponsor = optional(input.sponsor.clone(), base.sponsor);
    base.project = optional(input.project.clone(), base.project);
    base.timezone = optional(input.timezone.clone(), base.timezone);
    base.theme = optional(input.theme.clone(), base.theme);
    base.language = optional(input.language.clone(), base.language);
    base.notes = optional(input.notes.clone(), base.notes);
    if let Some(v) = input.start_date {
        base.start_date = v;
    }
    if let Some(v) = input.end_date {
        base.end_date = Some(v);
    }
    if let Some(groups) = &input.groups {
        base.groups = groups.iter().map(|g| g.trim().to_string()).collect();
    }
    if let Some(roles) = &input.roles {
        base.roles = roles.iter().copied().collect();
    }
    for (key, value) in &input.fields {
        if value.trim().is_empty() {
            base.fields.remove(key);
        } else {
            base.fields.insert(key.clone(), value.trim().to_string());
        }
    }
    if let Some(v) = input.inactivity_exempt {
        base.inactivity_exempt = v;
    }
    if let Some(nets) = &input.allowlist {
        base.allowlist = nets.clone();
    }
    if let Some(link) = &input.source {
        base.source = Some(link.clone());
    }
    base
}

impl Services {
    pub(crate) fn authorize(
        &self,
        actor: &Actor,
        permission: Permission,
        target: Option<&Account>,
    ) -> Result<()> {
        if allowed(actor, permission, target) {
            Ok(())
        } else {
            Err(self.deny_because(
                actor,
                permission,
                target.map(|t| t.username.as_str()),
                refusal_reason(actor, permission, target),
            ))
        }
    }

    /// Loads `name` and checks `actor` may do `permission` to it. A refused
    /// actor learns nothing about whether the account exists.
    pub(crate) fn target(
        &self,
        actor: &Actor,
        permission: Permission,
        name: &str,
    ) -> Result<Account> {
        match self.store().account(name)? {
            Some(account) => {
                self.authorize(actor, permission, Some(&account))?;
                Ok(account)
            }
            None if allowed(actor, permission, None) || actor.has(Role::Operator) => {
                Err(Error::NotFound(format!("no account named '{name}'")))
            }
            None => Err(self.deny(actor, permission, Some(name))),
        }
    }

    /// Creates the database's first admin. Refuses when already initialised.
    pub fn initialize(&self, actor: &Actor, admin: &str, input: AccountInput) -> Result<Account> {
        if self.is_initialized()? {
            return Err(Error::Conflict(format!(
                "the database in {} is already initialised",
                self.config().server.data_dir.display()
            )));
        }
        validate_username(admin).map_err(Error::Invalid)?;
        let input = AccountInput {
            kind: Some(input.kind.unwrap_or(Kind::Employee)),
            roles: Some(vec![Role::Admin]),
            // The first admin is the way back in: no inactivity rule locks it out.
            inactivity_exempt: Some(true),
            display_name: input.display_name.or_else(|| Some(admin.to_string())),
            email: input
                .email
                .or_else(|| Some(format!("{admin}@localhost.localdomain"))),
            ..input
        };
        self.write(actor, |tx| {
            tx.set_meta("schema_version", &SCHEMA_VERSION.to_string());
            tx.set_meta("initialized_at", &tx.now.to_rfc3339());
            tx.event(
                "system.init",
                None,
                vec![],
                Some(format!("schema version {SCHEMA_VERSION}")),
            );
            // Groups named by the config's templates exist from the start.
            let template_groups: BTreeSet<String> = tx
                .config()
                .templates
                .values()
                .flat_map(|t| t.groups.iter().cloned())
                .collect();
            for group in template_groups {
                create_group_in(tx, &group, Some("from a config template".into()))?;
            }
            create_in(tx, admin, &input)
        })
    }

    pub fn create(&self, actor: &Actor, name: &str, input: AccountInput) -> Result<Account> {
        self.authorize(actor, Permission::CreateAccount, None)?;
        self.write(actor, |tx| create_in(tx, name, &input))
    }

    /// Creates many accounts in one transaction and one flush (the bulk
    /// import path). All or nothing: the first invalid row fails the batch
    /// with its position.
    pub fn create_batch(
        &self,
        actor: &Actor,
        rows: &[(String, AccountInput)],
    ) -> Result<Vec<Account>> {
        self.authorize(actor, Permission::CreateAccount, None)?;
        self.write(actor, |tx| {
            rows.iter()
                .enumerate()
                .map(|(i, (name, input))| {
                    create_in(tx, name, input)
                        .map_err(|e| prefix_row(e, format!("row {}", i + 1), name))
                })
                .collect()
        })
    }

    /// `user clone SRC NEW`: kind, company, sponsor, project, groups, roles,
    /// custom fields, the same span of days to the end date, allowlist,
    /// timezone and language — never credentials, email or names.
    pub fn clone_account(
        &self,
        actor: &Actor,
        source: &str,
        name: &str,
        input: AccountInput,
    ) -> Result<Account> {
        let src = self.target(actor, Permission::ReadAccount, source)?;
        self.authorize(actor, Permission::CreateAccount, None)?;
        let today = self.today();
        let start = input.start_date.unwrap_or(today);
        let end = input.end_date.or_else(|| {
            let span = src.end_date? - src.start_date;
            let end = start + span.max(Duration::zero());
            let capped = latest_end(
                &self.config().policy,
                &Account {
                    start_date: start,
                    ..src.clone()
                },
                today,
            )
            .map_or(end, |latest| end.min(latest));
            Some(capped)
        });
        let prefilled = AccountInput {
            kind: Some(input.kind.unwrap_or(src.kind)),
            company: input.company.clone().or(src.company.clone()),
            sponsor: input.sponsor.clone().or(src.sponsor.clone()),
            project: input.project.clone().or(src.project.clone()),
            groups: input
                .groups
                .clone()
                .or_else(|| Some(src.groups.iter().cloned().collect())),
            roles: input
                .roles
                .clone()
                .or_else(|| Some(src.roles.iter().copied().collect())),
            fields: src
                .fields
                .clone()
                .into_iter()
                .chain(input.fields.clone())
                .collect(),
            timezone: input.timezone.clone().or(src.timezone.clone()),
            language: input.language.clone().or(src.language.clone()),
            theme: input.theme.clone().or(src.theme.clone()),
            inactivity_exempt: input.inactivity_exempt.or(Some(src.inactivity_exempt)),
            start_date: Some(start),
            end_date: end,
            allowlist: input
                .allowlist
                .clone()
                .or_else(|| Some(src.allowlist.clone())),
            ..input
        };
        let detail = Some(format!("clone of {source}"));
        self.write(actor, |tx| {
            create_in_with(tx, name, &prefilled, detail.clone())
        })
    }

    pub fn update(&self, actor: &Actor, name: &str, input: AccountInput) -> Result<Account> {
        self.target(actor, Permission::UpdateAccount, name)?;
        if input.template.is_some() {
            return Err(Error::Invalid(
                "--template only applies to user create".into(),
            ));
        }
        self.write(actor, |tx| update_in(tx, name, &input))
    }

    /// Keeps the console theme an account chose for itself (`T` in the
    /// console). Anyone logged in may choose their own; admins set others'
    /// with `user update --theme`.
    pub fn set_own_theme(&self, actor: &Actor, theme: &str) -> Result<Account> {
        if !actor.is_account {
            return Err(Error::Denied(
                "only an account keeps a theme (the local operator has none)".into(),
            ));
        }
        if !crate::domain::validate::THEMES.contains(&theme) {
            return Err(Error::Invalid(format!(
                "unknown theme '{theme}' (expected one of: {})",
                crate::domain::validate::THEMES.join(", ")
            )));
        }
        let name = actor.name.clone();
        let current = self.load(&name)?;
        if current.theme.as_deref() == Some(theme) {
            return Ok(current);
        }
        self.write(actor, |tx| {
            let old = tx.load(&name)?;
            let mut new = old.clone();
            new.theme = Some(theme.to_string());
            new.updated_at = tx.now;
            new.updated_by = tx.actor.name.clone();
            tx.put("user.update", Some(&old), Some(new.clone()), None);
            Ok(new)
        })
    }

    pub fn disable(
        &self,
        actor: &Actor,
        name: &str,
        reason: DisableReason,
        note: Option<String>,
    ) -> Result<Account> {
        self.target(actor, Permission::DisableAccount, name)?;
        if reason == DisableReason::Manual && note.as_deref().is_none_or(|n| n.trim().is_empty()) {
            return Err(Error::Invalid(
                "a reason is required (--reason TEXT)".into(),
            ));
        }
        self.transition(
            actor,
            name,
            "user.disable",
            Transition::Disable {
                reason,
                note: note.clone(),
            },
            note,
        )
    }

    pub fn enable(&self, actor: &Actor, name: &str) -> Result<Account> {
        self.target(actor, Permission::EnableAccount, name)?;
        self.transition(actor, name, "user.enable", Transition::Enable, None)
    }

    pub fn delete(&self, actor: &Actor, name: &str) -> Result<Account> {
        self.target(actor, Permission::DeleteAccount, name)?;
        if actor.name == name {
            return Err(Error::Conflict("you cannot delete your own account".into()));
        }
        self.transition(actor, name, "user.delete", Transition::Delete, None)
    }

    pub fn restore(&self, actor: &Actor, name: &str) -> Result<Account> {
        self.target(actor, Permission::RestoreAccount, name)?;
        self.transition(actor, name, "user.restore", Transition::Restore, None)
    }

    fn transition(
        &self,
        actor: &Actor,
        name: &str,
        action: &str,
        transition: Transition,
        detail: Option<String>,
    ) -> Result<Account> {
        if actor.name == name && matches!(transition, Transition::Disable { .. }) {
            return Err(Error::Conflict(
                "you cannot disable your own account".into(),
            ));
        }
        self.write(actor, |tx| {
            transition_in(tx, name, action, &transition, detail.clone())
        })
    }

    /// Removes a soft-deleted account for good. The audit trail keeps its history.
    pub fn purge(&self, actor: &Actor, name: &str) -> Result<()> {
        self.target(actor, Permission::PurgeAccount, name)?;
        self.write(actor, |tx| {
            let old = tx.load(name)?;
            lifecycle::apply(&old, &Transition::Purge, tx.now)
                .map_err(|e| Error::Conflict(e.to_string()))?;
            keep_an_admin(tx, &old, None, "purging it")?;
            purge_in(tx, &old, "user.purge", None)
        })
    }

    pub fn extend(&self, actor: &Actor, name: &str, end: NaiveDate) -> Result<Account> {
        self.target(actor, Permission::ExtendAccount, name)?;
        self.write(actor, |tx| extend_in(tx, name, end, None))
    }

    pub fn show(&self, actor: &Actor, name: &str) -> Result<Account> {
        self.target(actor, Permission::ReadAccount, name)
    }

    /// `user list`: sorted by username. A sponsor without wider rights sees
    /// only the accounts they sponsor.
    pub fn list(&self, actor: &Actor, filter: &ListFilter) -> Result<Vec<Account>> {
        let mut out = Vec::new();
        self.list_each(actor, filter, &mut |a| {
            out.push(a);
            Ok(())
        })?;
        Ok(out)
    }

    /// The accounts `actor` may see that match `filter`, in username order,
    /// handed to `visit` one at a time (a million of them never sit in
    /// memory together). The first error `visit` returns ends the walk.
    pub fn list_each(
        &self,
        actor: &Actor,
        filter: &ListFilter,
        visit: &mut dyn FnMut(Account) -> Result<()>,
    ) -> Result<()> {
        self.authorize(actor, Permission::ListAccounts, None)?;
        let wide = actor.has(Role::Admin) || actor.has(Role::Operator);
        let today = self.today();
        let sponsor = if wide {
            filter.sponsor.clone()
        } else {
            Some(actor.name.clone())
        };
        if !wide && filter.sponsor.as_ref().is_some_and(|s| s != &actor.name) {
            return Ok(());
        }
        // The indexes only narrow a sponsor's or an expiry filter's list; a
        // plain list walks the store without them (offline, nothing builds them).
        let candidates: Option<BTreeSet<String>> =
            if sponsor.is_none() && filter.expiring_within.is_none() {
                None
            } else {
                let guard = self.indexes()?;
                let indexes = guard
                    .as_ref()
                    .ok_or_else(|| Error::Failed("indexes not loaded".into()))?;
                let mut sets: Vec<BTreeSet<String>> = Vec::new();
                if let Some(s) = &sponsor {
                    sets.push(indexes.sponsored_by(s));
                }
                if let Some(days) = filter.expiring_within {
                    let until = today + Duration::days(i64::from(days));
                    sets.push(indexes.ending_between(today, until).into_iter().collect());
                }
                sets.into_iter()
                    .reduce(|a, b| a.intersection(&b).cloned().collect())
            };
        let status_filter = filter.status.as_deref().map(str::to_ascii_lowercase);
        if let Some(s) = &status_filter {
            if !lifecycle::STATUS_WORDS.contains(&s.as_str()) {
                return Err(Error::Invalid(format!(
                    "unknown status '{s}' (expected one of: {})",
                    lifecycle::STATUS_WORDS.join(", ")
                )));
            }
        }
        let keep = |a: &Account| {
            let effective = lifecycle::effective(a, today);
            let status_ok = status_filter
                .as_deref()
                .is_none_or(|s| effective.matches(s));
            status_ok
                && filter.kind.is_none_or(|k| a.kind == k)
                && filter
                    .project
                    .as_ref()
                    .is_none_or(|p| a.project.as_deref() == Some(p.as_str()))
                && (filter.expiring_within.is_none()
                    || matches!(effective, Effective::Active | Effective::Staged))
        };
        let limit = filter.limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(());
        }
        let after = filter.after.as_deref();
        let mut given = 0usize;
        match candidates {
            Some(names) => {
                let names = names
                    .into_iter()
                    .filter(|n| after.is_none_or(|a| n.as_str() > a));
                for name in names {
                    if let Some(account) = self.store().account(&name)? {
                        if keep(&account) {
                            visit(account)?;
                            given += 1;
                            if given >= limit {
                                break;
                            }
                        }
                    }
                }
            }
            None => {
                // Only when every account passes the filter does `limit` bound the walk.
                let unfiltered = status_filter.is_none()
                    && filter.kind.is_none()
                    && filter.project.is_none()
                    && filter.expiring_within.is_none();
                let wanted = filter.limit.filter(|_| unfiltered);
                self.each_account(after, wanted, &mut |account| {
                    if keep(&account) {
                        visit(account)?;
                        given += 1;
                    }
                    Ok(given < limit)
                })?;
            }
        }
        Ok(())
    }

    /// Every account, for export (admins and operators).
    pub fn export(&self, actor: &Actor) -> Result<Vec<Account>> {
        let mut out = Vec::new();
        self.export_each(actor, &mut |a| {
            out.push(a);
            Ok(())
        })?;
        Ok(out)
    }

    /// `export`, one account at a time.
    pub fn export_each(
        &self,
        actor: &Actor,
        visit: &mut dyn FnMut(Account) -> Result<()>,
    ) -> Result<()> {
        self.authorize(actor, Permission::Export, None)?;
        self.list_each(actor, &ListFilter::default(), visit)
    }
}

/// `user update` inside a transaction (SCIM's PUT and PATCH use it too).
pub(crate) fn update_in(tx: &mut Tx<'_>, name: &str, input: &AccountInput) -> Result<Account> {
    let old = tx.load(name)?;
    if old.status == Status::Deleted {
        return Err(Error::Conflict(format!(
            "{name} is deleted: restore it first"
        )));
    }
    super::sources::refuse_owned(tx.actor, &old, &super::sources::touched_fields(&old, input))?;
    let mut new = merge(old.clone(), input);
    if new == old {
        return Err(Error::Invalid(format!(
            "nothing to change for {name}: give at least one flag"
        )));
    }
    validate_in(tx, &old.username, &new, Some(&old), &[])?;
    if let Some(start) = input.start_date {
        if old.status == Status::Staged || old.status == Status::Active {
            new.status = lifecycle::initial_status(start, tx.today());
        }
    }
    keep_an_admin(tx, &old, Some(&new), "this change")?;
    new.updated_at = tx.now;
    new.updated_by = tx.actor.name.clone();
    tx.put("user.update", Some(&old), Some(new.clone()), None);
    Ok(new)
}

/// A lifecycle transition inside a transaction, with its notices.
pub(crate) fn transition_in(
    tx: &mut Tx<'_>,
    name: &str,
    action: &str,
    transition: &Transition,
    detail: Option<String>,
) -> Result<Account> {
    let old = tx.load(name)?;
    let mut new =
        lifecycle::apply(&old, transition, tx.now).map_err(|e| Error::Conflict(e.to_string()))?;
    let what = match transition {
        Transition::Disable { .. } => "disabling it",
        Transition::Delete => "deleting it",
        _ => "this change",
    };
    keep_an_admin(tx, &old, Some(&new), what)?;
    new.updated_at = tx.now;
    new.updated_by = tx.actor.name.clone();
    tx.put(action, Some(&old), Some(new.clone()), detail);
    match transition {
        Transition::Disable { .. } => tx.notify("disabled", &new, &[])?,
        Transition::Delete => tx.notify("deleted", &new, &[])?,
        _ => {}
    }
    Ok(new)
}

pub(super) fn prefix_row(e: Error, row: impl std::fmt::Display, name: &str) -> Error {
    let at = |m: String| format!("{row} ({name}): {m}");
    match e {
        Error::Invalid(m) => Error::Invalid(at(m)),
        Error::NotFound(m) => Error::NotFound(at(m)),
        Error::Conflict(m) => Error::Conflict(at(m)),
        Error::Denied(m) => Error::Denied(at(m)),
        Error::Failed(m) => Error::Failed(at(m)),
        other => other,
    }
}

pub(crate) fn create_group_in(
    tx: &mut Tx<'_>,
    name: &str,
    description: Option<String>,
) -> Result<()> {
    if tx.group_exists(name)? {
        return Ok(());
    }
    let group = Group {
        name: name.to_string(),
        description,
        created_at: tx.now,
        created_by: tx.actor.name.clone(),
    };
    tx.put_group(name, Some(group));
    tx.event("group.create", Some(name), vec![], None);
    Ok(())
}

/// Validation that needs other records: uniqueness, sponsor, groups.
/// Removes an account for good within `tx`. Accounts it sponsored lose their
/// sponsor (audited): a purged name may be reused, and must not become the
/// sponsor of strangers. They show up in the orphan report.
pub(crate) fn purge_in(
    tx: &mut Tx<'_>,
    old: &Account,
    action: &str,
    detail: Option<String>,
) -> Result<()> {
    let name = old.username.clone();
    for other in tx.sponsored_by(&name)? {
        let Some(sponsored) = tx.get(&other)? else {
            continue;
        };
        if sponsored.sponsor.as_deref() != Some(name.as_str()) {
            continue;
        }
        let mut detached = sponsored.clone();
        detached.sponsor = None;
        detached.updated_at = tx.now;
        detached.updated_by = tx.actor.name.clone();
        tx.put(
            "user.update",
            Some(&sponsored),
            Some(detached),
            Some(format!("sponsor {name} purged")),
        );
    }
    tx.put(action, Some(old), None, detail);
    // Its notification preferences go with it (a later account of the name starts afresh).
    tx.meta_remove(&super::digest::prefs_key(&name));
    Ok(())
}

/// Moves an account's end date inside a transaction (also used when an
/// extension request is approved): re-checks the kind's maximum.
pub(crate) fn extend_in(
    tx: &mut Tx<'_>,
    name: &str,
    end: NaiveDate,
    detail: Option<String>,
) -> Result<Account> {
    let old = tx.load(name)?;
    if old.status == Status::Deleted {
        return Err(Error::Conflict(format!(
            "{name} is deleted: restore it first"
        )));
    }
    if end < tx.today() {
        return Err(Error::Invalid(format!("end date {end} is in the past")));
    }
    super::sources::refuse_owned(tx.actor, &old, &["end_date".to_string()])?;
    let mut new = lifecycle::extend(&old, end, tx.today());
    validate_in(tx, name, &new, Some(&old), &[])?;
    new.updated_at = tx.now;
    new.updated_by = tx.actor.name.clone();
    tx.put("user.extend", Some(&old), Some(new.clone()), detail);
    Ok(new)
}

pub(crate) fn validate_in(
    tx: &Tx<'_>,
    name: &str,
    account: &Account,
    old: Option<&Account>,
    extra_required: &[String],
) -> Result<()> {
    let was_host = old.is_some_and(|o| o.roles.contains(&Role::Host));
    if account.roles.contains(&Role::Host) != was_host {
        return Err(Error::Invalid(
            "the role host comes with `host add NAME` and goes with `host remove NAME`".into(),
        ));
    }
    let config = tx.config();
    validate_account(
        account,
        &config.policy,
        &config.custom_fields,
        extra_required,
        tx.today(),
    )
    .map_err(Error::Invalid)?;
    if old.is_none_or(|o| o.email_key() != account.email_key()) {
        if let Some(owner) = tx.email_owner(&account.email)? {
            if owner != name {
                return Err(Error::Conflict(format!(
                    "email {} is already used by {owner}",
                    account.email
                )));
            }
        }
    }
    if let Some(sponsor) = &account.sponsor {
        if old.is_none_or(|o| o.sponsor.as_ref() != Some(sponsor)) {
            if sponsor == name {
                return Err(Error::Invalid("an account cannot sponsor itself".into()));
            }
            let Some(s) = tx.get(sponsor)? else {
                return Err(Error::NotFound(format!(
                    "sponsor '{sponsor}' does not exist"
                )));
            };
            if lifecycle::effective(&s, tx.today()) != Effective::Active {
                return Err(Error::Conflict(format!(
                    "sponsor '{sponsor}' is {}: a sponsor must be active",
                    lifecycle::effective(&s, tx.today()).as_str()
                )));
            }
        }
    }
    let old_groups = old.map(|o| o.groups.clone()).unwrap_or_default();
    for group in account.groups.difference(&old_groups) {
        if !tx.group_exists(group)? {
            return Err(Error::NotFound(format!(
                "group '{group}' does not exist (group create {group})"
            )));
        }
    }
    Ok(())
}

pub(crate) fn create_in(tx: &mut Tx<'_>, name: &str, input: &AccountInput) -> Result<Account> {
    let detail = input.template.as_ref().map(|t| format!("template {t}"));
    create_in_with(tx, name, input, detail)
}

fn create_in_with(
    tx: &mut Tx<'_>,
    name: &str,
    input: &AccountInput,
    detail: Option<String>,
) -> Result<Account> {
    validate_username(name).map_err(Error::Invalid)?;
    if tx.exists(name)? {
        return Err(Error::Conflict(format!(
            "an account named '{name}' already exists"
        )));
    }
    let template = match &input.template {
        Some(t) => Some(tx.config().templates.get(t).cloned().ok_or_else(|| {
            let known: Vec<&String> = tx.config().templates.keys().collect();
            Error::NotFound(format!("no template named '{t}' (known: {known:?})"))
        })?),
        None => None,
    };
    let display_name = input.display_name.clone().filter(|s| !s.trim().is_empty());
    let email = input.email.clone().filter(|s| !s.trim().is_empty());
    let (Some(display_name), Some(email)) = (display_name, email) else {
        return Err(Error::Invalid(
            "--email and --display-name are required".into(),
        ));
    };
    let kind = input
        .kind
        .or(template.as_ref().and_then(|t| t.kind))
        .ok_or_else(|| {
            Error::Invalid("--kind is required (or a --template that sets it)".into())
        })?;
    let today = tx.today();
    let start = input.start_date.unwrap_or(today);
    let end = input.end_date.or_else(|| {
        let days = template.as_ref()?.duration_days?;
        Some(start + Duration::days(i64::from(days)))
    });
    let now = tx.now;
    let mut base = Account {
        username: name.to_string(),
        display_name,
        email,
        kind,
        company: template.as_ref().and_then(|t| t.company.clone()),
        sponsor: None,
        project: template.as_ref().and_then(|t| t.project.clone()),
        start_date: start,
        end_date: end,
        groups: template
            .as_ref()
            .map(|t| t.groups.clone())
            .unwrap_or_default(),
        roles: template
            .as_ref()
            .map(|t| t.roles.clone())
            .unwrap_or_default(),
        fields: template
            .as_ref()
            .map(|t| t.fields.clone())
            .unwrap_or_default(),
        timezone: None,
        language: None,
        theme: None,
        notes: None,
        allowlist: vec![],
        inactivity_exempt: false,
        credentials: Default::default(),
        status: lifecycle::initial_status(start, today),
        disable_reason: None,
        disable_note: None,
        disabled_at: None,
        deleted_at: None,
        created_at: now,
        created_by: tx.actor.name.clone(),
        updated_at: now,
        updated_by: tx.actor.name.clone(),
        last_login: None,
        warnings_sent: Default::default(),
        uid_number: None,
        source: None,
    };
    // Explicit groups add to the template's.
    let explicit_groups = input.groups.clone();
    let mut merged_input = input.clone();
    merged_input.groups = None;
    base = merge(base, &merged_input);
    if let Some(groups) = explicit_groups {
        base.groups
            .extend(groups.into_iter().map(|g| g.trim().to_string()));
    }
    if base.roles.is_empty() {
        base.roles.insert(Role::User);
    }
    if let Some(t) = &template {
        for group in &t.groups {
            create_group_in(tx, group, Some("from a config template".into()))?;
        }
    }
    let extra_required = template
        .as_ref()
        .map(|t| t.required_fields.clone())
        .unwrap_or_default();
    validate_in(tx, name, &base, None, &extra_required)?;
    if base.end_date.is_some_and(|end| end < today) {
        return Err(Error::Invalid(format!(
            "end date {} is in the past",
            base.end_date.unwrap_or(today)
        )));
    }
    tx.put("user.create", None, Some(base.clone()), detail);
    tx.notify("created", &base, &[])?;
    Ok(base)
}

impl Services {
    /// The account holding `email` (case-insensitive), through the index.
    pub fn find_by_email(&self, email: &str) -> Result<Option<Account>> {
        let owner = {
            let guard = self.indexes()?;
            guard
                .as_ref()
                .and_then(|i| i.email_owner(&email.to_lowercase()))
        };
        match owner {
            Some(name) => Ok(self.store().account(&name)?),
            None => Ok(None),
        }
    }

    /// The account holding the key with this `SHA256:` fingerprint.
    pub fn find_by_fingerprint(&self, fingerprint: &str) -> Result<Option<Account>> {
        let owner = {
            let guard = self.indexes()?;
            guard
                .as_ref()
                .and_then(|i| i.fingerprint_owner(fingerprint))
        };
        match owner {
            Some(name) => Ok(self.store().account(&name)?),
            None => Ok(None),
        }
    }
}
