//! The one key map: the input handler reads it and the help screen shows it.

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
    Disable,
    Enable,
    Refresh,
    Lifecycle,
    Orphans,
    Requests,
    Outbox,
    Approve,
    Deny,
    Sessions,
    Kill,
    Audit,
    Help,
    Quit,
}

pub struct Binding {
    pub keys: &'static [Key],
    pub label: &'static str,
    pub action: Action,
    pub help: &'static str,
}

pub const KEYMAP: &[Binding] = &[
    Binding {
        keys: &[Key::Up, Key::Char('k')],
        label: "↑ k",
        action: Action::Up,
        help: "previous row",
    },
    Binding {
        keys: &[Key::Down, Key::Char('j')],
        label: "↓ j",
        action: Action::Down,
        help: "next row",
    },
    Binding {
        keys: &[Key::PageUp, Key::Ctrl('b')],
        label: "PgUp ^b",
        action: Action::PageUp,
        help: "previous page",
    },
    Binding {
        keys: &[Key::PageDown, Key::Ctrl('f')],
        label: "PgDn ^f",
        action: Action::PageDown,
        help: "next page",
    },
    Binding {
        keys: &[Key::Home, Key::Char('g')],
        label: "Home g",
        action: Action::Top,
        help: "first row",
    },
    Binding {
        keys: &[Key::End, Key::Char('G')],
        label: "End G",
        action: Action::Bottom,
        help: "last row",
    },
    Binding {
        keys: &[Key::Enter],
        label: "Enter",
        action: Action::Open,
        help: "open the account",
    },
    Binding {
        keys: &[Key::Esc],
        label: "Esc",
        action: Action::Back,
        help: "back / clear the search",
    },
    Binding {
        keys: &[Key::Char('/')],
        label: "/",
        action: Action::Search,
        help: "search as you type (name, email, company, project)",
    },
    Binding {
        keys: &[Key::Char('d')],
        label: "d",
        action: Action::Disable,
        help: "disable (asks a reason, then confirms)",
    },
    Binding {
        keys: &[Key::Char('e')],
        label: "e",
        action: Action::Enable,
        help: "enable (confirms)",
    },
    Binding {
        keys: &[Key::Char('r'), Key::Ctrl('r')],
        label: "r",
        action: Action::Refresh,
        help: "refresh now",
    },
    Binding {
        keys: &[Key::Char('L')],
        label: "L",
        action: Action::Lifecycle,
        help: "lifecycle: what the policies will do in the next 30 days",
    },
    Binding {
        keys: &[Key::Char('O')],
        label: "O",
        action: Action::Orphans,
        help: "orphans: accounts nobody is accountable for",
    },
    Binding {
        keys: &[Key::Char('R')],
        label: "R",
        action: Action::Requests,
        help: "requests: extensions waiting for a decision",
    },
    Binding {
        keys: &[Key::Char('N')],
        label: "N",
        action: Action::Outbox,
        help: "notifications not yet delivered",
    },
    Binding {
        keys: &[Key::Char('a')],
        label: "a",
        action: Action::Approve,
        help: "approve the selected request (confirms)",
    },
    Binding {
        keys: &[Key::Char('x')],
        label: "x",
        action: Action::Deny,
        help: "deny the selected request (asks a reason)",
    },
    Binding {
        keys: &[Key::Char('S')],
        label: "S",
        action: Action::Sessions,
        help: "live sessions (refresh by themselves)",
    },
    Binding {
        keys: &[Key::Char('K')],
        label: "K",
        action: Action::Kill,
        help: "kill the selected session, or the account's sessions (confirms)",
    },
    Binding {
        keys: &[Key::Char('A')],
        label: "A",
        action: Action::Audit,
        help: "audit trail, newest first, with the chain check",
    },
    Binding {
        keys: &[Key::Char('?'), Key::F(1)],
        label: "? F1",
        action: Action::Help,
        help: "this help",
    },
    Binding {
        keys: &[Key::Char('q'), Key::Ctrl('c')],
        label: "q ^c",
        action: Action::Quit,
        help: "quit",
    },
];

pub fn action_for(key: &Key) -> Option<Action> {
    KEYMAP
        .iter()
        .find(|b| b.keys.contains(key))
        .map(|b| b.action)
}
