//! Who may do what. Checked here, in the service layer, for every front door;
//! anything not granted below is refused.

use super::Actor;
use crate::domain::{Account, Role};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    ReadAccount,
    ListAccounts,
    CreateAccount,
    UpdateAccount,
    DisableAccount,
    EnableAccount,
    ExtendAccount,
    DeleteAccount,
    RestoreAccount,
    PurgeAccount,
    ReadKeys,
    AddKey,
    RemoveKey,
    SetPassword,
    ReadAllowlist,
    ChangeAllowlist,
    ReadGroups,
    ChangeGroups,
    ReadAudit,
    Export,
    Check,
    KillSession,
    ManageTotp,
    RunLifecycle,
    RequestExtension,
    DecideRequest,
    ReadLockouts,
    Unlock,
}

impl Permission {
    pub fn describe(self) -> &'static str {
        match self {
            Permission::ReadAccount => "read account",
            Permission::ListAccounts => "list accounts",
            Permission::CreateAccount => "create accounts",
            Permission::UpdateAccount => "update account",
            Permission::DisableAccount => "disable account",
            Permission::EnableAccount => "enable account",
            Permission::ExtendAccount => "extend account",
            Permission::DeleteAccount => "delete account",
            Permission::RestoreAccount => "restore account",
            Permission::PurgeAccount => "purge account",
            Permission::ReadKeys => "read the keys of",
            Permission::AddKey => "add a key to",
            Permission::RemoveKey => "remove a key from",
            Permission::SetPassword => "set the password of",
            Permission::ReadAllowlist => "read the allowlist of",
            Permission::ChangeAllowlist => "change the allowlist of",
            Permission::ReadGroups => "read groups",
            Permission::ChangeGroups => "change groups",
            Permission::ReadAudit => "read the audit trail",
            Permission::Export => "export accounts",
            Permission::Check => "check the database",
            Permission::KillSession => "kill the sessions of",
            Permission::ManageTotp => "manage TOTP of",
            Permission::RunLifecycle => "run the lifecycle sweep",
            Permission::RequestExtension => "request an extension for",
            Permission::DecideRequest => "decide requests",
            Permission::ReadLockouts => "read the login lockouts",
            Permission::Unlock => "lift login lockouts",
        }
    }
}

/// May `actor` do `permission`, to `target` if the permission is about one account?
pub fn allowed(actor: &Actor, permission: Permission, target: Option<&Account>) -> bool {
    use Permission::*;
    if actor.has(Role::Admin) {
        return true;
    }
    let is_self = target.is_some_and(|t| actor.is_account && t.username == actor.name);
    let sponsors = target
        .is_some_and(|t| actor.is_account && t.sponsor.as_deref() == Some(actor.name.as_str()));
    let operator = actor.has(Role::Operator);
    let reads = matches!(
        permission,
        ReadAccount
            | ListAccounts
            | ReadKeys
            | ReadAllowlist
            | ReadGroups
            | ReadAudit
            | Export
            | ReadLockouts
    );
    if operator && (reads || matches!(permission, DisableAccount | RemoveKey | KillSession)) {
        return true;
    }
    if actor.has(Role::Sponsor)
        && sponsors
        && matches!(permission, ReadAccount | ReadKeys | ReadAllowlist)
    {
        return true;
    }
    if actor.has(Role::Sponsor) && permission == ListAccounts {
        // The service narrows the list to the sponsor's own accounts.
        return true;
    }
    // Self-service for every account holder.
    is_self
        && matches!(
            permission,
            ReadAccount | ReadKeys | AddKey | RemoveKey | SetPassword | ReadAllowlist | ManageTotp
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Source;
    use std::collections::BTreeSet;

    fn actor(name: &str, role: Role) -> Actor {
        Actor {
            name: name.into(),
            roles: BTreeSet::from([role]),
            source: Source::Cli,
            session: None,
            is_account: true,
        }
    }

    #[test]
    fn users_only_serve_themselves() {
        let alice = actor("alice", Role::User);
        let mut own: Account = serde_json::from_value(serde_json::json!({
            "username": "alice", "display_name": "A", "email": "a@x.io", "kind": "contractor",
            "start_date": "2026-01-01", "status": "active",
            "created_at": "2026-01-01T00:00:00Z", "created_by": "x",
            "updated_at": "2026-01-01T00:00:00Z", "updated_by": "x"
        }))
        .unwrap();
        assert!(allowed(&alice, Permission::AddKey, Some(&own)));
        assert!(allowed(&alice, Permission::SetPassword, Some(&own)));
        assert!(allowed(&alice, Permission::ManageTotp, Some(&own)));
        assert!(!allowed(&alice, Permission::DisableAccount, Some(&own)));
        own.username = "bob".into();
        assert!(!allowed(&alice, Permission::AddKey, Some(&own)));
        assert!(!allowed(&alice, Permission::ReadAccount, Some(&own)));
        assert!(!allowed(&alice, Permission::ListAccounts, None));
    }

    #[test]
    fn operators_read_and_cut_access_but_do_not_create() {
        let op = actor("olga", Role::Operator);
        assert!(allowed(&op, Permission::ListAccounts, None));
        assert!(allowed(&op, Permission::DisableAccount, None));
        assert!(allowed(&op, Permission::RemoveKey, None));
        assert!(!allowed(&op, Permission::CreateAccount, None));
        assert!(!allowed(&op, Permission::EnableAccount, None));
        assert!(!allowed(&op, Permission::PurgeAccount, None));
    }
}
