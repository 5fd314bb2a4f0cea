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
    /// The catalogue key of the scope's heading on the help screen.
    pub fn title(self) -> &'static str {
        match self {
            Scope::Everywhere => "scopes.everywhere",
            Scope::Accounts => "scopes.accounts",
            Scope::Account => "scopes.account",
            Scope::Keys => "scopes.keys",
            Scope::Tokens => "scopes.tokens",
            Scope::Sessions => "scopes.sessions",
            Scope::Requests => "scopes.requests",
            Scope::Audit => "scopes.audit",
            Scope::Lockouts => "scopes.lockouts",
            Scope::Connectors => "scopes.connectors",
            Scope::Hosts => "scopes.hosts",
        }
    }
}

pub struct Binding {
    pub scope: Scope,
    pub keys: &'static [Key],
    pub label: &'static str,
    pub action: Action,
    /// The catalogue key of what the binding does (`assets/i18n`).
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
        "keys.everywhere.up",
    ),
    b(
        Everywhere,
        &[Key::Down, Key::Char('j')],
        "↓ j",
        Action::Down,
        "keys.everywhere.down",
    ),
    b(
        Everywhere,
        &[Key::PageUp, Key::Ctrl('b')],
        "PgUp ^b",
        Action::PageUp,
        "keys.everywhere.page_up",
    ),
    b(
        Everywhere,
        &[Key::PageDown, Key::Ctrl('f')],
        "PgDn ^f",
        Action::PageDown,
        "keys.everywhere.page_down",
    ),
    b(
        Everywhere,
        &[Key::Home, Key::Char('g')],
        "Home g",
        Action::Top,
        "keys.everywhere.top",
    ),
    b(
        Everywhere,
        &[Key::End, Key::Char('G')],
        "End G",
        Action::Bottom,
        "keys.everywhere.bottom",
    ),
    b(
        Everywhere,
        &[Key::Esc],
        "Esc",
        Action::Back,
        "keys.everywhere.back",
    ),
    b(
        Everywhere,
        &[Key::Char(':')],
        ":",
        Action::Command,
        "keys.everywhere.command",
    ),
    b(
        Everywhere,
        &[Key::Char('n')],
        "n",
        Action::Create,
        "keys.everywhere.create",
    ),
    b(
        Everywhere,
        &[Key::Char('S')],
        "S",
        Action::Sessions,
        "keys.everywhere.sessions",
    ),
    b(
        Everywhere,
        &[Key::Char('B')],
        "B",
        Action::Lockouts,
        "keys.everywhere.lockouts",
    ),
    b(
        Lockouts,
        &[Key::Char('u')],
        "u",
        Action::Unlock,
        "keys.lockouts.unlock",
    ),
    b(
        Everywhere,
        &[Key::Char('C')],
        "C",
        Action::Connectors,
        "keys.everywhere.connectors",
    ),
    b(
        Connectors,
        &[Key::Enter],
        "Enter",
        Action::Open,
        "keys.connectors.open",
    ),
    b(
        Connectors,
        &[Key::Char('r')],
        "r",
        Action::RetryConnector,
        "keys.connectors.retry_connector",
    ),
    b(
        Connectors,
        &[Key::Char('R')],
        "R",
        Action::ReconcileConnector,
        "keys.connectors.reconcile_connector",
    ),
    b(
        Everywhere,
        &[Key::Char('H')],
        "H",
        Action::Hosts,
        "keys.everywhere.hosts",
    ),
    b(
        Hosts,
        &[Key::Char('d')],
        "d",
        Action::RemoveHost,
        "keys.hosts.remove_host",
    ),
    b(
        Everywhere,
        &[Key::Char('A')],
        "A",
        Action::Audit,
        "keys.everywhere.audit",
    ),
    b(
        Everywhere,
        &[Key::Char('L')],
        "L",
        Action::Lifecycle,
        "keys.everywhere.lifecycle",
    ),
    b(
        Everywhere,
        &[Key::Char('O')],
        "O",
        Action::Orphans,
        "keys.everywhere.orphans",
    ),
    b(
        Everywhere,
        &[Key::Char('R')],
        "R",
        Action::Requests,
        "keys.everywhere.requests",
    ),
    b(
        Everywhere,
        &[Key::Char('N')],
        "N",
        Action::Outbox,
        "keys.everywhere.outbox",
    ),
    b(
        Everywhere,
        &[Key::Char('r'), Key::Ctrl('r')],
        "r",
        Action::Refresh,
        "keys.everywhere.refresh",
    ),
    b(
        Everywhere,
        &[Key::Char('T')],
        "T",
        Action::Theme,
        "keys.everywhere.theme",
    ),
    b(
        Everywhere,
        &[Key::Char('?'), Key::F(1)],
        "? F1",
        Action::Help,
        "keys.everywhere.help",
    ),
    b(
        Everywhere,
        &[Key::Char('q'), Key::Ctrl('c')],
        "q ^c",
        Action::Quit,
        "keys.everywhere.quit",
    ),
    b(
        Accounts,
        &[Key::Enter],
        "Enter",
        Action::Open,
        "keys.accounts.open",
    ),
    b(
        Accounts,
        &[Key::Char('/')],
        "/",
        Action::Search,
        "keys.accounts.search",
    ),
    b(
        Accounts,
        &[Key::Char('f')],
        "f",
        Action::Filter,
        "keys.accounts.filter",
    ),
    b(
        Accounts,
        &[Key::Char('s')],
        "s",
        Action::Sort,
        "keys.accounts.sort",
    ),
    b(
        Accounts,
        &[Key::Char('i')],
        "i",
        Action::Reverse,
        "keys.accounts.reverse",
    ),
    b(
        Accounts,
        &[Key::Char(' ')],
        "Space",
        Action::Mark,
        "keys.accounts.mark",
    ),
    b(
        Accounts,
        &[Key::Ctrl('a')],
        "^a",
        Action::MarkAll,
        "keys.accounts.mark_all",
    ),
    b(
        Account,
        &[Key::Char('d')],
        "d",
        Action::Disable,
        "keys.account.disable",
    ),
    b(
        Account,
        &[Key::Char('e')],
        "e",
        Action::Enable,
        "keys.account.enable",
    ),
    b(
        Account,
        &[Key::Char('x')],
        "x",
        Action::Extend,
        "keys.account.extend",
    ),
    b(
        Account,
        &[Key::Char('D')],
        "D",
        Action::Delete,
        "keys.account.delete",
    ),
    b(
        Account,
        &[Key::Char('u')],
        "u",
        Action::Restore,
        "keys.account.restore",
    ),
    b(
        Account,
        &[Key::Char('P')],
        "P",
        Action::Purge,
        "keys.account.purge",
    ),
    b(
        Account,
        &[Key::Char('K')],
        "K",
        Action::Kill,
        "keys.account.kill",
    ),
    b(
        Account,
        &[Key::Char('c')],
        "c",
        Action::Clone,
        "keys.account.clone",
    ),
    b(
        Account,
        &[Key::Char('p')],
        "p",
        Action::Keys,
        "keys.account.keys",
    ),
    b(
        Account,
        &[Key::Char('o')],
        "o",
        Action::Tokens,
        "keys.account.tokens",
    ),
    b(
        Account,
        &[Key::Char('w')],
        "w",
        Action::Password,
        "keys.account.password",
    ),
    b(
        Account,
        &[Key::Char('t')],
        "t",
        Action::Totp,
        "keys.account.totp",
    ),
    b(
        Account,
        &[Key::Char('I')],
        "I",
        Action::Cert,
        "keys.account.cert",
    ),
    b(
        Keys,
        &[Key::Char('a'), Key::Insert],
        "a",
        Action::AddKey,
        "keys.keys.add_key",
    ),
    b(
        Keys,
        &[Key::Char('d'), Key::Delete],
        "d Del",
        Action::RemoveKey,
        "keys.keys.remove_key",
    ),
    b(
        Tokens,
        &[Key::Char('d'), Key::Delete],
        "d Del",
        Action::RevokeToken,
        "keys.tokens.revoke_token",
    ),
    b(
        Sessions,
        &[Key::Char('K'), Key::Char('d')],
        "K d",
        Action::Kill,
        "keys.sessions.kill",
    ),
    b(
        Requests,
        &[Key::Char('a')],
        "a",
        Action::Approve,
        "keys.requests.approve",
    ),
    b(
        Requests,
        &[Key::Char('x')],
        "x",
        Action::Deny,
        "keys.requests.deny",
    ),
    b(
        Audit,
        &[Key::Char('f'), Key::Char('/')],
        "f /",
        Action::Filter,
        "keys.audit.filter",
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
