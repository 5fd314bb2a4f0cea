//! Console state and `update`. Service calls happen here (the session task
//! runs `handle` and `refresh` off the async threads); drawing is in `view`.
//!
//! Keys go to whatever owns the keyboard, most specific first: a popup, the
//! form, the command line, the search line, then the key map for the
//! screen's scopes. Every change to an account goes through one path:
//! `Action` → (a prompt) → `Popup::Confirm` → `apply(Change)`.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use clap::Parser;

use super::form::{Form, FormOutcome, Lookup, Stage};
use super::keymap::{action_for, Action, Scope};
pub use super::popup::{Change, Popup, Prompt};
use super::theme::{Theme, SHIPPED};
use crate::cli::Command;
use crate::domain::dates::parse_date;
use crate::domain::lifecycle::{effective, Effective};
use crate::domain::{Account, AuditEvent};
use crate::locale::{Lang, Zone};
use crate::service::authz::{allowed, Permission};
use crate::service::integrity::AuditFilter;
pub use crate::service::search::{Filters, SortKey};
use crate::service::search::{Hits, Query};
use crate::service::sessions::SessionInfo;
use crate::service::{Actor, Services};
use crate::term::input::Key;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    Accounts,
    Detail,
    Keys,
    Tokens,
    Form,
    Lifecycle,
    Orphans,
    Requests,
    Outbox,
    Sessions,
    Lockouts,
    Connectors,
    Hosts,
    Audit,
    Help,
}

impl Screen {
    /// The key map scopes this screen looks in, most specific first.
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Screen::Accounts => &[Scope::Accounts, Scope::Account],
            Screen::Detail => &[Scope::Account],
            Screen::Keys => &[Scope::Keys],
            Screen::Tokens => &[Scope::Tokens],
            Screen::Sessions => &[Scope::Sessions],
            Screen::Lockouts => &[Scope::Lockouts],
            Screen::Connectors => &[Scope::Connectors],
            Screen::Hosts => &[Scope::Hosts],
            Screen::Requests => &[Scope::Requests],
            Screen::Audit => &[Scope::Audit],
            _ => &[],
        }
    }
}

/// The open account: its record, recent audit events and live sessions.
#[derive(Clone, Debug)]
pub struct Detail {
    pub account: Account,
    pub events: Vec<AuditEvent>,
    pub sessions: Vec<SessionInfo>,
    /// What each connector holds for the account.
    pub links: Vec<crate::service::connect::Link>,
    /// The hosts this account may log in on now.
    pub hosts: Vec<String>,
}

/// The command line's grammar: the exec grammar, word for word.
#[derive(Debug, Parser)]
#[command(name = "", no_binary_name = true, disable_version_flag = true)]
struct CommandLine {
    #[command(flatten)]
    display: crate::cli::DisplayArgs,
    #[command(subcommand)]
    command: Command,
}

/// `*` marks every match up to this many.
const MARK_ALL_MAX: usize = 1_000;

/// Matches asked for at first (a few screens' worth); doubled as the cursor nears the end.
const FIRST_NEED: usize = 200;

pub struct App {
    pub(crate) services: Services,
    pub actor: Actor,
    pub theme: Theme,
    /// The viewer's language and timezone (`prefs set NAME --language
    /// --timezone`), read again when something changed.
    pub lang: Lang,
    pub zone: Zone,
    no_color: bool,
    pub screen: Screen,
    /// Where Esc goes from the form.
    form_return: Screen,
    /// The form is submitted as an account request (its holder may not create).
    pub form_as_request: bool,
    /// The screen help was opened from: its keys come first.
    pub help_from: Screen,
    pub help_scroll: usize,
    /// The first matches of the search and filters, in table order, and
    /// how many there are (the service's search index does the work).
    pub hits: Hits,
    /// How many matches to ask for: grows as the cursor goes down.
    need: usize,
    /// The accounts on screen: `hits.names[top..top + rows.len()]`.
    pub rows: Vec<Account>,
    /// The first match on screen.
    pub top: usize,
    /// Table rows that fit on the screen (set from the terminal size).
    pub view_height: usize,
    /// Accounts the actor can see, for the header.
    pub account_count: usize,
    pub selected: usize,
    pub query: String,
    pub searching: bool,
    pub filters: Filters,
    pub sort: SortKey,
    pub reverse: bool,
    pub marked: BTreeSet<String>,
    pub detail: Option<Detail>,
    pub key_selected: usize,
    /// First line shown of the detail page (it scrolls on small terminals).
    pub detail_scroll: usize,
    pub form: Option<Form>,
    pub popup: Option<Popup>,
    /// The `:` line being typed.
    pub command: Option<String>,
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
    pub sessions: Vec<SessionInfo>,
    pub lockouts: super::lockouts::Lockouts,
    pub connectors: super::connectors::Connectors,
    pub hosts: super::hosts::Hosts,
    pub tokens: super::tokens::Tokens,
    pub audit: Vec<AuditEvent>,
    pub audit_filter: String,
    /// The audit chain check shown on the audit screen.
    pub chain: Option<String>,
    /// The service's change counter when the lists were last loaded.
    generation: Option<u64>,
}

/// How the form asks the service about names and emails.
struct ServiceLookup<'a>(&'a Services, &'a Actor);

impl Lookup for ServiceLookup<'_> {
    fn account_exists(&self, name: &str) -> bool {
        self.0.username_taken(self.1, name)
    }
    fn email_taken(&self, email: &str) -> bool {
        self.0.find_by_email(email).ok().flatten().is_some()
    }
}

impl App {
    pub fn new(services: Services, actor: Actor) -> App {
        App::with_theme(services, actor, Theme::default(), false)
    }

    pub fn with_theme(services: Services, actor: Actor, theme: Theme, no_color: bool) -> App {
        let today = services.today();
        let policy = services.config().policy.clone();
        // Someone who may not list accounts serves themselves: start on their own page.
        let self_service = !allowed(&actor, Permission::ListAccounts, None);
        let mut app = App {
            services,
            actor,
            theme,
            lang: Lang::En,
            zone: Zone::UTC,
            no_color,
            screen: Screen::Accounts,
            form_return: Screen::Accounts,
            form_as_request: false,
            help_from: Screen::Accounts,
            help_scroll: 0,
            hits: Hits::default(),
            need: FIRST_NEED,
            rows: Vec::new(),
            top: 0,
            view_height: 50,
            account_count: 0,
            selected: 0,
            query: String::new(),
            searching: false,
            filters: Filters::default(),
            sort: SortKey::Username,
            reverse: false,
            marked: BTreeSet::new(),
            detail: None,
            key_selected: 0,
            detail_scroll: 0,
            form: None,
            popup: None,
            command: None,
            message: None,
            today,
            quit: false,
            page: 10,
            plan: Vec::new(),
            orphans: Vec::new(),
            requests: Vec::new(),
            outbox: Vec::new(),
            sessions: Vec::new(),
            lockouts: Default::default(),
            connectors: Default::default(),
            hosts: Default::default(),
            tokens: Default::default(),
            audit: Vec::new(),
            audit_filter: String::new(),
            chain: None,
            policy,
            generation: None,
        };
        app.refresh();
        if self_service {
            let me = app.actor.name.clone();
            app.open(&me);
        }
        app
    }

    /// The viewer's own language and zone; true if either changed.
    fn load_locale(&mut self) -> bool {
        let own = self
            .actor
            .is_account
            .then(|| self.services.load(&self.actor.name).ok())
            .flatten();
        let lang = Lang::from_code(own.as_ref().and_then(|a| a.language.as_deref()));
        let zone = Zone::named(own.as_ref().and_then(|a| a.timezone.as_deref()));
        let changed = (lang, zone) != (self.lang, self.zone);
        (self.lang, self.zone) = (lang, zone);
        changed
    }

    /// The viewer's text for a catalogue key (`assets/i18n`).
    pub fn tr(&self, key: &str) -> &'static str {
        self.lang.tr(key)
    }

    /// `tr` with `{name}` placeholders filled.
    pub fn trf(&self, key: &str, vars: &[(&str, &str)]) -> String {
        self.lang.trf(key, vars)
    }

    /// True for an account that only serves itself (role `user`).
    pub fn self_service(&self) -> bool {
        !allowed(&self.actor, Permission::ListAccounts, None)
    }

    fn fail(&mut self, e: impl std::fmt::Display) {
        self.message = Some((true, e.to_string()));
    }

    /// A status line from the catalogue.
    fn said(&mut self, key: &str) {
        self.message = Some((false, self.tr(key).to_string()));
    }

    /// Whether `refresh` has anything to do: a change since the last load, a
    /// new day, or a screen showing live sessions. Reads one key, so an idle
    /// console can ask every second without borrowing a thread.
    pub fn stale(&self) -> bool {
        matches!(self.screen, Screen::Sessions | Screen::Detail)
            || self.hits.indexing
            || self.services.generation().ok() != self.generation
            || self.services.today() != self.today
    }

    /// Reloads what the screen shows when the service says something changed
    /// (or the day turned). Returns true if anything on screen changed.
    pub fn refresh(&mut self) -> bool {
        let today = self.services.today();
        let generation = self.services.generation().ok();
        let stale = generation.is_none()
            || generation != self.generation
            || today != self.today
            || self.hits.indexing;
        self.today = today;
        let mut changed = false;
        if stale {
            self.generation = generation;
            changed |= self.load_locale();
            changed |= self.reload_accounts();
            if let Some(name) = self.detail.as_ref().map(|d| d.account.username.clone()) {
                let fresh = self.load_detail(&name);
                changed |= fresh.as_ref().map(|d| (&d.account, &d.events))
                    != self.detail.as_ref().map(|d| (&d.account, &d.events));
                if let Some(fresh) = fresh {
                    self.detail = Some(fresh);
                }
            }
            if self.screen == Screen::Requests {
                self.requests = self.services.request_list(&self.actor).unwrap_or_default();
                changed = true;
            }
        }
        // Sessions live in memory and change without an audit event (input times).
        let shows_sessions = matches!(self.screen, Screen::Sessions | Screen::Detail);
        if shows_sessions {
            let sessions = self.services.session_list(&self.actor).unwrap_or_default();
            let ids =
                |v: &[SessionInfo]| v.iter().map(|s| (s.id, s.last_input)).collect::<Vec<_>>();
            if self.screen == Screen::Sessions && ids(&sessions) != ids(&self.sessions) {
                self.sessions = sessions.clone();
                self.selected = self.selected.min(self.sessions.len().saturating_sub(1));
                changed = true;
            }
            if let Some(d) = self.detail.as_mut() {
                let own: Vec<SessionInfo> = sessions
                    .into_iter()
                    .filter(|s| s.account == d.account.username)
                    .collect();
                if ids(&own) != ids(&d.sessions) {
                    d.sessions = own;
                    changed = self.screen == Screen::Detail || changed;
                }
            }
        }
        changed
    }

    /// Sets the table height from the terminal's (header, footer, borders
    /// and the column titles take five lines).
    pub fn resize(&mut self, rows: u16) {
        self.view_height = usize::from(rows.saturating_sub(5)).max(1);
        self.page = self.view_height.saturating_sub(1).max(1);
        self.scroll_into_view();
        self.load_rows();
    }

    fn query(&self) -> Query {
        Query {
            text: self.query.clone(),
            filters: self.filters.clone(),
            sort: self.sort,
            reverse: self.reverse,
        }
    }

    /// Runs the search again (after a key, or a change elsewhere) and loads
    /// the accounts on screen. Returns true if anything shown changed.
    fn reload_accounts(&mut self) -> bool {
        let keep = self.selected_account().map(|a| a.username.clone());
        // An account that may not list others sees itself (no refused call every second).
        let found = if self.self_service() {
            Ok((
                Hits {
                    names: vec![self.actor.name.as_str().into()],
                    total: 1,
                    exact: true,
                    fuzzy: false,
                    indexing: false,
                },
                1,
            ))
        } else {
            let all = self
                .services
                .search(&self.actor, &Query::default(), 0)
                .map(|h| h.total);
            all.and_then(|all| {
                self.services
                    .search(&self.actor, &self.query(), self.need)
                    .map(|h| (h, all))
            })
        };
        let (hits, all) = match found {
            Ok(found) => found,
            Err(e) => {
                self.fail(e);
                return true;
            }
        };
        let mut changed = hits != self.hits || all != self.account_count;
        self.hits = hits;
        self.account_count = all;
        if let Some(name) = keep {
            self.select(&name);
        }
        self.selected = self.selected.min(self.hits.names.len().saturating_sub(1));
        self.scroll_into_view();
        changed |= self.load_rows();
        changed
    }

    /// Moves `top` so the cursor is on screen.
    fn scroll_into_view(&mut self) {
        if self.selected < self.top {
            self.top = self.selected;
        } else if self.selected >= self.top + self.view_height {
            self.top = self.selected + 1 - self.view_height;
        }
        self.top = self
            .top
            .min(self.hits.names.len().saturating_sub(self.view_height));
    }

    /// Loads the accounts on screen (a page, never the whole table).
    /// Returns true if they differ from what was shown.
    fn load_rows(&mut self) -> bool {
        let names = self.hits.names.iter().skip(self.top).take(self.view_height);
        let rows: Vec<Account> = names
            .filter_map(|n| self.services.show(&self.actor, n).ok())
            .collect();
        if rows == self.rows {
            return false;
        }
        self.rows = rows;
        true
    }

    /// After the cursor moved: asks for more matches near the end of those
    /// loaded, and loads the page it is on.
    fn cursor_moved(&mut self) {
        let loaded = self.hits.names.len();
        let more = !self.hits.exact || self.hits.total > loaded;
        if more && self.selected + self.view_height >= loaded {
            self.need = (self.selected + self.view_height * 2).max(self.need * 2);
            self.reload_accounts();
        }
        self.selected = self.selected.min(self.hits.names.len().saturating_sub(1));
        self.scroll_into_view();
        self.load_rows();
    }

    fn select(&mut self, name: &str) {
        if let Some(pos) = self.hits.names.iter().position(|n| &**n == name) {
            self.selected = pos;
        }
    }

    fn load_detail(&self, name: &str) -> Option<Detail> {
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
        let sessions = self
            .services
            .session_list(&self.actor)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.account == name)
            .collect();
        let links = self.services.account_links(name).unwrap_or_default();
        let hosts = self.services.login_hosts(&account).unwrap_or_default();
        Some(Detail {
            account,
            events,
            sessions,
            links,
            hosts,
        })
    }

    pub(crate) fn open(&mut self, name: &str) {
        match self.load_detail(name) {
            Some(d) => {
                self.detail = Some(d);
                self.detail_scroll = 0;
                self.screen = Screen::Detail;
            }
            None => self.fail(format!("cannot open {name}")),
        }
    }

    /// A new query, filter or order: back to the first match.
    fn filter(&mut self) {
        self.selected = 0;
        self.top = 0;
        self.need = FIRST_NEED;
        self.reload_accounts();
    }

    /// Whether the console offers `action` here: the service's permission
    /// rule for the account it would apply to (the open one, or the row
    /// under the cursor; with none, whether the actor may do it to anyone).
    /// Extending one's own account is offered as a request for more time.
    pub fn offers(&self, action: Action) -> bool {
        let Some(permission) = action.permission() else {
            return true;
        };
        let target = match self.screen {
            Screen::Detail | Screen::Keys | Screen::Tokens => {
                self.detail.as_ref().map(|d| &d.account)
            }
            Screen::Accounts => self.selected_account(),
            _ => None,
        };
        allowed(&self.actor, permission, target)
            || (action == Action::Extend
                && allowed(&self.actor, Permission::RequestExtension, target))
            || (action == Action::Create && allowed(&self.actor, Permission::RequestAccount, None))
    }

    pub fn selected_account(&self) -> Option<&Account> {
        self.rows.get(self.selected.checked_sub(self.top)?)
    }

    /// The accounts an action applies to: the open one, or the marked rows,
    /// or the row under the cursor.
    fn targets(&self) -> Vec<String> {
        match self.screen {
            Screen::Detail | Screen::Keys => self
                .detail
                .as_ref()
                .map(|d| vec![d.account.username.clone()])
                .unwrap_or_default(),
            Screen::Accounts if !self.marked.is_empty() => self.marked.iter().cloned().collect(),
            Screen::Accounts => self
                .selected_account()
                .map(|a| vec![a.username.clone()])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The account `name`: from the screen when it is there, else the service.
    fn target_account(&self, name: &str) -> Option<Account> {
        match &self.detail {
            Some(d) if d.account.username == name => Some(d.account.clone()),
            _ => self
                .rows
                .iter()
                .find(|a| a.username == name)
                .cloned()
                .or_else(|| self.services.show(&self.actor, name).ok()),
        }
    }

    /// One key. Returns true when the screen must be redrawn.
    pub fn handle(&mut self, key: Key) -> bool {
        if let Some(popup) = self.popup.take() {
            self.answer(popup, key);
            return true;
        }
        if self.screen == Screen::Form {
            self.form_key(key);
            return true;
        }
        if let Some(mut line) = self.command.take() {
            match key {
                Key::Esc => {}
                Key::Enter => self.run_command(&line),
                Key::Backspace => {
                    if line.pop().is_some() {
                        self.command = Some(line);
                    }
                }
                Key::Char(c) => {
                    line.push(c);
                    self.command = Some(line);
                }
                Key::Paste(p) => {
                    line.push_str(p.lines().next().unwrap_or_default());
                    self.command = Some(line);
                }
                _ => self.command = Some(line),
            }
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
                    self.selected = 0;
                    self.filter();
                }
                Key::Up | Key::Down | Key::PageUp | Key::PageDown => {
                    return self.act(action_for(&[], &key))
                }
                _ => return false,
            }
            return true;
        }
        self.act(action_for(self.screen.scopes(), &key))
    }

    fn rows(&self) -> usize {
        match self.screen {
            Screen::Accounts => self.hits.names.len(),
            Screen::Sessions => self.sessions.len(),
            Screen::Lockouts => self.lockouts.list.len(),
            Screen::Connectors => self.connectors.rows(),
            Screen::Hosts => self.hosts.list.len(),
            Screen::Tokens => self.tokens.list.len(),
            Screen::Keys => self
                .detail
                .as_ref()
                .map_or(0, |d| d.account.credentials.keys.len()),
            Screen::Requests => self
                .requests
                .iter()
                .filter(|r| r.status == crate::service::requests::RequestStatus::Pending)
                .count(),
            Screen::Audit => self.audit.len(),
            Screen::Help => super::keymap::KEYMAP.len(),
            // About as many lines as the page has; the view stops at the last one.
            Screen::Detail => {
                self.detail.as_ref().map_or(0, |d| {
                    d.account.fields.len()
                        + d.account.credentials.keys.len()
                        + d.sessions.len()
                        + d.events.len()
                }) + 10
            }
            _ => 0,
        }
    }

    fn cursor(&mut self) -> &mut usize {
        match self.screen {
            Screen::Keys | Screen::Tokens => &mut self.key_selected,
            Screen::Detail => &mut self.detail_scroll,
            Screen::Help => &mut self.help_scroll,
            _ => &mut self.selected,
        }
    }

    fn input_popup(&mut self, prompt: Prompt, title: String, targets: Vec<String>, text: String) {
        self.popup = Some(Popup::Input {
            prompt,
            title,
            targets,
            text,
            carry: None,
            error: None,
        });
    }

    fn confirm(&mut self, question: String, targets: Vec<String>, change: Change) {
        self.popup = Some(Popup::Confirm {
            question,
            targets,
            change,
        });
    }

    fn act(&mut self, action: Option<Action>) -> bool {
        let Some(action) = action else { return false };
        self.message = None;
        let moves = matches!(
            action,
            Action::Up
                | Action::Down
                | Action::PageUp
                | Action::PageDown
                | Action::Top
                | Action::Bottom
                | Action::Mark
        );
        let changed = self.act_on(action);
        if moves && self.screen == Screen::Accounts {
            self.cursor_moved();
        }
        changed
    }

    fn act_on(&mut self, action: Action) -> bool {
        let last = self.rows().saturating_sub(1);
        let page = self.page;
        match action {
            Action::Up => *self.cursor() = self.cursor().saturating_sub(1),
            Action::Down => *self.cursor() = (*self.cursor() + 1).min(last),
            Action::PageUp => *self.cursor() = self.cursor().saturating_sub(page),
            Action::PageDown => *self.cursor() = (*self.cursor() + page).min(last),
            Action::Top => *self.cursor() = 0,
            Action::Bottom => *self.cursor() = last,
            Action::Open if self.screen == Screen::Connectors => {
                match self
                    .connectors
                    .enter(&self.services, &self.actor, self.selected)
                {
                    Ok(()) => self.selected = 0,
                    Err(e) => self.fail(e),
                }
            }
            Action::Back if self.screen == Screen::Connectors && self.connectors.back() => {
                self.selected = 0;
            }
            Action::Open => {
                if let Some(name) = self.selected_account().map(|a| a.username.clone()) {
                    self.open(&name);
                }
            }
            Action::Back => self.back(),
            Action::Search => self.searching = true,
            Action::Filter if self.screen == Screen::Audit => {
                let text = self.audit_filter.clone();
                let title = self.tr("console.action.filter_audit").into();
                self.input_popup(Prompt::AuditFilter, title, vec![], text)
            }
            Action::Filter => {
                let text = self.filters.describe();
                let title = self.tr("console.action.filter_accounts").into();
                self.input_popup(Prompt::ListFilter, title, vec![], text)
            }
            Action::Sort => {
                self.sort = self.sort.next();
                self.filter();
            }
            Action::Reverse => {
                self.reverse = !self.reverse;
                self.filter();
            }
            Action::Mark => {
                if let Some(name) = self.selected_account().map(|a| a.username.clone()) {
                    if !self.marked.remove(&name) {
                        self.marked.insert(name);
                    }
                    self.selected = (self.selected + 1).min(last);
                }
            }
            Action::MarkAll => {
                // Every match, when they are few enough to list in a confirmation.
                if !self.hits.exact || self.hits.total > MARK_ALL_MAX {
                    self.fail(format!(
                        "{} matches: narrow the search to {MARK_ALL_MAX} or fewer to mark them all",
                        count_text(&self.hits)
                    ));
                    return true;
                }
                if self.hits.names.len() < self.hits.total {
                    self.need = self.hits.total;
                    self.reload_accounts();
                }
                let all: BTreeSet<String> = self.hits.names.iter().map(|n| n.to_string()).collect();
                self.marked = if self.marked == all {
                    BTreeSet::new()
                } else {
                    all
                };
            }
            Action::Disable => {
                let targets = self.targets();
                if !targets.is_empty() {
                    let names = list_names(&targets);
                    let title = self.trf("console.action.disable", &[("names", &names)]);
                    self.input_popup(Prompt::DisableReason, title, targets, String::new());
                }
            }
            Action::Extend => {
                let targets = self.targets();
                let own = targets.len() == 1 && targets.first() == Some(&self.actor.name);
                let may = targets.iter().all(|t| {
                    allowed(
                        &self.actor,
                        Permission::ExtendAccount,
                        self.target_account(t).as_ref(),
                    )
                });
                if own && !may {
                    // A user asks instead: an admin decides.
                    let title = self.tr("console.action.ask_later").to_string();
                    self.input_popup(Prompt::RequestDate, title, targets, String::new());
                } else if !targets.is_empty() {
                    let names = list_names(&targets);
                    let title = self.trf("console.action.extend", &[("names", &names)]);
                    self.input_popup(Prompt::ExtendDate, title, targets, String::new());
                }
            }
            Action::Enable | Action::Delete | Action::Restore => {
                let targets = self.targets();
                if !targets.is_empty() {
                    let (question, change) = match action {
                        Action::Enable => (
                            "console.action.enable_q",
                            Change::Enable {
                                targets: targets.clone(),
                            },
                        ),
                        Action::Delete => (
                            "console.action.delete_q",
                            Change::Delete {
                                targets: targets.clone(),
                            },
                        ),
                        _ => (
                            "console.action.restore_q",
                            Change::Restore {
                                targets: targets.clone(),
                            },
                        ),
                    };
                    let question = self.trf(question, &[("names", &list_names(&targets))]);
                    self.confirm(question, targets, change);
                }
            }
            Action::Purge => match self.targets().as_slice() {
                [one] => {
                    let title = self.trf("console.action.purge", &[("name", one)]);
                    self.input_popup(Prompt::PurgeName, title, vec![one.clone()], String::new())
                }
                [] => {}
                _ => self.fail(self.tr("console.action.purge_one")),
            },
            Action::Create => self.start_form(None),
            Action::Clone => {
                if let Some(source) = self.targets().first().cloned() {
                    self.start_form(Some(source));
                }
            }
            Action::Keys => {
                if let Some(name) = self.targets().first().cloned() {
                    if self.detail.as_ref().map(|d| &d.account.username) != Some(&name) {
                        self.detail = self.load_detail(&name);
                    }
                    if self.detail.is_some() {
                        self.key_selected = 0;
                        self.screen = Screen::Keys;
                    }
                }
            }
            Action::Tokens => {
                if let Some(name) = self.targets().first().cloned() {
                    if self.detail.as_ref().map(|d| &d.account.username) != Some(&name) {
                        self.detail = self.load_detail(&name);
                    }
                    match self.tokens.load(&self.services, &self.actor, &name) {
                        Ok(()) if self.detail.is_some() => {
                            self.key_selected = 0;
                            self.screen = Screen::Tokens;
                        }
                        Ok(()) => {}
                        Err(e) => self.fail(&e),
                    }
                }
            }
            Action::RevokeToken => {
                if let Some((name, question)) = self.tokens.revoke_question(self.key_selected) {
                    self.confirm(question, vec![], Change::RevokeToken { name });
                }
            }
            Action::AddKey => {
                if let Some(name) = self.targets().first().cloned() {
                    let title = self.trf("console.action.add_key", &[("name", &name)]);
                    self.input_popup(Prompt::KeyLine, title, vec![name], String::new());
                }
            }
            Action::RemoveKey => {
                let key = self.detail.as_ref().and_then(|d| {
                    d.account
                        .credentials
                        .keys
                        .get(self.key_selected)
                        .map(|k| (d.account.username.clone(), k.clone()))
                });
                if let Some((target, k)) = key {
                    let question = self.trf(
                        "console.action.remove_key_q",
                        &[
                            ("fingerprint", &k.fingerprint),
                            ("comment", &k.comment),
                            ("name", &target),
                        ],
                    );
                    let change = Change::RemoveKey {
                        target,
                        fingerprint: k.fingerprint,
                    };
                    self.confirm(question, vec![], change);
                }
            }
            Action::Password => {
                if let Some(name) = self.targets().first().cloned() {
                    let title = self.trf("console.action.set_password", &[("name", &name)]);
                    let prompt = super::password::prompt(&self.actor, &name);
                    self.input_popup(prompt, title, vec![name], String::new());
                }
            }
            Action::Cert => {
                if let Some(target) = self.targets().first().cloned() {
                    let hours = self.services.config().hosts.cert_validity.num_hours();
                    let question = self.trf(
                        "console.action.cert_q",
                        &[("name", &target), ("hours", &hours.to_string())],
                    );
                    self.confirm(question, vec![], Change::Cert { target });
                }
            }
            Action::Totp => {
                if let Some(target) = self.targets().first().cloned() {
                    let question = self.trf("console.action.totp_q", &[("name", &target)]);
                    self.confirm(question, vec![], Change::Totp { target });
                }
            }
            Action::Refresh => {
                self.generation = None;
                self.refresh();
            }
            Action::Lifecycle => {
                let until = self.today + chrono::Duration::days(30);
                match self.services.lifecycle_preview(&self.actor, until) {
                    Ok(plan) => {
                        self.plan = plan;
                        self.screen = Screen::Lifecycle;
                    }
                    Err(e) => self.fail(e),
                }
            }
            Action::Requests => match self.services.request_list(&self.actor) {
                Ok(list) => {
                    self.requests = list;
                    self.screen = Screen::Requests;
                    self.selected = 0;
                }
                Err(e) => self.fail(e),
            },
            Action::Outbox => match self.services.notify_queue(&self.actor) {
                Ok(list) => {
                    self.outbox = list;
                    self.screen = Screen::Outbox;
                }
                Err(e) => self.fail(e),
            },
            Action::Approve | Action::Deny => {
                let pending = self
                    .requests
                    .iter()
                    .filter(|r| r.status == crate::service::requests::RequestStatus::Pending)
                    .nth(self.selected)
                    .cloned();
                match (pending, action) {
                    (Some(r), Action::Approve) => {
                        let id = r.id.to_string();
                        let question = match (r.kind.as_str(), r.end_date) {
                            ("extend", Some(end)) => self.trf(
                                "console.action.approve_extend_q",
                                &[
                                    ("id", &id),
                                    ("name", &r.account),
                                    ("date", &end.to_string()),
                                ],
                            ),
                            (_, _) => self.trf(
                                "console.action.approve_create_q",
                                &[("id", &id), ("name", &r.account), ("who", &r.requested_by)],
                            ),
                        };
                        let change = Change::Decide {
                            id: r.id,
                            approve: true,
                            reason: None,
                        };
                        self.confirm(question, vec![], change)
                    }
                    (Some(r), _) => {
                        let title =
                            self.trf("console.action.deny_title", &[("id", &r.id.to_string())]);
                        self.input_popup(Prompt::DenyReason(r.id), title, vec![], String::new())
                    }
                    (None, _) => self.fail(self.tr("console.action.no_request")),
                }
            }
            Action::Sessions => match self.services.session_list(&self.actor) {
                Ok(list) => {
                    self.sessions = list;
                    self.screen = Screen::Sessions;
                    self.selected = 0;
                }
                Err(e) => self.fail(e),
            },
            Action::Kill => match self.screen {
                Screen::Sessions => {
                    if let Some(s) = self.sessions.get(self.selected) {
                        let question = self.trf(
                            "console.action.kill_session_q",
                            &[
                                ("id", &s.id.to_string()),
                                ("name", &s.account),
                                ("address", &s.address),
                            ],
                        );
                        let change = Change::KillSession { id: s.id };
                        self.confirm(question, vec![], change);
                    }
                }
                _ => {
                    if let [target] = self.targets().as_slice() {
                        let question = self.trf("console.action.kill_all_q", &[("name", target)]);
                        let change = Change::KillUser {
                            target: target.clone(),
                        };
                        self.confirm(question, vec![], change);
                    }
                }
            },
            Action::Lockouts => match self.lockouts.load(&self.services, &self.actor) {
                Ok(()) => {
                    self.screen = Screen::Lockouts;
                    self.selected = 0;
                }
                Err(e) => self.fail(e),
            },
            Action::Unlock => {
                if let Some((what, question)) =
                    self.lockouts.unlock_question(self.selected, self.zone)
                {
                    self.confirm(question, vec![], Change::Unlock { what });
                }
            }
            Action::Connectors | Action::RetryConnector | Action::ReconcileConnector => {
                use super::connectors::Outcome;
                let (s, a) = (&self.services, &self.actor);
                match self.connectors.act(action, s, a, self.selected) {
                    Outcome::Shown => (self.screen, self.selected) = (Screen::Connectors, 0),
                    Outcome::Said(line) => self.message = Some((false, line)),
                    Outcome::Ask(name, q) => self.confirm(q, vec![], Change::Reconcile { name }),
                    Outcome::Failed(e) => self.fail(e),
                }
            }
            Action::Hosts => match self.hosts.load(&self.services, &self.actor) {
                Ok(()) => {
                    self.screen = Screen::Hosts;
                    self.selected = 0;
                }
                Err(e) => self.fail(e),
            },
            Action::RemoveHost => {
                if let Some((name, question)) = self.hosts.remove_question(self.selected) {
                    self.confirm(question, vec![], Change::RemoveHost { name });
                }
            }
            Action::Audit => self.load_audit(),
            Action::Orphans => match self.services.report_orphans(&self.actor) {
                Ok(orphans) => {
                    self.orphans = orphans;
                    self.screen = Screen::Orphans;
                }
                Err(e) => self.fail(e),
            },
            Action::Command => self.command = Some(String::new()),
            Action::Theme => {
                let at = SHIPPED
                    .iter()
                    .position(|(n, _)| self.theme.name.starts_with(n))
                    .unwrap_or(0);
                let (next, _) = SHIPPED
                    .get(at + 1)
                    .or(SHIPPED.first())
                    .copied()
                    .unwrap_or(("default", ""));
                self.theme = Theme::choose(Some(next), self.no_color);
                // Kept on the account: the next console opens with it.
                let kept =
                    self.actor.is_account && self.services.set_own_theme(&self.actor, next).is_ok();
                let note = if kept {
                    self.tr("console.message.theme_kept")
                } else {
                    ""
                };
                let line = self.trf(
                    "console.message.theme",
                    &[("name", &self.theme.name), ("note", note)],
                );
                self.message = Some((false, line));
            }
            Action::Help if self.screen == Screen::Help => self.screen = self.help_from,
            Action::Help => {
                self.help_from = self.screen;
                self.help_scroll = 0;
                self.screen = Screen::Help;
            }
            Action::Quit => self.quit = true,
        }
        true
    }

    fn back(&mut self) {
        match self.screen {
            Screen::Accounts if !self.query.is_empty() || !self.marked.is_empty() => {
                self.query.clear();
                self.marked.clear();
                self.filter();
            }
            Screen::Keys | Screen::Tokens => self.screen = Screen::Detail,
            Screen::Help => self.screen = self.help_from,
            // Self-service has one page of its own to come back to.
            _ if self.self_service() => {
                let me = self.actor.name.clone();
                self.open(&me);
            }
            Screen::Detail => {
                self.screen = Screen::Accounts;
                self.detail = None;
            }
            _ => self.screen = Screen::Accounts,
        }
    }

    fn start_form(&mut self, source: Option<String>) {
        let may_create = allowed(&self.actor, Permission::CreateAccount, None);
        // Those who may not create may submit the form as a request.
        let as_request =
            !may_create && source.is_none() && self.services.may_request_accounts(&self.actor);
        if !may_create && !as_request {
            self.fail("permission denied: create accounts");
            return;
        }
        self.form_as_request = as_request;
        let config = self.services.config();
        let form = match &source {
            None => Form::new(config, self.today),
            Some(name) => match self.target_account(name) {
                Some(a) => Form::clone_of(config, self.today, &a),
                None => return self.fail(format!("no account named '{name}'")),
            },
        };
        self.form = Some(form);
        self.form_return = self.screen;
        self.screen = Screen::Form;
    }

    fn form_key(&mut self, key: Key) {
        let Some(mut form) = self.form.take() else {
            self.screen = self.form_return;
            return;
        };
        let lookup = ServiceLookup(&self.services, &self.actor);
        let outcome = form.handle(&key, self.services.config(), self.today, &lookup);
        match outcome {
            FormOutcome::Stay => self.form = Some(form),
            FormOutcome::Cancel => {
                if !matches!(form.stage, Stage::Done(_)) {
                    self.said("console.message.nothing_created");
                }
                self.screen = self.form_return;
            }
            FormOutcome::OpenCreated(name) => {
                self.generation = None;
                self.refresh();
                self.open(&name);
            }
            FormOutcome::Submit if self.form_as_request => {
                let (name, _) = form.input(self.today);
                self.form = Some(form);
                self.input_popup(
                    Prompt::AccountRequestReason,
                    format!("Submit {name} as a request"),
                    vec![],
                    String::new(),
                );
            }
            FormOutcome::Submit => {
                let (name, input) = form.input(self.today);
                let result = match &form.source {
                    Some(source) => self
                        .services
                        .clone_account(&self.actor, source, &name, input),
                    None => self.services.create(&self.actor, &name, input),
                };
                match result {
                    Ok(account) => {
                        form.notices = Some(self.notices_about(&account.username));
                        form.stage = Stage::Done(Box::new(account));
                        form.error = None;
                        self.generation = None;
                        self.refresh();
                    }
                    Err(e) => {
                        form.stage = Stage::Editing;
                        form.error = Some(e.to_string());
                    }
                }
                self.form = Some(form);
            }
        }
    }

    /// What the outbox holds about `name`, for the done screen.
    fn notices_about(&self, name: &str) -> String {
        use crate::service::notify::Delivery;
        match self.services.notify_queue(&self.actor) {
            Err(_) => self.tr("console.notices.hidden").into(),
            Ok(queue) => {
                let to: Vec<String> = queue
                    .iter()
                    .filter(|e| e.account == name)
                    .map(|e| match &e.delivery {
                        Delivery::Email { to, .. } => to.join(", "),
                        Delivery::Webhook { url, .. } => url.clone(),
                    })
                    .collect();
                let notify = &self.services.config().notify;
                if to.is_empty() && notify.smtp.is_none() && notify.webhooks.is_empty() {
                    self.tr("console.notices.none").into()
                } else if to.is_empty() {
                    self.tr("console.notices.sent").into()
                } else {
                    self.trf(
                        "console.notices.queued",
                        &[("count", &to.len().to_string()), ("to", &to.join("; "))],
                    )
                }
            }
        }
    }

    fn load_audit(&mut self) {
        let mut filter = AuditFilter {
            limit: 500,
            ..Default::default()
        };
        for word in self.audit_filter.split_whitespace() {
            match word.split_once('=') {
                Some(("actor", v)) => filter.actor = Some(v.to_string()),
                Some(("target", v)) => filter.target = Some(v.to_string()),
                Some(("action", v)) => filter.action = Some(v.to_string()),
                _ => {
                    self.fail(format!("'{word}': use actor=, target= or action="));
                    return;
                }
            }
        }
        match self.services.audit_tail(&self.actor, &filter) {
            Ok(mut events) => {
                events.reverse();
                self.audit = events;
                self.chain = Some(match self.services.audit_chain(&self.actor) {
                    Ok(r) => match r.broken {
                        None => format!("chain intact: {} events", r.events),
                        Some(b) => format!("CHAIN BROKEN: {b}"),
                    },
                    Err(e) => e.to_string(),
                });
                self.screen = Screen::Audit;
                self.selected = 0;
            }
            Err(e) => self.fail(e),
        }
    }

    /// Runs a `:` line with the exec grammar; its output opens in a panel.
    fn run_command(&mut self, line: &str) {
        let words = match shell_words::split(line) {
            Ok(w) if w.is_empty() => return,
            Ok(w) => crate::cli::join_free_text(w),
            Err(e) => return self.fail(format!("cannot parse the command line: {e}")),
        };
        let (text, error) = match CommandLine::try_parse_from(&words) {
            Err(e) => {
                use clap::error::ErrorKind;
                match e.kind() {
                    ErrorKind::DisplayHelp
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => (e.to_string(), false),
                    _ => (crate::cli::usage_line(&e, ":help"), true),
                }
            }
            Ok(parsed) if matches!(parsed.command, crate::cli::Command::Import { .. }) => {
                (self.tr("console.message.import_stdin").into(), true)
            }
            Ok(parsed) if parsed.command.reads_stdin() => {
                (self.tr("console.message.reads_stdin").into(), true)
            }
            Ok(parsed) => {
                let mut out = Vec::new();
                let result = crate::cli::run_with(
                    &self.services,
                    &self.actor,
                    parsed.command,
                    parsed.display.into(),
                    &mut &[][..],
                    &mut out,
                );
                let mut text = String::from_utf8_lossy(&out).into_owned();
                match result {
                    Ok(()) => (text, false),
                    Err(e) => {
                        text.push_str(&format!("error: {e}"));
                        (text, true)
                    }
                }
            }
        };
        self.popup = Some(Popup::Text {
            title: format!(":{line}"),
            text: if text.trim().is_empty() {
                "(done, no output)".into()
            } else {
                text
            },
            error,
            scroll: 0,
        });
        self.generation = None;
        self.refresh();
    }

    fn answer(&mut self, popup: Popup, key: Key) {
        match popup {
            Popup::Input {
                mut prompt,
                title,
                targets,
                mut text,
                carry,
                error,
            } => {
                match key {
                    Key::Esc => return self.said("console.message.cancelled"),
                    Key::Enter => return self.submit(prompt, title, targets, text, carry),
                    Key::Backspace => {
                        text.pop();
                    }
                    Key::Ctrl('u') => text.clear(),
                    Key::Tab => prompt = super::password::toggle(prompt),
                    Key::Char(c) => text.push(c),
                    Key::Paste(p) if prompt == Prompt::KeyLine => text.push_str(p.trim()),
                    Key::Paste(p) => text.push_str(p.lines().next().unwrap_or_default()),
                    _ => {}
                }
                self.popup = Some(Popup::Input {
                    prompt,
                    title,
                    targets,
                    text,
                    carry,
                    error,
                });
            }
            Popup::Confirm {
                question,
                targets,
                change,
            } => match key {
                Key::Char('y') | Key::Char('Y') => self.apply(change),
                Key::Char('n') | Key::Char('N') | Key::Esc => {
                    self.said("console.message.cancelled")
                }
                _ => {
                    self.popup = Some(Popup::Confirm {
                        question,
                        targets,
                        change,
                    })
                }
            },
            Popup::Text {
                title,
                text,
                error,
                scroll,
            } => {
                let scroll = match key {
                    Key::Esc | Key::Enter | Key::Char('q') => return,
                    Key::Down | Key::Char('j') => scroll.saturating_add(1),
                    Key::Up | Key::Char('k') => scroll.saturating_sub(1),
                    Key::PageDown | Key::Char(' ') => scroll.saturating_add(10),
                    Key::PageUp => scroll.saturating_sub(10),
                    _ => scroll,
                };
                self.popup = Some(Popup::Text {
                    title,
                    text,
                    error,
                    scroll,
                });
            }
        }
    }

    /// Enter on a prompt: the next step (a confirmation, usually), or the
    /// prompt again with what is wrong.
    fn submit(
        &mut self,
        prompt: Prompt,
        title: String,
        targets: Vec<String>,
        text: String,
        carry: Option<String>,
    ) {
        let again = |error: String, text: String| Popup::Input {
            prompt,
            title: title.clone(),
            targets: targets.clone(),
            text,
            carry: carry.clone(),
            error: Some(error),
        };
        let value = text.trim().to_string();
        match prompt {
            Prompt::DisableReason
            | Prompt::DenyReason(_)
            | Prompt::RequestReason
            | Prompt::AccountRequestReason
                if value.is_empty() =>
            {
                self.popup = Some(again(
                    self.tr("console.action.reason_required").into(),
                    text,
                ));
            }
            Prompt::DisableReason => {
                let question = self.trf(
                    "console.action.disable_q",
                    &[("names", &list_names(&targets)), ("reason", &value)],
                );
                let change = Change::Disable {
                    targets: targets.clone(),
                    reason: value,
                };
                self.confirm(question, targets, change);
            }
            Prompt::DenyReason(id) => {
                let change = Change::Decide {
                    id,
                    approve: false,
                    reason: Some(value.clone()),
                };
                let question = self.trf(
                    "console.action.deny_q",
                    &[("id", &id.to_string()), ("reason", &value)],
                );
                self.confirm(question, vec![], change);
            }
            Prompt::ExtendDate | Prompt::RequestDate => match parse_date(&value, self.today) {
                Err(e) => self.popup = Some(again(e, text)),
                Ok(end) if prompt == Prompt::RequestDate => {
                    self.popup = Some(Popup::Input {
                        prompt: Prompt::RequestReason,
                        title: self.trf("console.action.ask_for", &[("date", &end.to_string())]),
                        targets,
                        text: String::new(),
                        carry: Some(end.to_string()),
                        error: None,
                    });
                }
                Ok(end) => {
                    let question = self.trf(
                        "console.action.extend_q",
                        &[("names", &list_names(&targets)), ("date", &end.to_string())],
                    );
                    let change = Change::Extend {
                        targets: targets.clone(),
                        end,
                    };
                    self.confirm(question, targets, change);
                }
            },
            Prompt::AccountRequestReason => {
                let Some(mut form) = self.form.take() else {
                    return;
                };
                let (name, input) = form.input(self.today);
                match self
                    .services
                    .request_create(&self.actor, &name, input, &value)
                {
                    Ok(r) => {
                        self.screen = self.form_return;
                        self.requests = self.services.request_list(&self.actor).unwrap_or_default();
                        let id = r.id.to_string();
                        let line = self.trf(
                            "console.message.request_pending",
                            &[("id", &id), ("name", &name)],
                        );
                        self.message = Some((false, line));
                    }
                    Err(e) => {
                        form.stage = Stage::Editing;
                        form.error = Some(e.to_string());
                        self.form = Some(form);
                    }
                }
            }
            Prompt::RequestReason => {
                let end = carry
                    .as_deref()
                    .and_then(|d| parse_date(d, self.today).ok());
                let (Some(end), Some(name)) = (end, targets.first()) else {
                    return;
                };
                match self.services.request_extend(&self.actor, name, end, &value) {
                    Ok(r) => {
                        let line = self.trf(
                            "console.message.request_sent",
                            &[
                                ("id", &r.id.to_string()),
                                ("name", name),
                                ("date", &end.to_string()),
                            ],
                        );
                        self.message = Some((false, line))
                    }
                    Err(e) => self.fail(e),
                }
            }
            Prompt::PurgeName => match targets.first() {
                Some(name) if *name == value => {
                    let change = Change::Purge {
                        target: name.clone(),
                    };
                    let question = self.trf("console.action.purge_q", &[("name", name)]);
                    self.confirm(question, vec![], change);
                }
                Some(name) => {
                    let line = self.trf("console.action.purge_exactly", &[("name", name)]);
                    self.popup = Some(again(line, text))
                }
                None => {}
            },
            Prompt::KeyLine => match crate::domain::key::parse_public_key(&value) {
                Err(e) => self.popup = Some(again(e, text)),
                Ok(_) => {
                    self.popup = Some(Popup::Input {
                        prompt: Prompt::KeyExpiry,
                        title,
                        targets,
                        text: String::new(),
                        carry: Some(value),
                        error: None,
                    });
                }
            },
            Prompt::KeyExpiry => {
                let Some(name) = targets.first() else { return };
                let expires = if value.is_empty() {
                    None
                } else {
                    match parse_date(&value, self.today) {
                        Ok(day) => Some(day),
                        Err(e) => return self.popup = Some(again(e, text)),
                    }
                };
                let line = carry.clone().unwrap_or_default();
                match self.services.key_add(&self.actor, name, &line, expires) {
                    Ok(k) => {
                        let until = expires.map_or(String::new(), |d| {
                            self.trf("console.message.key_until", &[("date", &d.to_string())])
                        });
                        let short: String = k.fingerprint.chars().take(19).collect();
                        let added = self.trf(
                            "console.message.key_added",
                            &[("fingerprint", &short), ("name", name), ("until", &until)],
                        );
                        self.message = Some((false, added));
                        self.after_change();
                    }
                    Err(e) => self.popup = Some(again(e.to_string(), text)),
                }
            }
            Prompt::Password(temporary) => {
                let Some(name) = targets.first() else { return };
                let temporary = temporary.unwrap_or(false);
                let set = super::password::submit(
                    &self.services,
                    &self.actor,
                    self.lang,
                    name,
                    &text,
                    temporary,
                );
                match set {
                    Ok(line) => self.message = Some((false, line)),
                    Err(e) => self.popup = Some(again(e, String::new())),
                }
            }
            Prompt::ListFilter => match Filters::parse(&value) {
                Ok(f) => {
                    self.filters = f;
                    self.selected = 0;
                    self.filter();
                }
                Err(e) => self.popup = Some(again(e, text)),
            },
            Prompt::AuditFilter => {
                self.audit_filter = value;
                self.load_audit();
            }
        }
    }

    fn after_change(&mut self) {
        self.generation = None;
        self.refresh();
    }

    fn apply(&mut self, change: Change) {
        let mut popup = None;
        let result = super::changes::run(
            &self.services,
            &self.actor,
            (self.lang, self.zone),
            &change,
            &mut popup,
        );
        if popup.is_some() {
            self.popup = popup;
        }
        self.message = Some(match result {
            Ok(done) => (false, done),
            Err(e) => (true, e),
        });
        if matches!(change, Change::KillSession { .. } | Change::KillUser { .. }) {
            self.sessions = self.services.session_list(&self.actor).unwrap_or_default();
        }
        if let Change::RevokeToken { .. } = change {
            let owner = self.tokens.owner.clone();
            let _ = self.tokens.load(&self.services, &self.actor, &owner);
        }
        if let Change::Unlock { .. } = change {
            let _ = self.lockouts.load(&self.services, &self.actor);
        }
        if let Change::Reconcile { .. } = change {
            let _ = self.connectors.load(&self.services, &self.actor);
        }
        if let Change::RemoveHost { .. } = change {
            let _ = self.hosts.load(&self.services, &self.actor);
            self.selected = self.selected.min(self.hosts.list.len().saturating_sub(1));
        }
        if let Change::Decide { .. } = change {
            self.requests = self.services.request_list(&self.actor).unwrap_or_default();
        }
        if let Change::Purge { .. } = change {
            if self.screen != Screen::Accounts {
                self.screen = Screen::Accounts;
                self.detail = None;
            }
        }
        self.marked.clear();
        self.after_change();
        self.key_selected = self.key_selected.min(self.rows().saturating_sub(1));
    }
}

/// "bob", "bob, carla" or "3 accounts".
pub fn list_names(names: &[String]) -> String {
    match names {
        [] => "nobody".into(),
        [one] => one.clone(),
        few if few.len() <= 3 => few.join(", "),
        many => format!("{} accounts", many.len()),
    }
}

/// "42", or "1000+" when the count stopped early.
pub fn count_text(hits: &Hits) -> String {
    if hits.exact {
        hits.total.to_string()
    } else {
        format!("{}+", hits.total)
    }
}

/// The status word and the effective state, for colouring.
pub fn status(a: &Account, today: NaiveDate) -> (String, Effective) {
    let e = effective(a, today);
    let word = match e {
        Effective::Disabled(reason) => format!("disabled ({reason})"),
        other => other.as_str().to_string(),
    };
    (word, e)
}
