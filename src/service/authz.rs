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
    /// Issue a one-time enrolment code by mail (`password reset`).
    ResetPassword,
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
    /// See every account's planned lifecycle actions (names included).
    PreviewLifecycle,
    RequestExtension,
    /// Ask for new accounts (`request create`, `request import`).
    RequestAccount,
    /// Change an account's notification preferences (`prefs set`).
    ManagePreferences,
    DecideRequest,
    ReadLockouts,
    Unlock,
    Backup,
    /// See connectors, their links and queued jobs.
    ReadConnectors,
    /// Make a connector's waiting jobs due now.
    RetryConnector,
    /// Read a target back and fix what differs (admins only).
    ReconcileConnector,
    /// See the directory sources and their last runs.
    ReadSources,
    /// Run a directory sync (admins only).
    SyncSource,
    /// See the registered hosts and who may log in on them.
    ReadHosts,
    /// Register and remove hosts.
    ManageHosts,
    /// What a host asks (authorized keys, the revocation list): hosts only.
    HostQuery,
    /// Have a certificate issued for an account's key.
    IssueCert,
    /// Run commands or open the console (every account but a host).
    Commands,
    /// Create, list and revoke API tokens (one's own, or anyone's for an admin).
    ManageTokens,
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
            Permission::ResetPassword => "reset the password of",
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
            Permission::PreviewLifecycle => "preview the lifecycle plan",
            Permission::RequestExtension => "request an extension for",
            Permission::RequestAccount => "request accounts",
            Permission::ManagePreferences => "change the notification preferences of",
            Permission::DecideRequest => "decide requests",
            Permission::ReadLockouts => "read the login lockouts",
            Permission::Unlock => "lift login lockouts",
            Permission::Backup => "take a backup",
            Permission::ReadConnectors => "read the connectors",
            Permission::RetryConnector => "retry connector jobs",
            Permission::ReconcileConnector => "reconcile a connector",
            Permission::ReadSources => "read the directory sources",
            Permission::SyncSource => "run a directory sync",
            Permission::ReadHosts => "read the hosts",
            Permission::ManageHosts => "manage hosts",
            Permission::HostQuery => "ask what a host asks",
            Permission::IssueCert => "have a certificate issued for",
            Permission::Commands => "run commands or open the console (a host only asks for keys)",
            Permission::ManageTokens => "manage the API tokens of",
        }
    }
}

/// How senior a role is: admin > operator > sponsor > user.
pub fn rank(role: Role) -> u8 {
    match role {
        Role::Admin => 3,
        Role::Operator => 2,
        Role::Sponsor => 1,
        Role::User | Role::Host => 0,
    }
}

/// The rank of an account's highest role (an account without roles is a user).
pub fn highest_rank(account: &Account) -> u8 {
    account.roles.iter().copied().map(rank).max().unwrap_or(0)
}

/// What an operator may do to another account to cut its access — only to
/// accounts whose highest role is below operator.
fn cuts_access(permission: Permission) -> bool {
    matches!(
        permission,
        Permission::DisableAccount | Permission::RemoveKey | Permission::KillSession
    )
}

/// May `actor` do `permission`, to `target` if the permission is about one account?
/// Without a target the answer is whether the actor may do it to some account.
pub fn allowed(actor: &Actor, permission: Permission, target: Option<&Account>) -> bool {
    use Permission::*;
    // A host asks for keys and the revocation list, and nothing else,
    // whatever other role it may have been given.
    if actor.has(Role::Host) {
        return permission == HostQuery;
    }
    if permission == HostQuery {
        return false;
    }
    if permission == Commands {
        return true;
    }
    // An API token narrows its owner's rights to its scope.
    if let super::Source::Http {
        scope: Some(scope), ..
    } = &actor.source
    {
        if !scope.permits(permission) {
            return false;
        }
    }
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
            | PreviewLifecycle
            | ReadLockouts
            | ReadConnectors
            | ReadSources
            | ReadHosts
    );
    if operator && (reads || permission == RetryConnector) {
        return true;
    }
    let below_operator = target.is_none_or(|t| highest_rank(t) < rank(Role::Operator));
    if operator && cuts_access(permission) && below_operator {
        return true;
    }
    if actor.has(Role::Sponsor)
        && sponsors
        && matches!(permission, ReadAccount | ReadKeys | ReadAllowlist)
    {
        return true;
    }
    // Asking for accounts: those who may not create them but vouch for people.
    if permission == RequestAccount && (actor.has(Role::Sponsor) || operator) {
        return true;
    }
    // A reset code for a sponsored account: its sponsor (and admins).
    if actor.has(Role::Sponsor) && sponsors && permission == ResetPassword {
        return true;
    }
    // Asking for more time: the account itself or its sponsor (an admin decides).
    if permission == RequestExtension && (is_self || sponsors) {
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
            ReadAccount
                | ReadKeys
                | AddKey
                | RemoveKey
                | SetPassword
                | ReadAllowlist
                | ManageTotp
                | ManagePreferences
                | KillSession
                | IssueCert
                | ManageTokens
        )
}

/// Why `allowed` said no, when a rule beyond "not your permission" decided
/// it (said in the refusal, so the person knows it is the target's role).
pub fn refusal_reason(
    actor: &Actor,
    permission: Permission,
    target: Option<&Account>,
) -> Option<String> {
    let t = target?;
    let is_self = actor.is_account && t.username == actor.name;
    (actor.has(Role::Operator)
        && !actor.has(Role::Admin)
        && !is_self
        && cuts_access(permission)
        && highest_rank(t) >= rank(Role::Operator))
    .then(|| {
        let role = t
            .roles
            .iter()
            .copied()
            .max_by_key(|r| rank(*r))
            .unwrap_or(Role::User);
        format!(
            "{} is {role}: operators act only on accounts whose roles are below operator",
            t.username
        )
    })
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

    fn account(name: &str, roles: &[Role]) -> Account {
        let mut a: Account = serde_json::from_value(serde_json::json!({
            "username": name, "display_name": "A", "email": "a@x.io", "kind": "employee",
            "start_date": "2026-01-01", "status": "active",
            "created_at": "2026-01-01T00:00:00Z", "created_by": "x",
            "updated_at": "2026-01-01T00:00:00Z", "updated_by": "x"
        }))
        .unwrap();
        a.roles = roles.iter().copied().collect();
        a
    }

    #[test]
    fn operators_cut_access_only_below_their_own_role() {
        let op = actor("olga", Role::Operator);
        for roles in [&[Role::User][..], &[Role::Sponsor], &[]] {
            let t = account("bob", roles);
            for p in [
                Permission::DisableAccount,
                Permission::RemoveKey,
                Permission::KillSession,
            ] {
                assert!(allowed(&op, p, Some(&t)), "{p:?} on {roles:?}");
                assert_eq!(refusal_reason(&op, p, Some(&t)), None);
            }
        }
        for roles in [
            &[Role::Admin][..],
            &[Role::Operator],
            &[Role::User, Role::Admin],
        ] {
            let t = account("root", roles);
            for p in [
                Permission::DisableAccount,
                Permission::RemoveKey,
                Permission::KillSession,
            ] {
                assert!(!allowed(&op, p, Some(&t)), "{p:?} on {roles:?}");
                let why = refusal_reason(&op, p, Some(&t)).unwrap();
                assert!(why.contains("below operator"), "{why}");
            }
            // Reading stays open: an operator finds anyone.
            assert!(allowed(&op, Permission::ReadAccount, Some(&t)));
        }
        // Their own keys are self-service, whatever their role.
        let own = account("olga", &[Role::Operator]);
        assert!(allowed(&op, Permission::RemoveKey, Some(&own)));
        assert!(!allowed(&op, Permission::DisableAccount, Some(&own)));
        assert_eq!(
            refusal_reason(&op, Permission::DisableAccount, Some(&own)),
            None
        );
        // An admin is bound by none of this.
        let admin = actor("root", Role::Admin);
        assert!(allowed(
            &admin,
            Permission::DisableAccount,
            Some(&account("x", &[Role::Admin]))
        ));
    }
}
