//! One authorisation table (issue 10 §6): every command of the exec grammar
//! × every kind of actor → allowed (exit 0), or refused with the accounts,
//! groups, requests and audit trail (but for the `auth.denied` record)
//! unchanged. Each cell runs on a fresh in-memory service, through the same
//! clap grammar and `cli::run` that `ssh host CMD` uses. A command added to
//! the grammar without a row here fails `every_command_has_a_row`.
//!
//! The actors, about the target `tom` (a contractor sponsored by `sam`):
//! admin `ada`, operator `olga`, sponsor of the target `sam`, sponsor of
//! another account `sid`, the user on themself `tom`, another user `uma`.
//!
//! The console offers an action (footer hints) only where `App::offers`
//! says so, which asks the same `authz::allowed`; the last test holds the
//! console's offers to this table, so the two cannot drift.

use std::collections::BTreeSet;

use clap::{CommandFactory, Parser};

use super::{run, Command};
use crate::domain::{Account, Kind, Role};
use crate::service::accounts::AccountInput;
use crate::service::integrity::AuditFilter;
use crate::service::sessions::{SessionInfo, SessionKind};
use crate::service::{testkit, Actor, Services, Source};
use crate::tui::app::App;
use crate::tui::keymap::Action;

#[derive(Parser)]
struct Line {
    #[command(subcommand)]
    command: Command,
}

/// Columns: the actors in the order of `expected`.
const ACTORS: [(&str, &str); 6] = [
    ("admin", "ada"),
    ("operator", "olga"),
    ("sponsor of the target", "sam"),
    ("sponsor of another", "sid"),
    ("user on self", "tom"),
    ("user on another", "uma"),
];

const KEY_TOM: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl tom@x";

/// A distinct ed25519 public key line (its 32 key bytes all `byte`).
fn key_line(byte: u8, comment: &str) -> String {
    use base64::Engine;
    let mut blob = Vec::new();
    for part in [&b"ssh-ed25519"[..], &[byte; 32][..]] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    format!(
        "ssh-ed25519 {} {comment}",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

/// What a row needs in place before its command runs.
#[derive(Clone, Copy)]
enum Before {
    Nothing,
    TomDisabled,
    TomDeleted,
    TomAllowlisted,
    TomInGroup,
    TomEnrolledTotp,
    TomRequested,
    /// Host `web1` (group `interns`) registered.
    HostWeb,
    TomToken,
}

struct Row {
    /// The grammar path this row covers (`user disable`).
    command: &'static str,
    /// The command line; `{session}`, `{fp}` and `{request}` are filled in.
    line: &'static str,
    stdin: &'static str,
    before: Before,
    /// Exit code per actor (see `ACTORS`): 0 allowed, 4 refused, 3 refused
    /// looking like a missing thing (session kill ID).
    expected: [i32; 6],
}

const A: i32 = 0;
const D: i32 = 4;

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    use Before::*;
    let row = |command, line, stdin, before, expected| Row { command, line, stdin, before, expected };
    vec![
        //                                                                                     ada olga sam sid tom uma
        row("whoami", "whoami", "", Nothing,                                                    [A, A, A, A, A, A]),
        row("user list", "user list", "", Nothing,                                              [A, A, A, A, D, D]),
        row("user show", "user show tom", "", Nothing,                                          [A, A, A, D, A, D]),
        row("user create", "user create neo --email neo@x.io --display-name Neo --kind employee", "", Nothing,
                                                                                                [A, D, D, D, D, D]),
        row("user clone", "user clone tom neo --email neo@x.io --display-name Neo", "", Nothing, [A, D, D, D, D, D]),
        row("user update", "user update tom --notes changed", "", Nothing,                      [A, D, D, D, D, D]),
        row("user disable", "user disable tom --reason table", "", Nothing,                     [A, A, D, D, D, D]),
        row("user enable", "user enable tom", "", TomDisabled,                                  [A, D, D, D, D, D]),
        row("user extend", "user extend tom --end +30d", "", Nothing,                           [A, D, D, D, D, D]),
        row("user delete", "user delete tom", "", Nothing,                                      [A, D, D, D, D, D]),
        row("user restore", "user restore tom", "", TomDeleted,                                 [A, D, D, D, D, D]),
        row("user purge", "user purge tom --yes", "", TomDeleted,                               [A, D, D, D, D, D]),
        row("key add", "key add tom", "NEWKEY", Nothing,                                        [A, D, D, D, A, D]),
        row("key list", "key list tom", "", Nothing,                                            [A, A, A, D, A, D]),
        row("key remove", "key remove tom {fp}", "", Nothing,                                   [A, A, D, D, A, D]),
        row("password set", "password set tom", "a long enough secret\n", Nothing,              [A, D, D, D, A, D]),
        row("password reset", "password reset tom", "", Nothing,                                [A, D, A, D, D, D]),
        row("prefs show", "prefs show tom", "", Nothing,                                          [A, A, A, D, A, D]),
        row("prefs set", "prefs set tom --digest on", "", Nothing,                                [A, D, D, D, A, D]),
        row("allow list", "allow list tom", "", Nothing,                                        [A, A, A, D, A, D]),
        row("allow add", "allow add tom 10.0.0.0/8", "", Nothing,                               [A, D, D, D, D, D]),
        row("allow remove", "allow remove tom 10.0.0.0/8", "", TomAllowlisted,                  [A, D, D, D, D, D]),
        row("group list", "group list", "", Nothing,                                            [A, A, D, D, D, D]),
        row("group create", "group create crew", "", Nothing,                                   [A, D, D, D, D, D]),
        row("group add", "group add interns tom", "", Nothing,                                  [A, D, D, D, D, D]),
        row("group remove", "group remove interns tom", "", TomInGroup,                         [A, D, D, D, D, D]),
        row("audit tail", "audit tail", "", Nothing,                                            [A, A, D, D, D, D]),
        row("audit verify", "audit verify", "", Nothing,                                        [A, A, D, D, D, D]),
        row("totp enroll", "totp enroll tom", "", Nothing,                                      [A, D, D, D, A, D]),
        row("totp reset", "totp reset tom", "", TomEnrolledTotp,                                [A, D, D, D, A, D]),
        row("session list", "session list", "", Nothing,                                        [A, A, A, A, A, A]),
        row("session kill", "session kill {session}", "", Nothing,                              [A, A, 3, 3, A, 3]),
        row("session kill", "session kill --user tom", "", Nothing,                             [A, A, D, D, A, D]),
        row("auth lockouts", "auth lockouts", "", Nothing,                                      [A, A, D, D, D, D]),
        row("auth unlock", "auth unlock 192.0.2.7", "", Nothing,                                [A, D, D, D, D, D]),
        row("lifecycle preview", "lifecycle preview", "", Nothing,                              [A, A, D, D, D, D]),
        row("lifecycle run", "lifecycle run", "", Nothing,                                      [A, D, D, D, D, D]),
        row("request extend", "request extend tom --end +90d --reason more", "", Nothing,       [A, D, A, D, A, D]),
        row("request create", "request create neo --email neo@x.io --display-name Neo --kind employee --reason hire", "", Nothing,
                                                                                                [A, A, A, A, D, D]),
        row("request import", "request import --reason hires", "username,email,display_name,kind\nneo,neo@x.io,Neo,employee\n", Nothing,
                                                                                                [A, A, A, A, D, D]),
        row("request list", "request list", "", TomRequested,                                  [A, A, A, A, A, A]),
        row("request approve", "request approve {request}", "", TomRequested,                   [A, D, D, D, D, D]),
        row("request deny", "request deny {request} --reason no", "", TomRequested,             [A, D, D, D, D, D]),
        row("report orphans", "report orphans", "", Nothing,                                    [A, A, D, D, D, D]),
        row("notify queue", "notify queue", "", Nothing,                                        [A, A, D, D, D, D]),
        row("connector list", "connector list", "", Nothing,                                    [A, A, D, D, D, D]),
        row("connector status", "connector status hr", "", Nothing,                             [A, A, D, D, D, D]),
        row("connector retry", "connector retry hr", "", Nothing,                               [A, A, D, D, D, D]),
        row("connector reconcile", "connector reconcile hr --dry-run", "", Nothing,             [A, D, D, D, D, D]),
        row("source list", "source list", "", Nothing,                                          [A, A, D, D, D, D]),
        row("source status", "source status corp", "", Nothing,                                 [A, A, D, D, D, D]),
        row("source sync", "source sync corp --dry-run", "", Nothing,                           [A, D, D, D, D, D]),
        row("host add", "host add web9 --group web", "NEWKEY", Nothing,                         [A, D, D, D, D, D]),
        row("host list", "host list", "", HostWeb,                                              [A, A, D, D, D, D]),
        row("host show", "host show web1", "", HostWeb,                                         [A, A, D, D, D, D]),
        row("host remove", "host remove web1", "", HostWeb,                                     [A, D, D, D, D, D]),
        row("authorized-keys", "authorized-keys tom", "", HostWeb,                              [D, D, D, D, D, D]),
        row("revoked-keys", "revoked-keys", "", HostWeb,                                        [D, D, D, D, D, D]),
        row("host ca", "host ca", "", Nothing,                                                  [A, A, A, A, A, A]),
        row("cert", "cert tom", KEY_TOM, Nothing,                                               [A, D, D, D, A, D]),
        row("token create", "token create t2 --scope read --for tom", "", Nothing,              [A, D, D, D, A, D]),
        row("token list", "token list", "", TomToken,                                          [A, A, A, A, A, A]),
        row("token revoke", "token revoke tt", "", TomToken,                                    [A, D, D, D, A, D]),
        row("import", "import", "username,email,display_name,kind\nneo,neo@x.io,Neo,employee\n", Nothing,
                                                                                                [A, D, D, D, D, D]),
        row("export", "export", "", Nothing,                                                    [A, A, D, D, D, D]),
        row("check", "check", "", Nothing,                                                      [A, D, D, D, D, D]),
        row("backup", "backup", "", Nothing,                                                    [A, D, D, D, D, D]),
    ]
}

/// The fixture of one cell, and what the command lines refer to.
struct Cell {
    services: Services,
    local: Actor,
    session: u64,
    fingerprint: String,
    request: Option<u64>,
    // Keeps tom's session registered (dropping it changes nothing, but it is his).
    _ticket: crate::service::sessions::SessionTicket,
}

fn person(s: &Services, local: &Actor, name: &str, roles: &[Role], sponsor: Option<&str>) {
    let contractor = sponsor.is_some();
    let input = AccountInput {
        email: Some(format!("{name}@x.io")),
        display_name: Some(name.to_string()),
        kind: Some(if contractor {
            Kind::Contractor
        } else {
            Kind::Employee
        }),
        end_date: contractor.then(|| s.today() + chrono::Duration::days(60)),
        sponsor: sponsor.map(str::to_string),
        roles: Some(roles.to_vec()),
        ..Default::default()
    };
    s.create(local, name, input).unwrap();
}

fn cell(before: Before) -> Cell {
    // One connector, so `connector status hr` and `connector retry hr` have a target.
    // Mail configured, so `password reset` has a way to deliver its code.
    let config = format!(
        "{}\n[[connectors]]\nname = \"hr\"\ntype = \"command\"\ncommand = [\"/bin/true\"]\n\
         [notify.smtp]\nhost = \"127.0.0.1\"\nport = 2525\nfrom = \"t@example.org\"\nsecurity = \"plain\"\n\
         [[sources]]\nname = \"corp\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbind_dn = \"cn=admin\"\n\
         bind_password_file = \"keys/ldap_password\"\nbase_dn = \"ou=vendors\"\nkind = \"vendor\"\n\
         map = {{ username = \"uid\", display_name = \"cn\", email = \"mail\" }}\n",
        crate::config::EXAMPLE
    );
    let (s, _clock, local) = testkit::services_with(&config, None);
    s.set_applier(std::sync::Arc::new(crate::connect::Runner::default()));
    // `source sync corp --dry-run` reads a directory of one entry.
    s.set_source_reader(std::sync::Arc::new(
        crate::service::sources::FixedReader::new(Ok(vec![crate::service::sources::test_entry(
            "neo", "id-neo",
        )])),
    ));
    person(&s, &local, "ada", &[Role::Admin], None);
    s.key_add(&local, "ada", &key_line(7, "ada@x"), None)
        .unwrap();
    person(&s, &local, "olga", &[Role::Operator], None);
    person(&s, &local, "sam", &[Role::Sponsor], None);
    person(&s, &local, "sid", &[Role::Sponsor], None);
    person(&s, &local, "tom", &[Role::User], Some("sam"));
    person(&s, &local, "vic", &[Role::User], Some("sid"));
    person(&s, &local, "uma", &[Role::User], None);
    let key = s.key_add(&local, "tom", KEY_TOM, None).unwrap();
    let now = s.now();
    let ticket = s.session_open(SessionInfo {
        id: 0,
        account: "tom".into(),
        address: "192.0.2.1".into(),
        method: "publickey".into(),
        fingerprint: Some(key.fingerprint.clone()),
        started: now,
        last_input: now,
        kind: SessionKind::Console,
        command: None,
    });
    let mut request = None;
    match before {
        Before::Nothing => {}
        Before::TomDisabled => {
            s.disable(
                &local,
                "tom",
                crate::domain::DisableReason::Manual,
                Some("x".into()),
            )
            .unwrap();
        }
        Before::TomDeleted => {
            s.delete(&local, "tom").unwrap();
        }
        Before::TomAllowlisted => {
            s.allow_add(&local, "tom", "10.0.0.0/8").unwrap();
        }
        Before::TomInGroup => {
            s.group_add(&local, "interns", "tom").unwrap();
        }
        Before::TomEnrolledTotp => {
            s.totp_enroll(&local, "tom").unwrap();
        }
        Before::HostWeb => {
            s.host_add(
                &local,
                "web1",
                &key_line(11, "web1"),
                &["interns".to_string()],
            )
            .unwrap();
        }
        Before::TomRequested => {
            let end = s.today() + chrono::Duration::days(90);
            let tom = Actor::account(&s.load("tom").unwrap(), Source::Cli, None);
            request = Some(s.request_extend(&tom, "tom", end, "more").unwrap().id);
        }
        Before::TomToken => {
            s.token_create(
                &local,
                "tt",
                crate::service::tokens::TokenScope::Scim,
                None,
                Some("tom"),
            )
            .unwrap();
        }
    }
    Cell {
        session: ticket.id,
        _ticket: ticket,
        services: s,
        local,
        fingerprint: key.fingerprint,
        request,
    }
}

/// Everything a refused command must leave as it was.
fn state(c: &Cell) -> (Vec<Account>, Vec<String>, String, usize) {
    let s = &c.services;
    let mut accounts = Vec::new();
    s.store()
        .scan_accounts(&mut |_, a| accounts.push(a.unwrap()))
        .unwrap();
    let groups = s
        .group_list(&c.local)
        .unwrap()
        .iter()
        .map(|g| format!("{}: {:?}", g.group.name, g.members))
        .collect();
    let requests = format!("{:?}", s.request_list(&c.local).unwrap());
    (accounts, groups, requests, events(c, false).len())
}

/// Audit events (without `auth.denied` unless `denied`), as "action target".
fn events(c: &Cell, denied: bool) -> Vec<String> {
    let filter = AuditFilter {
        limit: 100_000,
        ..Default::default()
    };
    c.services
        .audit_tail(&c.local, &filter)
        .unwrap()
        .into_iter()
        .filter(|e| (e.action == "auth.denied") == denied)
        .map(|e| format!("{} {} {}", e.actor, e.action, e.target.unwrap_or_default()))
        .collect()
}

fn run_line(c: &Cell, actor: &Actor, row: &Row) -> Result<String, (i32, String)> {
    let line = row
        .line
        .replace("{session}", &c.session.to_string())
        .replace("{fp}", &c.fingerprint)
        .replace(
            "{request}",
            &c.request.map(|r| r.to_string()).unwrap_or_default(),
        );
    let words = shell_words::split(&line).unwrap();
    let parsed = Line::try_parse_from(std::iter::once("tenure".to_string()).chain(words))
        .unwrap_or_else(|e| panic!("`{line}` does not parse: {e}"));
    let stdin = if row.stdin == "NEWKEY" {
        key_line(9, "new@x")
    } else {
        row.stdin.to_string()
    };
    let mut out = Vec::new();
    run(
        &c.services,
        actor,
        parsed.command,
        &mut stdin.as_bytes(),
        &mut out,
    )
    .map(|()| String::from_utf8_lossy(&out).into_owned())
    .map_err(|e| (e.exit_code(), e.to_string()))
}

#[test]
fn every_command_and_every_kind_of_actor_get_exactly_what_the_table_says() {
    let mut wrong = Vec::new();
    for row in rows() {
        for ((who, name), want) in ACTORS.iter().zip(row.expected) {
            let c = cell(row.before);
            let actor = Actor::account(
                &c.services.load(name).unwrap(),
                Source::Ssh("192.0.2.9".into()),
                None,
            );
            let before = state(&c);
            let denied_before = events(&c, true).len();
            let got = run_line(&c, &actor, &row);
            let verdict = match (&got, want) {
                (Ok(_), 0) => Ok(()),
                (Err((code, _)), w) if *code == w => {
                    if state(&c) != before {
                        Err("refused, but something changed".to_string())
                    } else if events(&c, true).len() <= denied_before {
                        Err("refused without an auth.denied record".to_string())
                    } else {
                        Ok(())
                    }
                }
                (Ok(out), w) => Err(format!("allowed (want exit {w}): {}", out.trim_end())),
                (Err((code, e)), w) => Err(format!("exit {code} (want {w}): {e}")),
            };
            if let Err(e) = verdict {
                wrong.push(format!("{who} ({name}): `{}`: {e}", row.line));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells disagree with the table:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// A host may ask its queries and nothing else: every other row of the
/// table is refused to it (exit 4, audited, nothing changed).
#[test]
fn a_host_may_run_no_command_but_its_queries() {
    let mut wrong = Vec::new();
    for row in rows() {
        let c = cell(row.before);
        if !c.services.is_host_name("web1") {
            c.services
                .host_add(
                    &c.local,
                    "web1",
                    &key_line(11, "web1"),
                    &["interns".to_string()],
                )
                .unwrap();
        }
        let host = Actor::account(
            &c.services.load("web1").unwrap(),
            Source::Ssh("192.0.2.20".into()),
            None,
        );
        let before = state(&c);
        let denied_before = events(&c, true).len();
        let queries = ["authorized-keys", "revoked-keys", "host ca"];
        let want = if queries.contains(&row.command) { 0 } else { 4 };
        let got = run_line(&c, &host, &row);
        let verdict = match (&got, want) {
            (Ok(_), 0) => Ok(()),
            (Err((4, _)), 4) if state(&c) != before => {
                Err("refused, but something changed".to_string())
            }
            (Err((4, _)), 4) if events(&c, true).len() <= denied_before => {
                Err("refused without an auth.denied record".to_string())
            }
            (Err((4, _)), 4) => Ok(()),
            (Ok(out), _) => Err(format!("allowed: {}", out.trim_end())),
            (Err((code, e)), _) => Err(format!("exit {code} (want {want}): {e}")),
        };
        if let Err(e) = verdict {
            wrong.push(format!("host web1: `{}`: {e}", row.line));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every leaf command of the grammar, as "user disable".
fn grammar() -> BTreeSet<String> {
    fn walk(cmd: &clap::Command, prefix: &str, out: &mut BTreeSet<String>) {
        let subs: Vec<&clap::Command> = cmd
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .collect();
        if subs.is_empty() {
            out.insert(prefix.trim().to_string());
        }
        for sub in subs {
            walk(sub, &format!("{prefix} {}", sub.get_name()), out);
        }
    }
    let mut out = BTreeSet::new();
    walk(&Line::command(), "", &mut out);
    out
}

#[test]
fn every_command_has_a_row() {
    let covered: BTreeSet<String> = rows().iter().map(|r| r.command.to_string()).collect();
    let grammar = grammar();
    let missing: Vec<&String> = grammar.difference(&covered).collect();
    let unknown: Vec<&String> = covered.difference(&grammar).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "commands without a row: {missing:?}; rows for no command: {unknown:?}"
    );
    for row in rows() {
        assert!(
            row.line.starts_with(row.command),
            "{} / {}",
            row.command,
            row.line
        );
    }
}

/// Console actions on the open account, and the command each one is.
const CONSOLE_ON_ACCOUNT: [(Action, &str); 15] = [
    (Action::Cert, "cert"),
    (Action::Disable, "user disable"),
    (Action::Enable, "user enable"),
    (Action::Delete, "user delete"),
    (Action::Restore, "user restore"),
    (Action::Purge, "user purge"),
    (Action::Clone, "user clone"),
    (Action::Keys, "key list"),
    (Action::AddKey, "key add"),
    (Action::RemoveKey, "key remove"),
    (Action::Password, "password set"),
    (Action::Totp, "totp enroll"),
    (Action::Kill, "session kill --user"),
    (Action::Tokens, "token create"),
    (Action::RevokeToken, "token revoke"),
];

/// Console actions about no account in particular.
const CONSOLE_GLOBAL: [(Action, &str); 10] = [
    (Action::Hosts, "host list"),
    (Action::RemoveHost, "host remove"),
    (Action::Approve, "request approve"),
    (Action::Deny, "request deny"),
    (Action::Audit, "audit tail"),
    (Action::Outbox, "notify queue"),
    (Action::Lifecycle, "lifecycle preview"),
    (Action::Orphans, "report orphans"),
    (Action::Lockouts, "auth lockouts"),
    (Action::Unlock, "auth unlock"),
];

/// Whether the table allows `who` (a column of `ACTORS`) the row whose
/// line starts with `line`.
fn table_allows(line: &str, who: usize) -> bool {
    let rows = rows();
    let row = rows
        .iter()
        .find(|r| r.line.starts_with(line))
        .unwrap_or_else(|| panic!("no row for {line}"));
    row.expected[who] == 0
}

#[test]
fn the_console_offers_exactly_what_the_table_allows() {
    let mut wrong = Vec::new();
    for (who, (label, name)) in ACTORS.iter().enumerate() {
        let c = cell(Before::Nothing);
        let actor = Actor::account(
            &c.services.load(name).unwrap(),
            Source::Ssh("192.0.2.9".into()),
            None,
        );
        let mut app = App::new(c.services.clone(), actor);
        app.open("tom");
        let on_tom = app
            .detail
            .as_ref()
            .is_some_and(|d| d.account.username == "tom");
        for (action, line) in CONSOLE_ON_ACCOUNT {
            // An account the console cannot show offers nothing.
            let offered = on_tom && app.offers(action);
            if offered != table_allows(line, who) {
                wrong.push(format!("{label} ({name}) on tom: {action:?} offered {offered}, `{line}` in the table says the opposite"));
            }
        }
        // Extending: offered as such or as a request for more time.
        let extend = on_tom && app.offers(Action::Extend);
        let may = table_allows("user extend", who) || table_allows("request extend", who);
        if extend != may {
            wrong.push(format!("{label} ({name}) on tom: Extend offered {extend}"));
        }
        // Creating: offered as such or as the form submitted as a request.
        let create = app.offers(Action::Create);
        let may = table_allows("user create", who) || table_allows("request create", who);
        if create != may {
            wrong.push(format!("{label} ({name}): Create offered {create}"));
        }
        for (action, line) in CONSOLE_GLOBAL {
            let offered = app.offers(action);
            if offered != table_allows(line, who) {
                wrong.push(format!("{label} ({name}): {action:?} offered {offered}, `{line}` in the table says the opposite"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "console and table disagree:\n{}",
        wrong.join("\n")
    );
}
