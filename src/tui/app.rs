//! Console state and `update`. Service calls happen here (the session task
//! runs `update` off the async threads); drawing is in `view`.

use chrono::NaiveDate;

use super::keymap::{action_for, Action};
use crate::domain::lifecycle::{effective, Effective};
use crate::domain::{Account, AuditEvent, DisableReason};
use crate::service::accounts::ListFilter;
use crate::service::authz::{allowed, Permission};
use crate::service::integrity::AuditFilter;
use crate::service::{Actor, Services};
use crate::term::input::Key;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    Accounts,
    Detail,
    Lifecycle,
    Orphans,
    Requests,
    Outbox,
    Sessions,
    Audit,
    Help,
}

/// A popup that owns the keyboard until it is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Popup {
    /// Typing the reason for disabling `target`.
    Reason { target: String, text: String },
    /// Typing the reason for denying request `id`.
    DenyReason { id: u64, text: String },
    /// Yes or no before a change.
    Confirm { question: String, change: Change },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Disable {
        target: String,
        reason: String,
    },
    Enable {
        target: String,
    },
    Decide {
        id: u64,
        approve: bool,
        reason: Option<String>,
    },
    KillSession {
        id: u64,
    },
    KillUser {
        target: String,
    },
}

pub struct App {
    services: Services,
    pub actor: Actor,
    pub screen: Screen,
    pub accounts: Vec<Account>,
    /// Indexes into `accounts` that match the search.
    pub visible: Vec<usize>,
    pub selected: usize,
    pub query: String,
    pub searching: bool,
    pub detail: Option<(Account, Vec<AuditEvent>)>,
    pub popup: Option<Popup>,
    pub message: Option<(bool, String)>,
    pub today: NaiveDate,
    pub quit: bool,
    pub page: usize,
    pub plan: Vec<crate::service::lifecycle::PreviewItem>,
    /// The lifecycle policy, for the planned dates on the detail screen.
    pub policy: crate::domain::Policy,
    pub orphans: Vec<crate::service::reports::Orphan>,
    pub requests: Vec<crate::service::requests::Request>,
    pub outbox: Vec<crate::service::notify::OutboxEntry>,
    pub sessions: Vec<crate::service::sessions::SessionInfo>,
    pub audit: Vec<AuditEvent>,
    /// The audit chain check shown on the audit screen.
    pub chain: Option<String>,
}

impl App {
    pub fn new(services: Services, actor: Actor) -> App {
        let today = services.today();
        let policy = services.config().policy.clone();
        let mut app = App {
            services,
            actor,
            screen: Screen::Accounts,
            accounts: Vec::new(),
            visible: Vec::new(),
            selected: 0,
            query: String::new(),
            searching: false,
            detail: None,
            popup: None,
            message: None,
            today,
            quit: false,
            page: 10,
            plan: Vec::new(),
            orphans: Vec::new(),
            requests: Vec::new(),
            outbox: Vec::new(),
            sessions: Vec::new(),
            audit: Vec::new(),
            chain: None,
            policy,
        };
        app.refresh();
        app
    }

    /// Reloads what the screen shows. Returns true if anything changed.
    pub fn refresh(&mut self) -> bool {
        self.today = self.services.today();
        // An account that may not list others sees itself (no refused call every second).
        let listed = if allowed(&self.actor, Permission::ListAccounts, None) {
            self.services.list(&self.actor, &ListFilter::default())
        } else {
            self.services
                .show(&self.actor, &self.actor.name)
                .map(|a| vec![a])
        };
        let accounts = match listed {
            Ok(list) => list,
            Err(e) => {
                self.message = Some((true, e.to_string()));
                return true;
            }
        };
        let mut changed = accounts != self.accounts;
        if changed {
            let keep = self.selected_account().map(|a| a.username.clone());
            self.accounts = accounts;
            self.filter();
            if let Some(name) = keep {
                if let Some(pos) = self
                    .visible
                    .iter()
                    .position(|i| self.accounts[*i].username == name)
                {
                    self.selected = pos;
                }
            }
        }
        if self.screen == Screen::Sessions {
            let sessions = self.services.session_list(&self.actor).unwrap_or_default();
            let ids = |v: &[crate::service::sessions::SessionInfo]| {
                v.iter().map(|s| (s.id, s.last_input)).collect::<Vec<_>>()
            };
            if ids(&sessions) != ids(&self.sessions) {
                self.sessions = sessions;
                changed = true;
            }
        }
        if let Some((account, _)) = &self.detail {
            let name = account.username.clone();
            let fresh = self.load_detail(&name);
            if fresh.as_ref().map(|d| &d.0) != self.detail.as_ref().map(|d| &d.0) {
                changed = true;
                self.detail = fresh;
            }
        }
        changed
    }

    fn load_detail(&self, name: &str) -> Option<(Account, Vec<AuditEvent>)> {
        let account = self.services.show(&self.actor, name).ok()?;
        let filter = AuditFilter {
            limit: 8,
            target: Some(name.to_string()),
            ..Default::default()
        };
        let events = self
            .services
            .audit_tail(&self.actor, &filter)
            .unwrap_or_default();
        Some((account, events))
    }

    fn filter(&mut self) {
        let q = self.query.to_lowercase();
        self.visible = self
            .accounts
            .iter()
            .enumerate()
            .filter(|(_, a)| q.is_empty() || matches(a, &q))
            .map(|(i, _)| i)
            .collect();
        if self.selected >= self.visible.len() {
            self.selected = self.visible.len().saturating_sub(1);
        }
    }

    pub fn selected_account(&self) -> Option<&Account> {
        self.visible
            .get(self.selected)
            .and_then(|i| self.accounts.get(*i))
    }

    fn target(&self) -> Option<String> {
        match self.screen {
            Screen::Detail => self.detail.as_ref().map(|(a, _)| a.username.clone()),
            _ => self.selected_account().map(|a| a.username.clone()),
        }
    }

    /// One key. Returns true when the screen must be redrawn.
    pub fn handle(&mut self, key: Key) -> bool {
        if let Some(popup) = self.popup.take() {
            self.answer(popup, key);
            return true;
        }
        if self.searching {
            match key {
                Key::Enter => self.searching = false,
                Key::Esc => {
                    self.searching = false;
                    self.query.clear();
                    self.filter();
                }
                Key::Backspace => {
                    self.query.pop();
                    self.filter();
                }
                Key::Char(c) => {
                    self.query.push(c);
                    self.selected = 0;
                    self.filter();
                }
                Key::Paste(text) => {
                    self.query.push_str(text.trim());
                    self.filter();
                }
                Key::Up | Key::Down => return self.act(action_for(&key)),
                _ => return false,
            }
            return true;
        }
        self.act(action_for(&key))
    }

    fn act(&mut self, action: Option<Action>) -> bool {
        let Some(action) = action else { return false };
        self.message = None;
        let last = self.visible.len().saturating_sub(1);
        match action {
            Action::Up => self.selected = self.selected.saturating_sub(1),
            Action::Down => self.selected = (self.selected + 1).min(last),
            Action::PageUp => self.selected = self.selected.saturating_sub(self.page),
            Action::PageDown => self.selected = (self.selected + self.page).min(last),
            Action::Top => self.selected = 0,
            Action::Bottom => self.selected = last,
            Action::Open => {
                if self.screen == Screen::Accounts {
                    if let Some(name) = self.target() {
                        self.detail = self.load_detail(&name);
                        self.screen = Screen::Detail;
                    }
                }
            }
            Action::Back => match self.screen {
                Screen::Accounts if !self.query.is_empty() => {
                    self.query.clear();
                    self.filter();
                }
                _ => self.screen = Screen::Accounts,
            },
            Action::Search => {
                self.screen = Screen::Accounts;
                self.searching = true;
            }
            Action::Disable => {
                if let Some(target) = self.target() {
                    self.popup = Some(Popup::Reason {
                        target,
                        text: String::new(),
                    });
                }
            }
            Action::Enable => {
                if let Some(target) = self.target() {
                    self.popup = Some(Popup::Confirm {
                        question: format!("Enable {target}?"),
                        change: Change::Enable { target },
                    });
                }
            }
            Action::Refresh => {
                self.refresh();
            }
            Action::Lifecycle => {
                let until = self.today + chrono::Duration::days(30);
                match self.services.lifecycle_preview(&self.actor, until) {
                    Ok(plan) => {
                        self.plan = plan;
                        self.screen = Screen::Lifecycle;
                    }
                    Err(e) => self.message = Some((true, e.to_string())),
                }
            }
            Action::Requests => match self.services.request_list(&self.actor) {
                Ok(list) => {
                    self.requests = list;
                    self.screen = Screen::Requests;
                    self.selected = 0;
                }
                Err(e) => self.message = Some((true, e.to_string())),
            },
            Action::Outbox => match self.services.notify_queue(&self.actor) {
                Ok(list) => {
                    self.outbox = list;
                    self.screen = Screen::Outbox;
                }
                Err(e) => self.message = Some((true, e.to_string())),
            },
            Action::Approve | Action::Deny if self.screen == Screen::Requests => {
                let pending = self
                    .requests
                    .iter()
                    .filter(|r| r.status == crate::service::requests::RequestStatus::Pending)
                    .nth(self.selected)
                    .cloned();
                match (pending, action) {
                    (Some(r), Action::Approve) => {
                        self.popup = Some(Popup::Confirm {
                            question: format!(
                                "Approve #{}: extend {} to {}?",
                                r.id, r.account, r.end_date
                            ),
                            change: Change::Decide {
                                id: r.id,
                                approve: true,
                                reason: None,
                            },
                        })
                    }
                    (Some(r), _) => {
                        self.popup = Some(Popup::DenyReason {
                            id: r.id,
                            text: String::new(),
                        })
                    }
                    (None, _) => self.message = Some((true, "no pending request selected".into())),
                }
            }
            Action::Approve | Action::Deny => {}
            Action::Sessions => {
                self.sessions = self.services.session_list(&self.actor).unwrap_or_default();
                self.screen = Screen::Sessions;
                self.selected = 0;
            }
            Action::Kill => match self.screen {
                Screen::Sessions => {
                    if let Some(s) = self.sessions.get(self.selected) {
                        self.popup = Some(Popup::Confirm {
                            question: format!(
                                "Kill session {} of {} from {}?",
                                s.id, s.account, s.address
                            ),
                            change: Change::KillSession { id: s.id },
                        });
                    }
                }
                _ => {
                    if let Some(target) = self.target() {
                        self.popup = Some(Popup::Confirm {
                            question: format!("Kill every live session of {target}?"),
                            change: Change::KillUser { target },
                        });
                    }
                }
            },
            Action::Audit => {
                let filter = AuditFilter {
                    limit: 200,
                    ..Default::default()
                };
                match self.services.audit_tail(&self.actor, &filter) {
                    Ok(mut events) => {
                        events.reverse();
                        self.audit = events;
                        self.chain = Some(match self.services.audit_verify(&self.actor) {
                            Ok(r) => match r.broken {
                                None => format!("chain intact: {} events", r.events),
                                Some(b) => format!("CHAIN BROKEN: {b}"),
                            },
                            Err(e) => e.to_string(),
                        });
                        self.screen = Screen::Audit;
                    }
                    Err(e) => self.message = Some((true, e.to_string())),
                }
            }
            Action::Orphans => match self.services.report_orphans(&self.actor) {
                Ok(orphans) => {
                    self.orphans = orphans;
                    self.screen = Screen::Orphans;
                }
                Err(e) => self.message = Some((true, e.to_string())),
            },
            Action::Help => {
                self.screen = if self.screen == Screen::Help {
                    Screen::Accounts
                } else {
                    Screen::Help
                }
            }
            Action::Quit => self.quit = true,
        }
        true
    }

    fn answer(&mut self, popup: Popup, key: Key) {
        match popup {
            Popup::Reason { target, mut text } => match key {
                Key::Esc => {}
                Key::Enter if !text.trim().is_empty() => {
                    self.popup = Some(Popup::Confirm {
                        question: format!(
                            "Disable {target} ({text})? Its live sessions close at once."
                        ),
                        change: Change::Disable {
                            target,
                            reason: text,
                        },
                    });
                }
                Key::Backspace => {
                    text.pop();
                    self.popup = Some(Popup::Reason { target, text });
                }
                Key::Char(c) => {
                    text.push(c);
                    self.popup = Some(Popup::Reason { target, text });
                }
                Key::Paste(p) => {
                    text.push_str(p.lines().next().unwrap_or_default());
                    self.popup = Some(Popup::Reason { target, text });
                }
                _ => self.popup = Some(Popup::Reason { target, text }),
            },
            Popup::DenyReason { id, mut text } => match key {
                Key::Esc => {}
                Key::Enter if !text.trim().is_empty() => {
                    self.popup = Some(Popup::Confirm {
                        question: format!("Deny #{id} ({text})?"),
                        change: Change::Decide {
                            id,
                            approve: false,
                            reason: Some(text),
                        },
                    });
                }
                Key::Backspace => {
                    text.pop();
                    self.popup = Some(Popup::DenyReason { id, text });
                }
                Key::Char(c) => {
                    text.push(c);
                    self.popup = Some(Popup::DenyReason { id, text });
                }
                _ => self.popup = Some(Popup::DenyReason { id, text }),
            },
            Popup::Confirm { question, change } => match key {
                Key::Char('y') | Key::Char('Y') => self.apply(change),
                Key::Char('n') | Key::Char('N') | Key::Esc => {
                    self.message = Some((false, "cancelled".into()))
                }
                _ => self.popup = Some(Popup::Confirm { question, change }),
            },
        }
    }

    fn apply(&mut self, change: Change) {
        let result = match &change {
            Change::Disable { target, reason } => self
                .services
                .disable(
                    &self.actor,
                    target,
                    DisableReason::Manual,
                    Some(reason.clone()),
                )
                .map(|_| format!("disabled {target}")),
            Change::Enable { target } => self
                .services
                .enable(&self.actor, target)
                .map(|_| format!("enabled {target}")),
            Change::Decide {
                id,
                approve,
                reason,
            } => self
                .services
                .request_decide(&self.actor, *id, *approve, reason.clone())
                .map(|r| format!("request #{id} {:?}", r.status).to_lowercase()),
            Change::KillSession { id } => self
                .services
                .session_kill(&self.actor, *id)
                .map(|s| format!("killed session {id} of {}", s.account)),
            Change::KillUser { target } => self
                .services
                .session_kill_user(&self.actor, target)
                .map(|n| format!("killed {n} session(s) of {target}")),
        };
        self.message = Some(match result {
            Ok(done) => (false, done),
            Err(e) => (true, e.to_string()),
        });
        if matches!(change, Change::KillSession { .. } | Change::KillUser { .. }) {
            self.sessions = self.services.session_list(&self.actor).unwrap_or_default();
        }
        if let Change::Decide { .. } = change {
            self.requests = self.services.request_list(&self.actor).unwrap_or_default();
        }
        self.refresh();
    }
}

fn matches(a: &Account, q: &str) -> bool {
    [
        Some(&a.username),
        Some(&a.display_name),
        Some(&a.email),
        a.company.as_ref(),
        a.project.as_ref(),
    ]
    .into_iter()
    .flatten()
    .any(|field| field.to_lowercase().contains(q))
}

/// The status word and whether it is a warning, for colouring.
pub fn status(a: &Account, today: NaiveDate) -> (String, Effective) {
    let e = effective(a, today);
    let word = match e {
        Effective::Disabled(reason) => format!("disabled ({reason})"),
        other => other.as_str().to_string(),
    };
    (word, e)
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;
    use crate::domain::Kind;
    use crate::service::accounts::AccountInput;
    use crate::service::testkit::services;

    fn app() -> App {
        let (s, _clock, admin) = services();
        for (name, company) in [("bob", "Acme"), ("carla", "Globex"), ("dave", "Acme")] {
            let input = AccountInput {
                email: Some(format!("{name}@{}.example", company.to_lowercase())),
                display_name: Some(format!("{name} builder")),
                kind: Some(Kind::Contractor),
                company: Some(company.into()),
                end_date: Some(s.today() + chrono::Duration::days(30)),
                ..Default::default()
            };
            s.create(&admin, name, input).unwrap();
        }
        App::new(s, admin)
    }

    fn screen(app: &App, w: u16, h: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        terminal.draw(|f| crate::tui::view::draw(app, f)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn typed(app: &mut App, text: &str) {
        for c in text.chars() {
            app.handle(Key::Char(c));
        }
    }

    #[test]
    fn accounts_screen_at_both_sizes_lists_every_account_with_status_and_end() {
        let app = app();
        for (w, h) in [(80, 24), (120, 40)] {
            let text = screen(&app, w, h);
            for needle in [
                "Accounts", "USERNAME", "bob", "carla", "dave", "active", "(30d)", "q quit",
            ] {
                assert!(text.contains(needle), "{w}x{h} lacks {needle}:\n{text}");
            }
        }
        assert!(screen(&app, 79, 24).contains("terminal too small"));
    }

    #[test]
    fn searching_by_part_of_an_email_narrows_the_table() {
        let mut app = app();
        app.handle(Key::Char('/'));
        typed(&mut app, "globex");
        assert_eq!(app.visible.len(), 1);
        let text = screen(&app, 120, 40);
        assert!(text.contains("carla") && !text.contains("dave"), "{text}");
        assert!(text.contains("/globex"), "the search line shows the query");
        app.handle(Key::Esc);
        assert_eq!(app.visible.len(), 4, "Esc clears the search");
    }

    #[test]
    fn disable_asks_a_reason_then_confirms_then_shows_the_new_status() {
        let mut app = app();
        app.handle(Key::Char('/'));
        typed(&mut app, "bob");
        app.handle(Key::Enter);
        app.handle(Key::Enter);
        assert_eq!(app.screen, Screen::Detail);
        assert!(screen(&app, 80, 24).contains("bob@acme.example"));
        app.handle(Key::Char('d'));
        typed(&mut app, "contract ended");
        assert!(screen(&app, 80, 24).contains("Reason: contract ended"));
        app.handle(Key::Enter);
        assert!(screen(&app, 80, 24).contains("Disable bob (contract ended)?"));
        app.handle(Key::Char('y'));
        let text = screen(&app, 80, 24);
        assert!(
            text.contains("disabled (manual)") && text.contains("disabled bob"),
            "{text}"
        );
        // Esc on the confirmation cancels without a change.
        app.handle(Key::Char('e'));
        app.handle(Key::Esc);
        assert!(screen(&app, 80, 24).contains("cancelled"));
    }

    #[test]
    fn lifecycle_orphans_and_outbox_screens_and_planned_dates() {
        let mut app = app();
        app.handle(Key::Char('/'));
        typed(&mut app, "bob");
        app.handle(Key::Enter);
        app.handle(Key::Enter);
        let detail = screen(&app, 120, 40);
        assert!(
            detail.contains("warn sponsor (14 days left)")
                && detail.contains("disable (never_logged_in)"),
            "{detail}"
        );
        app.handle(Key::Esc);
        app.handle(Key::Char('L'));
        let plan = screen(&app, 120, 40);
        assert!(
            plan.contains("Lifecycle:")
                && plan.contains("disable (never_logged_in)")
                && plan.contains("carla"),
            "{plan}"
        );
        app.handle(Key::Char('O'));
        let orphans = screen(&app, 80, 24);
        assert!(
            orphans.contains("Orphans:") && orphans.contains("no_sponsor"),
            "{orphans}"
        );
        app.handle(Key::Char('N'));
        assert!(screen(&app, 80, 24).contains("Notifications not yet delivered: 0"));
    }

    #[test]
    fn a_pending_request_is_approved_from_the_requests_screen() {
        let mut app = app();
        let later = app.today + chrono::Duration::days(60);
        app.services
            .request_extend(&app.actor, "bob", later, "project extended")
            .unwrap();
        app.handle(Key::Char('R'));
        let text = screen(&app, 120, 40);
        assert!(
            text.contains("Requests: 1 pending") && text.contains("project extended"),
            "{text}"
        );
        app.handle(Key::Char('a'));
        assert!(screen(&app, 120, 40).contains("Approve #1: extend bob"));
        app.handle(Key::Char('y'));
        assert!(screen(&app, 120, 40).contains("request #1 approved"));
        assert_eq!(app.services.load("bob").unwrap().end_date, Some(later));
    }

    #[test]
    fn sessions_screen_kills_with_confirmation_and_audit_screen_shows_the_chain() {
        use crate::service::sessions::{Closing, SessionInfo, SessionKind};
        let mut app = app();
        let now = app.services.now();
        let ticket = app.services.session_open(SessionInfo {
            id: 0,
            account: "bob".into(),
            address: "192.0.2.7".into(),
            method: "publickey".into(),
            fingerprint: None,
            started: now,
            last_input: now,
            kind: SessionKind::Console,
            command: None,
        });
        app.handle(Key::Char('S'));
        let text = screen(&app, 120, 40);
        assert!(
            text.contains("Live sessions: 1") && text.contains("192.0.2.7"),
            "{text}"
        );
        app.handle(Key::Char('K'));
        assert!(screen(&app, 120, 40).contains("Kill session"));
        app.handle(Key::Char('y'));
        assert!(matches!(*ticket.closing.borrow(), Closing::Close(_)));
        assert!(screen(&app, 120, 40).contains("killed session"));
        app.handle(Key::Char('A'));
        let audit = screen(&app, 120, 40);
        assert!(
            audit.contains("chain intact") && audit.contains("session.kill"),
            "{audit}"
        );
    }

    #[test]
    fn help_is_drawn_from_the_keymap() {
        let mut app = app();
        app.handle(Key::Char('?'));
        let text = screen(&app, 120, 40);
        for b in crate::tui::keymap::KEYMAP {
            assert!(text.contains(b.help), "help lacks {}", b.help);
        }
        // At 80x24 the bindings flow into columns: every key is still there.
        let small = screen(&app, 80, 24);
        for b in crate::tui::keymap::KEYMAP {
            assert!(
                small.contains(b.label),
                "80x24 help lacks {}:\n{small}",
                b.label
            );
        }
    }
}
