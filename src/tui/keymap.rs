//! The one key map: the input handler reads it and the help screen shows it.
//! Bindings belong to a scope; a screen looks in its own scopes first, then
//! in `Everywhere`, so `d` can mean "disable" on an account and "remove" on a
//! key without a special case in the handler.

use crate::service::authz::Permission;
use crate::term::input::Key;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Open,
    Back,
    Search,
    Filter,
    Sort,
    Reverse,
    Mark,
    MarkAll,
    Disable,
    Enable,
    Extend,
    Delete,
    Restore,
    Purge,
    Create,
    Clone,
    Keys,
    AddKey,
    RemoveKey,
    Tokens,
    RevokeToken,
    Password,
    Totp,
    Refresh,
    Lifecycle,
    Orphans,
    Requests,
    Outbox,
    Approve,
    Deny,
    Sessions,
    Kill,
    Lockouts,
    Unlock,
    Connectors,
    RetryConnector,
    ReconcileConnector,
    Hosts,
    RemoveHost,
    Cert,
    Audit,
    Command,
    Theme,
    Help,
    Quit,
}

impl Action {
    /// The service permission an action needs, for those that read or change
    /// accounts. The console offers an action only where `authz::allowed`
    /// grants it (the rule the service enforces, and the authorisation table
    /// in `cli::authz_table` pins); the service still decides every call.
    pub fn permission(self) -> Option<Permission> {
        Some(match self {
            Action::Disable => Permission::DisableAccount,
            Action::Enable => Permission::EnableAccount,
            Action::Extend => Permission::ExtendAccount,
            Action::Delete => Permission::DeleteAccount,
            Action::Restore => Permission::RestoreAccount,
            Action::Purge => Permission::PurgeAccount,
            Action::Create | Action::Clone => Permission::CreateAccount,
            Action::Keys => Permission::ReadKeys,
            Action::AddKey => Permission::AddKey,
            Action::RemoveKey => Permission::RemoveKey,
            Action::Tokens | Action::RevokeToken => Permission::ManageTokens,
            Action::Password => Permission::SetPassword,
            Action::Totp => Permission::ManageTotp,
            Action::Kill => Permission::KillSession,
            Action::Approve | Action::Deny => Permission::DecideRequest,
            Action::Audit | Action::Outbox => Permission::ReadAudit,
            Action::Lifecycle => Permission::PreviewLifecycle,
            Action::Lockouts => Permission::ReadLockouts,
            Action::Unlock => Permission::Unlock,
            Action::Hosts => Permission::ReadHosts,
            Action::RemoveHost => Permission::ManageHosts,
            Action::Cert => Permission::IssueCert,
            Action::Orphans => Permission::Export,
            Action::Connectors => Permission::ReadConnectors,
            Action::RetryConnector => Permission::RetryConnector,
            Action::ReconcileConnector => Permission::ReconcileConnector,
            _ => return None,
        })
    }
}

/// Where a binding applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Everywhere,
    /// The accounts table.
    Accounts,
    /// An account: the selected row or the open detail.
    Account,
    Keys,
    Tokens,
    Sessions,
    Requests,
    Audit,
    Lockouts,
    Connectors,
    Hosts,
}

impl Scope {
    pub fn title(self) -> &'static str {
        match self {
            Scope::Everywhere => "everywhere",
            Scope::Accounts => "accounts table",
            Scope::Account => "an account (row or detail)",
            Scope::Keys => "keys",
            Scope::Tokens => "API tokens",
            Scope::Sessions => "sessions",
            Scope::Requests => "requests",
            Scope::Audit => "audit",
            Scope::Lockouts => "login lockouts",
            Scope::Connectors => "connectors",
            Scope::Hosts => "hosts",
        }
    }
}

pub struct Binding {
    pub scope: Scope,
    pub keys: &'static [Key],
    pub label: &'static str,
    pub action: Action,
    pub help: &'static str,
}

const fn b(
    scope: Scope,
    keys: &'static [Key],
    label: &'static str,
    action: Action,
    help: &'static str,
) -> Binding {
    Binding {
        scope,
        keys,
        label,
        action,
        help,
    }
}

use Scope::*;

pub const KEYMAP: &[Binding] = &[
    b(
        Everywhere,
        &[Key::Up, Key::Char('k')],
        "↑ k",
        Action::Up,
        "previous row",
    ),
    b(
        Everywhere,
        &[Key::Down, Key::Char('j')],
        "↓ j",
        Action::Down,
        "next row",
    ),
    b(
        Everywhere,
        &[Key::PageUp, Key::Ctrl('b')],
        "PgUp ^b",
        Action::PageUp,
        "previous page",
    ),
    b(
        Everywhere,
        &[Key::PageDown, Key::Ctrl('f')],
        "PgDn ^f",
        Action::PageDown,
        "next page",
    ),
    b(
        Everywhere,
        &[Key::Home, Key::Char('g')],
        "Home g",
        Action::Top,
        "first row",
    ),
    b(
        Everywhere,
        &[Key::End, Key::Char('G')],
        "End G",
        Action::Bottom,
        "last row",
    ),
    b(
        Everywhere,
        &[Key::Esc],
        "Esc",
        Action::Back,
        "back; clears the search and marks",
    ),
    b(
        Everywhere,
        &[Key::Char(':')],
        ":",
        Action::Command,
        "command line (the ssh exec grammar)",
    ),
    b(
        Everywhere,
        &[Key::Char('n')],
        "n",
        Action::Create,
        "new account (form)",
    ),
    b(
        Everywhere,
        &[Key::Char('S')],
        "S",
        Action::Sessions,
        "live sessions (refresh by themselves)",
    ),
    b(
        Everywhere,
        &[Key::Char('B')],
        "B",
        Action::Lockouts,
        "login lockouts",
    ),
    b(
        Lockouts,
        &[Key::Char('u')],
        "u",
        Action::Unlock,
        "lift a lockout",
    ),
    b(
        Everywhere,
        &[Key::Char('C')],
        "C",
        Action::Connectors,
        "connectors: targets in sync, pending, failed",
    ),
    b(
        Connectors,
        &[Key::Enter],
        "Enter",
        Action::Open,
        "its failed and drifted accounts",
    ),
    b(
        Connectors,
        &[Key::Char('r')],
        "r",
        Action::RetryConnector,
        "retry a connector's waiting jobs now",
    ),
    b(
        Connectors,
        &[Key::Char('R')],
        "R",
        Action::ReconcileConnector,
        "reconcile: dry run, then fix if confirmed",
    ),
    b(
        Everywhere,
        &[Key::Char('H')],
        "H",
        Action::Hosts,
        "hosts and who may log in on them",
    ),
    b(
        Hosts,
        &[Key::Char('d')],
        "d",
        Action::RemoveHost,
        "remove a host",
    ),
    b(
        Everywhere,
        &[Key::Char('A')],
        "A",
        Action::Audit,
        "audit trail with the chain check",
    ),
    b(
        Everywhere,
        &[Key::Char('L')],
        "L",
        Action::Lifecycle,
        "lifecycle plan, next 30 days",
    ),
    b(
        Everywhere,
        &[Key::Char('O')],
        "O",
        Action::Orphans,
        "orphans: nobody accountable",
    ),
    b(
        Everywhere,
        &[Key::Char('R')],
        "R",
        Action::Requests,
        "extension requests",
    ),
    b(
        Everywhere,
        &[Key::Char('N')],
        "N",
        Action::Outbox,
        "notifications not yet delivered",
    ),
    b(
        Everywhere,
        &[Key::Char('r'), Key::Ctrl('r')],
        "r",
        Action::Refresh,
        "refresh now",
    ),
    b(
        Everywhere,
        &[Key::Char('T')],
        "T",
        Action::Theme,
        "next colour theme",
    ),
    b(
        Everywhere,
        &[Key::Char('?'), Key::F(1)],
        "? F1",
        Action::Help,
        "this help",
    ),
    b(
        Everywhere,
        &[Key::Char('q'), Key::Ctrl('c')],
        "q ^c",
        Action::Quit,
        "quit",
    ),
    b(
        Accounts,
        &[Key::Enter],
        "Enter",
        Action::Open,
        "open the account",
    ),
    b(
        Accounts,
        &[Key::Char('/')],
        "/",
        Action::Search,
        "search as you type",
    ),
    b(
        Accounts,
        &[Key::Char('f')],
        "f",
        Action::Filter,
        "filter: status= kind= sponsor= project= expiring=",
    ),
    b(
        Accounts,
        &[Key::Char('s')],
        "s",
        Action::Sort,
        "sort by the next column",
    ),
    b(
        Accounts,
        &[Key::Char('i')],
        "i",
        Action::Reverse,
        "reverse the order",
    ),
    b(
        Accounts,
        &[Key::Char(' ')],
        "Space",
        Action::Mark,
        "mark the row (bulk disable/extend)",
    ),
    b(
        Accounts,
        &[Key::Ctrl('a')],
        "^a",
        Action::MarkAll,
        "mark every match (up to 1,000)",
    ),
    b(
        Account,
        &[Key::Char('d')],
        "d",
        Action::Disable,
        "disable (reason, then confirm)",
    ),
    b(
        Account,
        &[Key::Char('e')],
        "e",
        Action::Enable,
        "enable (confirms)",
    ),
    b(
        Account,
        &[Key::Char('x')],
        "x",
        Action::Extend,
        "extend: new end date (confirms)",
    ),
    b(
        Account,
        &[Key::Char('D')],
        "D",
        Action::Delete,
        "delete, restorable (confirms)",
    ),
    b(
        Account,
        &[Key::Char('u')],
        "u",
        Action::Restore,
        "restore a deleted account (confirms)",
    ),
    b(
        Account,
        &[Key::Char('P')],
        "P",
        Action::Purge,
        "purge for good (type the name)",
    ),
    b(
        Account,
        &[Key::Char('K')],
        "K",
        Action::Kill,
        "kill the account's live sessions",
    ),
    b(
        Account,
        &[Key::Char('c')],
        "c",
        Action::Clone,
        "clone into a new account (form)",
    ),
    b(
        Account,
        &[Key::Char('p')],
        "p",
        Action::Keys,
        "public keys of the account",
    ),
    b(
        Account,
        &[Key::Char('o')],
        "o",
        Action::Tokens,
        "API tokens of the account",
    ),
    b(
        Account,
        &[Key::Char('w')],
        "w",
        Action::Password,
        "set the password",
    ),
    b(
        Account,
        &[Key::Char('t')],
        "t",
        Action::Totp,
        "enrol TOTP (shows the QR code)",
    ),
    b(
        Account,
        &[Key::Char('I')],
        "I",
        Action::Cert,
        "SSH certificate from tenure's CA",
    ),
    b(
        Keys,
        &[Key::Char('a'), Key::Insert],
        "a",
        Action::AddKey,
        "add a key (paste the line)",
    ),
    b(
        Keys,
        &[Key::Char('d'), Key::Delete],
        "d Del",
        Action::RemoveKey,
        "remove the key (confirms)",
    ),
    b(
        Tokens,
        &[Key::Char('d'), Key::Delete],
        "d Del",
        Action::RevokeToken,
        "revoke the token (confirms)",
    ),
    b(
        Sessions,
        &[Key::Char('K'), Key::Char('d')],
        "K d",
        Action::Kill,
        "kill the session (confirms)",
    ),
    b(
        Requests,
        &[Key::Char('a')],
        "a",
        Action::Approve,
        "approve (confirms)",
    ),
    b(
        Requests,
        &[Key::Char('x')],
        "x",
        Action::Deny,
        "deny (asks a reason)",
    ),
    b(
        Audit,
        &[Key::Char('f'), Key::Char('/')],
        "f /",
        Action::Filter,
        "filter: actor= target= action=",
    ),
];

/// The action `key` means in `scopes` (most specific first), or everywhere.
pub fn action_for(scopes: &[Scope], key: &Key) -> Option<Action> {
    scopes
        .iter()
        .chain(std::iter::once(&Everywhere))
        .find_map(|scope| {
            KEYMAP
                .iter()
                .find(|b| b.scope == *scope && b.keys.contains(key))
                .map(|b| b.action)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_means_two_things_in_one_scope_or_shadows_a_global_one_by_accident() {
        for (i, a) in KEYMAP.iter().enumerate() {
            for b in &KEYMAP[i + 1..] {
                if a.scope == b.scope {
                    for k in a.keys {
                        assert!(!b.keys.contains(k), "{k:?} bound twice in {:?}", a.scope);
                    }
                }
            }
        }
        // Scoped bindings may shadow only these global keys: on the
        // connectors screen `r` retries and `R` reconciles (issue 11 names
        // them); refresh and requests are one Esc away.
        let intended = [(Connectors, Key::Char('r')), (Connectors, Key::Char('R'))];
        for a in KEYMAP.iter().filter(|b| b.scope != Everywhere) {
            for k in a.keys {
                if intended.contains(&(a.scope, k.clone())) {
                    continue;
                }
                if let Some(global) = action_for(&[], k) {
                    panic!("{k:?} in {:?} shadows the global {global:?}", a.scope);
                }
            }
        }
    }

    #[test]
    fn scopes_decide_what_a_key_does() {
        let d = Key::Char('d');
        assert_eq!(action_for(&[Account], &d), Some(Action::Disable));
        assert_eq!(action_for(&[Keys], &d), Some(Action::RemoveKey));
        assert_eq!(action_for(&[Sessions], &d), Some(Action::Kill));
        assert_eq!(action_for(&[Audit], &d), None);
        assert_eq!(action_for(&[Audit], &Key::Char('q')), Some(Action::Quit));
    }
}
