//! The console without a network: `App` driven key by key, drawn with
//! ratatui's TestBackend at 80x24 and 120x40. Snapshots live in
//! `src/tui/snapshots/`; they were read line by line when accepted.

use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;

use super::app::{App, Screen};
use super::theme::Theme;
use crate::domain::Kind;
use crate::service::accounts::AccountInput;
use crate::service::sessions::{SessionInfo, SessionKind};
use crate::service::testkit::services;
use crate::service::{Actor, Source};
use crate::term::input::Key;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@laptop";
const OTHER_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFGmHNh6c75bc4L+ue9g5Zt4uD3YNFJL9buZSf8U4KI1 dave@desk";

/// root (admin) looking at bob, carla and dave, which root created.
fn app() -> App {
    let (s, _clock, _) = services();
    let root = s.load("root").unwrap();
    // An account actor, not the local operator: its name is in every snapshot.
    let operator = Actor::account(&root, Source::Ssh("192.0.2.1".into()), None);
    for (name, company, kind) in [
        ("bob", "Acme", Kind::Contractor),
        ("carla", "Globex", Kind::Vendor),
        ("dave", "Acme", Kind::Intern),
    ] {
        let input = AccountInput {
            email: Some(format!("{name}@{}.example", company.to_lowercase())),
            display_name: Some(format!("{name} builder")),
            kind: Some(kind),
            company: Some(company.into()),
            sponsor: Some("root".into()),
            project: Some("apollo".into()),
            end_date: Some(s.today() + chrono::Duration::days(20)),
            ..Default::default()
        };
        s.create(&operator, name, input).unwrap();
    }
    s.key_add(&operator, "bob", KEY, None).unwrap();
    App::new(s, operator)
}

/// A live console session of bob's, as if he were logged in from 192.0.2.7.
fn bob_console(app: &App) -> crate::service::sessions::SessionTicket {
    let now = app.services.now();
    app.services.session_open(SessionInfo {
        id: 0,
        account: "bob".into(),
        address: "192.0.2.7".into(),
        method: "publickey".into(),
        fingerprint: None,
        started: now,
        last_input: now,
        kind: SessionKind::Console,
        command: None,
    })
}

fn screen(app: &App, w: u16, h: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| super::view::draw(app, f)).unwrap();
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

/// Snapshots the screen at both sizes.
fn snap(name: &str, app: &App) {
    insta::assert_snapshot!(format!("{name}_80x24"), screen(app, 80, 24));
    insta::assert_snapshot!(format!("{name}_120x40"), screen(app, 120, 40));
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        app.handle(Key::Char(c));
    }
}

fn keys(app: &mut App, keys: &[Key]) {
    for k in keys {
        app.handle(k.clone());
    }
}

fn open(app: &mut App, name: &str) {
    app.handle(Key::Char('/'));
    typed(app, name);
    keys(app, &[Key::Enter, Key::Enter]);
    assert_eq!(app.screen, Screen::Detail);
    assert_eq!(app.detail.as_ref().unwrap().account.username, name);
}

#[test]
fn accounts_screen() {
    let app = app();
    snap("accounts", &app);
    assert!(screen(&app, 79, 24).contains("terminal too small"));
    assert!(screen(&app, 80, 23).contains("terminal too small"));
}

#[test]
fn search_narrows_by_part_of_an_email_or_a_key_fingerprint() {
    let mut app = app();
    app.handle(Key::Char('/'));
    typed(&mut app, "globex");
    assert_eq!(app.hits.names.len(), 1);
    snap("accounts_search", &app);
    app.handle(Key::Esc);
    assert_eq!(app.hits.names.len(), 4, "Esc clears the search");
    // Several words must all match; a key fingerprint is searchable.
    app.handle(Key::Char('/'));
    typed(&mut app, "acme dave");
    assert_eq!(app.hits.names.len(), 1);
    app.handle(Key::Esc);
    let fp = app.services.key_list(&app.actor, "bob").unwrap()[0]
        .fingerprint
        .clone();
    app.handle(Key::Char('/'));
    typed(&mut app, &fp[7..20]);
    assert_eq!(app.selected_account().unwrap().username, "bob");
}

#[test]
fn sort_and_filter_the_table() {
    let mut app = app();
    let order =
        |app: &App| -> Vec<String> { app.hits.names.iter().map(|n| n.to_string()).collect() };
    assert_eq!(order(&app), ["bob", "carla", "dave", "root"]);
    app.handle(Key::Char('s')); // by name
    app.handle(Key::Char('s')); // by kind
    assert_eq!(order(&app), ["bob", "root", "dave", "carla"]);
    app.handle(Key::Char('i'));
    assert_eq!(order(&app), ["carla", "dave", "root", "bob"]);
    assert!(screen(&app, 120, 40).contains("KIND▼"));
    app.handle(Key::Char('f'));
    typed(&mut app, "kind=intern");
    app.handle(Key::Enter);
    assert_eq!(order(&app), ["dave"]);
    app.handle(Key::Char('f'));
    keys(&mut app, &[Key::Ctrl('u')]);
    typed(&mut app, "expiring=30 sponsor=root");
    app.handle(Key::Enter);
    assert_eq!(order(&app).len(), 3);
    snap("accounts_filtered", &app);
    app.handle(Key::Char('f'));
    keys(&mut app, &[Key::Ctrl('u')]);
    typed(&mut app, "colour=blue");
    app.handle(Key::Enter);
    assert!(screen(&app, 80, 24).contains("unknown filter 'colour'"));
}

#[test]
fn detail_shows_every_field_keys_sessions_and_activity() {
    let mut app = app();
    let _ticket = bob_console(&app);
    open(&mut app, "bob");
    let text = screen(&app, 120, 40);
    for needle in [
        "bob@acme.example",
        "apollo",
        "sponsor       root",
        "keys (1)",
        "bob@laptop",
        "live sessions (1)",
        "192.0.2.7",
        "recent activity",
        "key.add",
        "warn sponsor",
    ] {
        assert!(text.contains(needle), "detail lacks {needle}:\n{text}");
    }
    snap("detail", &app);
}

#[test]
fn disable_asks_a_reason_then_confirms_then_shows_the_new_status() {
    let mut app = app();
    open(&mut app, "bob");
    app.handle(Key::Char('d'));
    app.handle(Key::Enter);
    assert!(screen(&app, 80, 24).contains("a reason is required"));
    typed(&mut app, "contract ended");
    snap("disable_reason", &app);
    app.handle(Key::Enter);
    assert!(screen(&app, 80, 24).contains("Disable bob (contract ended)?"));
    snap("disable_confirm", &app);
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
    assert!(app.services.load("bob").unwrap().disable_note.is_some());
}

#[test]
fn marked_rows_are_disabled_together_after_one_confirmation_listing_them() {
    let mut app = app();
    keys(&mut app, &[Key::Char(' '), Key::Char(' ')]); // bob, carla
    assert_eq!(app.marked.len(), 2);
    app.handle(Key::Char('d'));
    typed(&mut app, "project over");
    app.handle(Key::Enter);
    snap("bulk_confirm", &app);
    app.handle(Key::Char('y'));
    for name in ["bob", "carla"] {
        let a = app.services.load(name).unwrap();
        assert_eq!(a.disable_note.as_deref(), Some("project over"));
    }
    assert!(app.services.load("dave").unwrap().disable_note.is_none());
    assert!(app.marked.is_empty());
    // Extend the marked set at once.
    keys(&mut app, &[Key::Char('G'), Key::Char(' ')]); // root
    keys(&mut app, &[Key::Char('g'), Key::Char(' ')]); // bob
    app.handle(Key::Char('x'));
    typed(&mut app, "2027-01-15");
    app.handle(Key::Enter);
    assert!(screen(&app, 120, 40).contains("Extend bob, root to 2027-01-15?"));
    app.handle(Key::Char('y'));
    let end = chrono::NaiveDate::from_ymd_opt(2027, 1, 15);
    assert_eq!(app.services.load("bob").unwrap().end_date, end);
    assert_eq!(app.services.load("root").unwrap().end_date, end);
}

#[test]
fn delete_restore_and_purge_with_the_typed_name() {
    let mut app = app();
    open(&mut app, "carla");
    app.handle(Key::Char('D'));
    app.handle(Key::Char('y'));
    assert!(screen(&app, 80, 24).contains("deleted carla"));
    app.handle(Key::Char('u'));
    app.handle(Key::Char('y'));
    assert!(screen(&app, 80, 24).contains("restored carla"));
    app.handle(Key::Char('D'));
    app.handle(Key::Char('y'));
    app.handle(Key::Char('P'));
    typed(&mut app, "carl");
    app.handle(Key::Enter);
    assert!(screen(&app, 80, 24).contains("type carla exactly"));
    snap("purge_prompt", &app);
    typed(&mut app, "a");
    app.handle(Key::Enter);
    app.handle(Key::Char('y'));
    assert!(app.services.load("carla").is_err());
    assert_eq!(app.screen, Screen::Accounts);
    assert!(screen(&app, 80, 24).contains("purged carla"));
}

#[test]
fn create_through_form_review_and_done() {
    let mut app = app();
    app.handle(Key::Char('n'));
    assert_eq!(app.screen, Screen::Form);
    snap("create_form", &app);
    typed(&mut app, "erin");
    app.handle(Key::Tab);
    typed(&mut app, "Erin Example");
    app.handle(Key::Tab);
    typed(&mut app, "erin@");
    snap("create_form_invalid", &app);
    typed(&mut app, "initech.example");
    // Into the end date: a contractor needs one.
    app.handle(Key::Enter);
    typed(&mut app, "+30d");
    app.handle(Key::Enter);
    snap("create_review", &app);
    app.handle(Key::Enter);
    let created = app.services.load("erin").unwrap();
    assert_eq!(created.email, "erin@initech.example");
    snap("create_done", &app);
    app.handle(Key::Enter);
    assert_eq!(app.screen, Screen::Detail);
    assert!(screen(&app, 80, 24).contains("erin@initech.example"));
}

#[test]
fn clone_prefills_everything_but_identity() {
    let mut app = app();
    open(&mut app, "dave");
    app.handle(Key::Char('c'));
    let form = app.form.as_ref().unwrap();
    use super::form::FieldKey;
    assert_eq!(form.value(&FieldKey::Kind), "intern");
    assert_eq!(form.value(&FieldKey::Company), "Acme");
    assert_eq!(form.value(&FieldKey::Username), "");
    assert_eq!(form.value(&FieldKey::Email), "");
    snap("clone_form", &app);
    typed(&mut app, "dora");
    app.handle(Key::Tab);
    typed(&mut app, "Dora Explorer");
    app.handle(Key::Tab);
    typed(&mut app, "dora@acme.example");
    keys(&mut app, &[Key::Enter, Key::Enter]);
    let dora = app.services.load("dora").unwrap();
    assert_eq!(
        (dora.kind, dora.project.as_deref()),
        (Kind::Intern, Some("apollo"))
    );
    assert!(dora.credentials.keys.is_empty());
}

#[test]
fn keys_screen_adds_by_paste_and_removes_with_confirmation() {
    let mut app = app();
    open(&mut app, "dave");
    app.handle(Key::Char('p'));
    assert_eq!(app.screen, Screen::Keys);
    app.handle(Key::Char('a'));
    app.handle(Key::Paste("not a key".into()));
    app.handle(Key::Enter);
    assert!(
        screen(&app, 120, 40).contains("Add a key to dave"),
        "the prompt stays"
    );
    keys(&mut app, &[Key::Ctrl('u')]);
    app.handle(Key::Paste(OTHER_KEY.into()));
    app.handle(Key::Enter);
    // Then when it stops working: a bad date is refused, +30d is taken.
    assert!(screen(&app, 120, 40).contains("Key expires"));
    typed(&mut app, "someday");
    app.handle(Key::Enter);
    assert!(screen(&app, 120, 40).contains("Key expires"), "asks again");
    keys(&mut app, &[Key::Ctrl('u')]);
    typed(&mut app, "+30d");
    app.handle(Key::Enter);
    let listed = app.services.key_list(&app.actor, "dave").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].expires_on,
        Some(app.today + chrono::Duration::days(30))
    );
    snap("keys", &app);
    app.handle(Key::Char('d'));
    assert!(screen(&app, 120, 40).contains("Remove key SHA256:"));
    app.handle(Key::Char('y'));
    assert!(app
        .services
        .key_list(&app.actor, "dave")
        .unwrap()
        .is_empty());
    app.handle(Key::Esc);
    assert_eq!(app.screen, Screen::Detail);
}

#[test]
fn command_line_runs_the_exec_grammar_and_shows_its_output() {
    let mut app = app();
    app.handle(Key::Char(':'));
    typed(&mut app, "user disable dave --reason \"left early\"");
    assert!(screen(&app, 80, 24).contains(":user disable dave"));
    app.handle(Key::Enter);
    assert_eq!(
        app.services.load("dave").unwrap().disable_note.as_deref(),
        Some("left early")
    );
    app.handle(Key::Esc);
    app.handle(Key::Char(':'));
    typed(&mut app, "user list --kind intern");
    app.handle(Key::Enter);
    snap("command_output", &app);
    app.handle(Key::Esc);
    app.handle(Key::Char(':'));
    typed(&mut app, "user frobnicate");
    app.handle(Key::Enter);
    assert!(screen(&app, 120, 40).contains("unrecognized subcommand"));
}

#[test]
fn command_line_free_text_takes_the_words_after_it_and_import_points_to_ssh() {
    let mut app = app();
    app.handle(Key::Char(':'));
    typed(&mut app, "user disable dave --reason contract ended");
    app.handle(Key::Enter);
    assert_eq!(
        app.services.load("dave").unwrap().disable_note.as_deref(),
        Some("contract ended")
    );
    app.handle(Key::Esc);
    app.handle(Key::Char(':'));
    typed(&mut app, "import --dry-run");
    app.handle(Key::Enter);
    assert!(screen(&app, 120, 40).contains("ssh HOST import < people.csv"));
}

#[test]
fn sessions_screen_kills_with_confirmation_and_audit_screen_filters_and_shows_the_chain() {
    use crate::service::sessions::Closing;
    let mut app = app();
    let ticket = bob_console(&app);
    app.handle(Key::Char('S'));
    snap("sessions", &app);
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
    app.handle(Key::Char('f'));
    typed(&mut app, "target=carla");
    app.handle(Key::Enter);
    assert!(app
        .audit
        .iter()
        .all(|e| e.target.as_deref() == Some("carla")));
    snap("audit", &app);
}

#[test]
fn lockouts_screen_lists_who_is_locked_and_lifts_one_after_confirming() {
    let mut app = app();
    let ip: std::net::IpAddr = "192.0.2.66".parse().unwrap();
    for _ in 0..5 {
        app.services.login_failed_attempt("bob", ip);
    }
    app.handle(Key::Char('B'));
    assert_eq!(app.screen, Screen::Lockouts);
    let shown = screen(&app, 120, 40);
    assert!(shown.contains("Login lockouts: 2"), "{shown}");
    assert!(
        shown.contains("192.0.2.66") && shown.contains("bob"),
        "{shown}"
    );
    // The rows are sorted: the account (user:bob) after the address (ip:…).
    app.handle(Key::Char('j'));
    app.handle(Key::Char('u'));
    assert!(screen(&app, 120, 40).contains("Lift the lockout of account bob"));
    app.handle(Key::Char('y'));
    let shown = screen(&app, 120, 40);
    assert!(shown.contains("unlocked bob"), "{shown}");
    assert!(shown.contains("Login lockouts: 1"), "{shown}");
    assert!(app
        .services
        .login_locked("bob", "192.0.2.1".parse().unwrap())
        .is_none());
    assert!(app.services.login_locked("carla", ip).is_some());
}

#[test]
fn lifecycle_orphans_requests_and_outbox_screens() {
    let mut app = app();
    let later = app.today + chrono::Duration::days(60);
    app.services
        .request_extend(&app.actor, "bob", later, "project extended")
        .unwrap();
    app.handle(Key::Char('L'));
    snap("lifecycle", &app);
    app.handle(Key::Char('O'));
    snap("orphans", &app);
    app.handle(Key::Char('N'));
    snap("outbox", &app);
    app.handle(Key::Char('R'));
    snap("requests", &app);
    app.handle(Key::Char('a'));
    assert!(screen(&app, 120, 40).contains("Approve #1: extend bob"));
    app.handle(Key::Char('y'));
    assert!(screen(&app, 120, 40).contains("request #1 approved"));
    assert_eq!(app.services.load("bob").unwrap().end_date, Some(later));
}

#[test]
fn help_is_drawn_from_the_keymap() {
    let mut app = app();
    open(&mut app, "bob");
    app.handle(Key::Char('?'));
    // At 120x40 every binding fits; on a small terminal the list scrolls.
    let text = screen(&app, 120, 40);
    let help = |b: &super::keymap::Binding| crate::locale::Lang::En.tr(b.help);
    for b in super::keymap::KEYMAP {
        assert!(text.contains(help(b)), "help lacks {}", help(b));
    }
    snap("help", &app);
    let mut seen = String::new();
    for _ in 0..super::keymap::KEYMAP.len() {
        seen.push_str(&screen(&app, 80, 24));
        app.handle(Key::Char('j'));
    }
    for b in super::keymap::KEYMAP {
        assert!(seen.contains(help(b)), "80x24 help never shows {}", help(b));
    }
    app.handle(Key::Char('?'));
    assert_eq!(
        app.screen,
        Screen::Detail,
        "help returns where it was opened"
    );
}

#[test]
fn a_user_serves_themselves() {
    let (s, _clock, _) = services();
    let operator = Actor::account(&s.load("root").unwrap(), Source::Cli, None);
    let input = AccountInput {
        email: Some("una@example.com".into()),
        display_name: Some("Una User".into()),
        kind: Some(Kind::Contractor),
        end_date: Some(s.today() + chrono::Duration::days(40)),
        roles: Some(vec![crate::domain::Role::User]),
        ..Default::default()
    };
    s.create(&operator, "una", input).unwrap();
    let una = Actor::account(
        &s.load("una").unwrap(),
        Source::Ssh("192.0.2.9".into()),
        None,
    );
    let mut app = App::new(s, una);
    assert_eq!(app.screen, Screen::Detail, "starts on their own page");
    snap("self_service", &app);
    // Their own key.
    app.handle(Key::Char('p'));
    app.handle(Key::Char('a'));
    app.handle(Key::Paste(KEY.into()));
    app.handle(Key::Enter);
    app.handle(Key::Enter); // no expiry
    assert_eq!(app.services.key_list(&app.actor, "una").unwrap().len(), 1);
    app.handle(Key::Esc);
    // A new password, shown as dots while typed.
    app.handle(Key::Char('w'));
    typed(&mut app, "correct horse battery");
    assert!(screen(&app, 80, 24).contains("•••••"));
    app.handle(Key::Enter);
    assert!(screen(&app, 80, 24).contains("password of una set"));
    // An extension is asked for, not granted.
    app.handle(Key::Char('x'));
    typed(&mut app, "+60d");
    app.handle(Key::Enter);
    typed(&mut app, "project runs longer");
    app.handle(Key::Enter);
    assert!(screen(&app, 120, 40).contains("request #1 sent"));
    // Admin-only things are refused by the service.
    app.handle(Key::Char('d'));
    typed(&mut app, "bye");
    keys(&mut app, &[Key::Enter, Key::Char('y')]);
    assert!(screen(&app, 120, 40).contains("permission denied"));
    // TOTP enrolment draws the QR code.
    app.handle(Key::Char('t'));
    app.handle(Key::Char('y'));
    let text = screen(&app, 120, 40);
    assert!(
        text.contains("otpauth://totp/") && text.contains("█"),
        "{text}"
    );
    // Esc comes back to their own page, never to a list.
    keys(&mut app, &[Key::Esc, Key::Char('S'), Key::Esc]);
    assert_eq!(app.screen, Screen::Detail);
}

#[test]
fn changes_made_elsewhere_show_on_the_next_tick_and_an_idle_tick_changes_nothing() {
    let mut app = app();
    assert!(!app.refresh(), "nothing changed: no redraw");
    let (s, actor) = (app.services.clone(), app.actor.clone());
    s.disable(
        &actor,
        "dave",
        crate::domain::DisableReason::Manual,
        Some("x".into()),
    )
    .unwrap();
    assert!(app.refresh());
    assert!(screen(&app, 120, 40).contains("disabled (manual)"));
    assert!(!app.refresh());
}

#[test]
fn statuses_are_coloured_by_the_theme_and_not_at_all_under_no_color() {
    let mut app = app();
    app.services
        .disable(
            &app.actor,
            "dave",
            crate::domain::DisableReason::Manual,
            Some("x".into()),
        )
        .unwrap();
    app.refresh();
    let colour_of = |app: &App, word: &str| {
        let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
        terminal.draw(|f| super::view::draw(app, f)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        for y in 0..40 {
            let line: String = (0..120)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect();
            if let Some(at) = line.find(word) {
                let x = line[..at].chars().count() as u16;
                return buffer[(x, y)].fg;
            }
        }
        panic!("{word} not on screen");
    };
    assert_eq!(colour_of(&app, "active"), Color::Green);
    assert_eq!(colour_of(&app, "disabled (manual)"), Color::Red);
    app.theme = Theme::choose(None, true);
    assert_eq!(colour_of(&app, "active"), Color::Reset);
    assert_eq!(colour_of(&app, "disabled (manual)"), Color::Reset);
}

#[test]
fn a_chosen_theme_is_kept_on_the_account_and_a_bad_one_refused() {
    let mut app = app();
    assert_eq!(app.theme.name, "default");
    app.handle(Key::Char('T'));
    assert_eq!(app.theme.name, "light");
    let root = app.services.load("root").unwrap();
    assert_eq!(root.theme.as_deref(), Some("light"));
    // The change is audited like any other.
    let events = app
        .services
        .audit_tail(
            &app.actor,
            &crate::service::integrity::AuditFilter {
                limit: 1,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(events[0].action, "user.update");
    assert_eq!(events[0].target.as_deref(), Some("root"));
    let bad = app.services.set_own_theme(&app.actor, "neon").unwrap_err();
    assert_eq!(bad.exit_code(), 2);
    let local = app
        .services
        .set_own_theme(&Actor::local_operator(), "light")
        .unwrap_err();
    assert_eq!(local.exit_code(), 4);
}

#[test]
fn tokens_screen_lists_an_accounts_tokens_and_revokes_after_confirming() {
    use crate::service::tokens::TokenScope;
    let mut app = app();
    let made = app
        .services
        .token_create(&app.actor, "bob-ci", TokenScope::Read, None, Some("bob"))
        .unwrap();
    // Used once: the list shows when (noted in memory, not yet written).
    app.services
        .token_authenticate(&made.secret, "192.0.2.9".parse().unwrap())
        .unwrap();
    let used = app.services.now().format("%Y-%m-%d %H:%M").to_string();
    open(&mut app, "bob");
    app.handle(Key::Char('o'));
    assert_eq!(app.screen, Screen::Tokens);
    let shown = screen(&app, 140, 40);
    assert!(shown.contains("API tokens of bob: 1"), "{shown}");
    assert!(
        shown.contains("LAST USED") && shown.contains(&used),
        "{shown}"
    );
    assert!(shown.contains("bob-ci") && shown.contains("read") && shown.contains("active"));
    assert!(
        !shown.contains(&made.secret),
        "the secret is never shown again"
    );
    app.handle(Key::Char('d'));
    assert!(screen(&app, 120, 40).contains("Revoke API token bob-ci of bob"));
    app.handle(Key::Char('n'));
    assert_eq!(
        app.services.token_list(&app.actor).unwrap()[0].state(app.today),
        "active"
    );
    app.handle(Key::Char('d'));
    app.handle(Key::Char('y'));
    assert_eq!(
        app.services.token_list(&app.actor).unwrap()[0].state(app.today),
        "revoked"
    );
    assert!(screen(&app, 120, 40).contains("revoked"));
    app.handle(Key::Esc);
    assert_eq!(app.screen, Screen::Detail);
}

#[test]
fn a_console_opened_while_the_server_builds_its_index_says_indexing_then_shows_the_accounts() {
    let warm = app();
    let cold = warm.services.reopen();
    let mut console = {
        let _building = cold.hold_index_build();
        let mut console = App::new(cold.clone(), warm.actor.clone());
        console.refresh();
        let top = screen(&console, 80, 24);
        assert!(top.lines().next().unwrap().contains("indexing…"), "{top}");
        assert!(!top.contains("bob"), "{top}");
        console
    };
    assert!(console.stale(), "an indexing console asks again");
    console.refresh();
    let top = screen(&console, 80, 24);
    assert!(top.lines().next().unwrap().contains("4 accounts"), "{top}");
    assert!(top.contains("bob") && top.contains("carla"), "{top}");
}

#[test]
fn a_sponsor_submits_the_create_form_as_a_request_and_an_admin_approves_it_on_the_requests_screen()
{
    let admin_app = app();
    let s = admin_app.services.clone();
    let root = Actor::account(&s.load("root").unwrap(), Source::Cli, None);
    let input = AccountInput {
        email: Some("sam@example.com".into()),
        display_name: Some("Sam Sponsor".into()),
        kind: Some(Kind::Employee),
        roles: Some(vec![crate::domain::Role::Sponsor]),
        ..Default::default()
    };
    s.create(&root, "sam", input).unwrap();
    let sam = Actor::account(
        &s.load("sam").unwrap(),
        Source::Ssh("192.0.2.9".into()),
        None,
    );
    let mut app = App::new(s.clone(), sam);
    app.handle(Key::Char('n'));
    assert_eq!(app.screen, Screen::Form, "offered to one who may request");
    typed(&mut app, "erin");
    app.handle(Key::Tab);
    typed(&mut app, "Erin Example");
    app.handle(Key::Tab);
    typed(&mut app, "erin@initech.example");
    app.handle(Key::Enter);
    typed(&mut app, "+30d");
    app.handle(Key::Enter);
    assert!(
        screen(&app, 120, 40).contains("submit as a request"),
        "{}",
        screen(&app, 120, 40)
    );
    app.handle(Key::Enter);
    assert!(screen(&app, 120, 40).contains("Why is this account needed"));
    app.handle(Key::Enter);
    assert!(screen(&app, 120, 40).contains("a reason is required"));
    typed(&mut app, "joins the migration team");
    app.handle(Key::Enter);
    assert!(s.store().account("erin").unwrap().is_none(), "not created");
    let msg = screen(&app, 120, 40);
    assert!(msg.contains("pending an admin's decision"), "{msg}");
    let list = s.request_list(&root).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].kind, "create");
    assert_eq!(list[0].requested_by, "sam");

    // The admin's requests screen lists it; approving creates the account.
    let mut admin_app = admin_app;
    admin_app.handle(Key::Char('R'));
    let shown = screen(&admin_app, 120, 40);
    assert!(
        shown.contains("erin") && shown.contains("create"),
        "{shown}"
    );
    admin_app.handle(Key::Char('a'));
    let shown = screen(&admin_app, 120, 40);
    assert!(shown.contains("create erin (asked by sam)"), "{shown}");
    admin_app.handle(Key::Char('y'));
    let erin = s.load("erin").unwrap();
    assert_eq!(erin.email, "erin@initech.example");
}

#[test]
fn connectors_screen_shows_counts_lists_failures_retries_and_reconciles_after_a_dry_run() {
    let config = format!(
        "{}\n[[connectors]]\nname = \"hr\"\ntype = \"command\"\ncommand = [\"/bin/false\"]\n",
        crate::config::EXAMPLE
    );
    let (s, _clock, _) = crate::service::testkit::services_with(&config, Some("root@x.io"));
    let runner = std::sync::Arc::new(crate::connect::Runner::default());
    s.set_applier(runner.clone());
    let root = s.load("root").unwrap();
    let admin = Actor::account(&root, Source::Ssh("192.0.2.1".into()), None);
    let input = AccountInput {
        email: Some("bob@acme.example".into()),
        display_name: Some("bob builder".into()),
        kind: Some(Kind::Contractor),
        sponsor: Some("root".into()),
        end_date: Some(s.today() + chrono::Duration::days(20)),
        ..Default::default()
    };
    s.create(&admin, "bob", input).unwrap();
    // The target refuses: bob's link fails.
    assert_eq!(s.connector_round(runner.as_ref()).unwrap(), (0, 1));
    let mut app = App::new(s, admin);

    app.handle(Key::Char('C'));
    assert_eq!(app.screen, Screen::Connectors);
    // Wide enough for every column and the whole last error.
    let shown = screen(&app, 160, 40);
    assert!(shown.contains("Connectors: 1"), "{shown}");
    let row = shown.lines().find(|l| l.contains("hr ")).unwrap();
    assert!(row.contains("command"), "{row}");
    assert!(row.contains("never") && row.contains("exited"), "{row}");
    // Enter: who failed and why.
    app.handle(Key::Enter);
    let shown = screen(&app, 120, 40);
    assert!(shown.contains("hr: 1 to look at"), "{shown}");
    let bob = shown.lines().find(|l| l.contains("bob")).unwrap();
    assert!(
        bob.contains("failed ×1") && bob.contains("/bin/false exited"),
        "{bob}"
    );
    // r: due now.
    app.handle(Key::Char('r'));
    assert!(screen(&app, 120, 40).contains("hr: 1 jobs due now"));
    app.handle(Key::Esc);
    assert!(screen(&app, 120, 40).contains("Connectors: 1"));
    // R: the dry run first, then the reconcile once confirmed.
    app.handle(Key::Char('R'));
    let shown = screen(&app, 120, 40);
    assert!(
        shown.contains("the target cannot be read back") && shown.contains("fix what differs?"),
        "{shown}"
    );
    app.handle(Key::Char('y'));
    let shown = screen(&app, 120, 40);
    assert!(
        shown.contains("hr: the target cannot be read back; 0 accounts resent"),
        "{shown}"
    );
    let row = shown.lines().find(|l| l.contains("hr ")).unwrap();
    assert!(row.contains("0 to fix, 0 unmatched"), "{row}");
    // The account's detail lists its links.
    app.handle(Key::Esc);
    app.open("bob");
    let shown = screen(&app, 120, 40);
    let links = shown.lines().find(|l| l.contains("links")).unwrap();
    assert!(links.contains("hr failed"), "{links}");
}

#[test]
fn hosts_screen_shows_who_may_log_in_and_removes_a_host_after_confirming() {
    let mut app = app();
    let s = app.services.clone();
    let web = AccountInput {
        groups: Some(vec!["web".into()]),
        ..Default::default()
    };
    s.host_add(&app.actor, "web1", OTHER_KEY, &["web".to_string()])
        .unwrap();
    s.update(&app.actor, "bob", web).unwrap();
    // bob's detail says where he may log in.
    open(&mut app, "bob");
    assert!(screen(&app, 120, 40).contains("web1"));
    app.handle(Key::Esc);
    app.handle(Key::Char('H'));
    assert_eq!(app.screen, Screen::Hosts);
    for (w, h) in [(80, 24), (120, 40)] {
        let shown = screen(&app, w, h);
        assert!(shown.contains("Hosts: 1"), "{shown}");
        assert!(shown.contains("Who may log in on web1 (1)"), "{shown}");
        assert!(shown.contains("bob") && !shown.contains("carla"), "{shown}");
    }
    app.handle(Key::Char('d'));
    assert!(screen(&app, 120, 40).contains("Remove host web1?"));
    app.handle(Key::Char('y'));
    let shown = screen(&app, 120, 40);
    assert!(shown.contains("removed host web1"), "{shown}");
    assert!(shown.contains("Hosts: none"), "{shown}");
    assert!(!s.is_host_name("web1"));
}

#[test]
fn a_certificate_is_issued_from_the_account_after_confirming() {
    let mut app = app();
    open(&mut app, "bob");
    app.handle(Key::Char('I'));
    assert!(screen(&app, 120, 40).contains("Issue an SSH certificate for bob"));
    app.handle(Key::Char('y'));
    let shown = screen(&app, 120, 40);
    assert!(
        shown.contains("ssh-ed25519-cert-v01@openssh.com"),
        "{shown}"
    );
    assert!(shown.contains("serial 1"), "{shown}");
    assert!(app
        .services
        .audit_tail(&app.actor, &Default::default())
        .unwrap()
        .iter()
        .any(|e| e.action == "cert.issue"));
}

#[test]
fn the_console_speaks_the_viewers_language_and_shows_times_in_their_zone() {
    let mut app = app();
    // Set from the console's own command line, as the holder would.
    app.handle(Key::Char(':'));
    typed(
        &mut app,
        "prefs set root --language de --timezone Asia/Tokyo",
    );
    app.handle(Key::Enter);
    app.handle(Key::Esc);
    app.refresh();
    assert_eq!(app.lang, crate::locale::Lang::De);
    app.screen = Screen::Accounts;
    let text = screen(&app, 120, 40);
    for german in ["4 Konten", "BENUTZER", "ENDE", "suchen", "öffnen"] {
        assert!(text.contains(german), "{german} missing:\n{text}");
    }
    assert!(!text.contains("USERNAME"), "{text}");
    open(&mut app, "bob");
    let text = screen(&app, 120, 40);
    for german in ["Status", "letzte Aktivität", "Schlüssel (1)", "Sponsor"] {
        assert!(text.contains(german), "{german} missing:\n{text}");
    }
    // Instants in the viewer's zone, named; the end date stays a date.
    let created = app.detail.as_ref().unwrap().events[0].at;
    let tokyo = crate::locale::Zone::named(Some("Asia/Tokyo")).minute(created);
    assert!(
        tokyo.ends_with("JST") && text.contains(&tokyo),
        "{tokyo}:\n{text}"
    );
    let end = (app.services.today() + chrono::Duration::days(20)).to_string();
    assert!(text.contains(&end), "{text}");
    snap("detail_german", &app);
    app.handle(Key::Char('d'));
    let text = screen(&app, 120, 40);
    assert!(
        text.contains("bob sperren") && text.contains("abbrechen"),
        "{text}"
    );
    app.handle(Key::Esc);
    app.handle(Key::Char('?'));
    let text = screen(&app, 120, 40);
    assert!(
        text.contains("vorige Zeile") && text.contains("Tasten"),
        "{text}"
    );
}

#[test]
fn the_password_screen_sets_a_temporary_password_with_tab_and_ones_own_without() {
    let mut app = app();
    open(&mut app, "bob");
    app.handle(Key::Char('w'));
    assert!(screen(&app, 80, 24).contains("[ ] temporary"));
    app.handle(Key::Tab);
    assert!(screen(&app, 80, 24).contains("[x] temporary"));
    typed(&mut app, "quiet harbour lamp 42");
    app.handle(Key::Enter);
    assert!(app.popup.is_none(), "{:?}", app.popup);
    let bob = app.services.load("bob").unwrap();
    assert!(bob.credentials.password_temporary);
    assert!(screen(&app, 120, 40).contains("temporary password of bob set"));
    // Tab again: a normal password.
    app.handle(Key::Char('w'));
    app.handle(Key::Tab);
    app.handle(Key::Tab);
    typed(&mut app, "violet staple orbit 7");
    app.handle(Key::Enter);
    assert!(
        !app.services
            .load("bob")
            .unwrap()
            .credentials
            .password_temporary
    );
    // One's own password has no toggle.
    let me = app.actor.name.clone();
    app.open(&me);
    app.handle(Key::Char('w'));
    assert!(!screen(&app, 80, 24).contains("temporary"));
}

#[test]
fn directory_sources_show_on_the_connectors_screen_and_their_fields_are_locked() {
    let config = format!(
        "{}\n[[sources]]\nname = \"corp\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbind_dn = \"cn=admin\"\n\
         bind_password_file = \"keys/ldap_password\"\nbase_dn = \"ou=vendors\"\nkind = \"vendor\"\n\
         map = {{ username = \"uid\", display_name = \"cn\", email = \"mail\" }}\n",
        crate::config::EXAMPLE
    );
    let (s, _clock, local) = crate::service::testkit::services_with(&config, Some("root@x.io"));
    let dir = std::sync::Arc::new(crate::service::sources::FixedReader::new(Ok(vec![
        crate::service::sources::test_entry("amy", "id-amy"),
        crate::service::sources::test_entry("ben", "id-ben"),
    ])));
    s.set_source_reader(dir.clone());
    s.source_sync(&local, "corp", Default::default()).unwrap();
    let root = s.load("root").unwrap();
    let admin = Actor::account(&root, Source::Ssh("192.0.2.1".into()), None);
    let mut app = App::new(s.clone(), admin);
    app.handle(Key::Char('C'));
    assert_eq!(app.screen, Screen::Connectors);
    let shown = screen(&app, 160, 40);
    assert!(shown.contains("Directory sources: 1"), "{shown}");
    let row = shown.lines().find(|l| l.contains("corp ")).unwrap();
    assert!(row.contains("15 min") && row.contains("ok"), "{row}");
    assert!(row.contains("read 2: created 2"), "{row}");
    // A failed run shows its error there.
    dir.set(Err(
        "cannot reach ldap://127.0.0.1:1: connection refused".into()
    ));
    s.source_sync(&local, "corp", Default::default())
        .unwrap_err();
    app.handle(Key::Char('C'));
    let shown = screen(&app, 160, 40);
    let row = shown.lines().find(|l| l.contains("corp ")).unwrap();
    assert!(
        row.contains("failed") && row.contains("cannot reach"),
        "{row}"
    );
    // The account's detail marks what the directory owns.
    app.handle(Key::Esc);
    app.open("amy");
    let shown = screen(&app, 120, 40);
    let name = shown.lines().find(|l| l.contains("amy Example")).unwrap();
    assert!(name.contains("[locked]"), "{name}");
    let source = shown.lines().find(|l| l.contains("source")).unwrap();
    assert!(source.contains("corp uid=amy,ou=vendors"), "{source}");
    let notes_free = !shown
        .lines()
        .any(|l| l.contains("sponsor") && l.contains("[locked]"));
    assert!(notes_free, "{shown}");
}
