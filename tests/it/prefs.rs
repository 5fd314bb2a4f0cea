//! Personal preferences end to end: the timezone every time is shown in
//! (`--utc` for scripts, JSON always UTC), the language of the console (the
//! real OpenSSH client under tmux) and of the notices (a real SMTP server,
//! aiosmtpd), and what a password reset does to the old password and where
//! its code is (never readable in the database).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::console::Tmux;
use crate::notify::{free_port, mails, python, smtp_server, wait_for};

/// What ssh itself exits with when it could not log in.
const SSH_REFUSED: i32 = 255;

fn alice(server: &Server, inst: &Instance, line: &str) -> Run {
    server.exec("alice", &inst.path("alice"), line, None)
}

/// The first audit line's time and zone: `#N DATE TIME ZONE actor …`.
fn audit_zone(text: &str) -> String {
    text.lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn times_follow_the_viewers_timezone_unless_utc_and_json_stays_utc() {
    let inst = Instance::initialised();
    inst.create("bob", "--kind contractor --end +30d");
    let server = inst.serve();

    // A bad zone or language: one line, exit 2, nothing written.
    for (line, want) in [
        (
            "prefs set alice --timezone Mars/Olympus",
            "unknown timezone 'Mars/Olympus'",
        ),
        ("prefs set alice --language xx", "unknown language 'xx'"),
    ] {
        let (code, out, err) = alice(&server, &inst, line);
        assert_eq!(code, 2, "{line}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
    let (_, before, _) = alice(&server, &inst, "audit tail -n 1 --json");
    assert!(!before.contains("prefs.set"), "{before}");

    let (code, out, err) = alice(
        &server,
        &inst,
        "prefs set alice --timezone Asia/Tokyo --language de",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("timezone Asia/Tokyo, language de"), "{out}");
    let (_, shown, _) = alice(&server, &inst, "prefs show alice --json");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["timezone"], "Asia/Tokyo");
    assert_eq!(shown["language"], "de");

    // Plain output: the viewer's zone, named. --utc anywhere on the line: UTC.
    let (_, tail, _) = alice(&server, &inst, "audit tail -n 1");
    assert_eq!(audit_zone(&tail), "JST", "{tail}");
    // (Before the command, ssh would take `--utc` as its own option.)
    for line in ["audit tail -n 1 --utc", "audit --utc tail -n 1"] {
        let (code, tail, err) = alice(&server, &inst, line);
        assert_eq!(code, 0, "{line}: {err}");
        assert_eq!(audit_zone(&tail), "UTC", "{line}: {tail}");
    }
    // JSON is UTC RFC 3339 whatever the zone.
    let (_, json, _) = alice(&server, &inst, "audit tail -n 1 --json");
    let events: Value = serde_json::from_str(&json).unwrap();
    let at = events[0]["at"].as_str().unwrap();
    assert!(at.ends_with('Z') || at.ends_with("+00:00"), "{at}");

    // Instants convert; calendar dates (the end date) stay dates. Exec
    // output for scripts stays English whatever the language.
    let (_, show, _) = alice(&server, &inst, "user show bob");
    let created = show.lines().find(|l| l.starts_with("created")).unwrap();
    assert!(created.contains("JST"), "{show}");
    let (_, json, _) = alice(&server, &inst, "user show bob --json");
    let end = serde_json::from_str::<Value>(&json).unwrap()["end_date"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(show.contains(&end), "{show}");
    assert!(show.contains("last login"), "{show}");
    let (_, show, _) = alice(&server, &inst, "user show bob --utc");
    let created = show.lines().find(|l| l.starts_with("created")).unwrap();
    assert!(created.contains("UTC"), "{show}");

    // The flag is in the help, and offline takes it too (the offline
    // operator has no account: UTC).
    let (_, help, _) = alice(&server, &inst, "audit tail --help");
    assert!(help.contains("--utc"), "{help}");
    drop(server);
    let tail = inst.ok(&["--utc", "audit", "tail", "-n", "1"]);
    assert_eq!(audit_zone(&tail), "UTC", "{tail}");
}

fn smtp_config(inst: &Instance, port: u16) {
    let mut config = std::fs::read_to_string(&inst.config).unwrap();
    config = config.replace("retry_seconds = 30", "retry_seconds = 1");
    config.push_str(&format!(
        "\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nfrom = \"tenure <tenure@example.com>\"\nsecurity = \"plain\"\n"
    ));
    std::fs::write(&inst.config, config).unwrap();
}

/// The `code:` (English) or `Code:` (German) line of a reset mail.
fn code_in(mail: &str) -> String {
    mail.lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix("code: ")
                .or_else(|| l.strip_prefix("Code: "))
        })
        .expect("a code line")
        .trim()
        .to_string()
}

/// Whether any file under `dir` holds `needle`.
fn any_file_holds(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            any_file_holds(&path, needle)
        } else {
            std::fs::read(&path)
                .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        }
    })
}

#[test]
fn notices_go_in_each_recipients_language_and_a_reset_ends_the_old_password_at_once() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with aiosmtpd (run ./scripts/test.sh, which installs it)");
        return;
    };
    let inst = Instance::initialised();
    inst.edit_config(r#"user = ["key"]"#, r#"user = ["password"]"#);
    let port = free_port();
    smtp_config(&inst, port);
    let maildir = inst.path("mail");
    let _smtp = smtp_server(&python, port, &maildir);
    inst.create("sam", "--kind employee --role sponsor");
    inst.ok(&["prefs", "set", "sam", "--language", "de"]);
    inst.create("bob", "--kind employee --role user");
    inst.ok(&["prefs", "set", "bob", "--language", "de"]);
    inst.ok_stdin(&["password", "set", "bob"], "amber canyon whistle\n");
    let server = inst.serve();
    let login = |password: &str| {
        server.exec_kbdint(
            "bob",
            &Askpass::new(inst.dir.path()).password(password, ""),
            "whoami",
            None,
        )
    };
    assert_eq!(login("amber canyon whistle").0, 0);

    // A new account sponsored by sam: sam reads German, the IT list English.
    let (code, _, err) = alice(
        &server,
        &inst,
        "user create erin --email erin@example.com --display-name Erin --kind contractor --end +30d --sponsor sam",
    );
    assert_eq!(code, 0, "{err}");
    let german = wait_for("sam's German notice", Duration::from_secs(20), || {
        mails(&maildir)
            .into_iter()
            .find(|m| m.contains("To: sam@example.com"))
    });
    assert!(german.contains("angelegt"), "{german}");
    assert!(german.contains("Benutzername: erin"), "{german}");
    let english = wait_for("the IT list's notice", Duration::from_secs(20), || {
        mails(&maildir)
            .into_iter()
            .find(|m| m.contains("it-ops@example.com") && m.contains("erin"))
    });
    assert!(english.contains("A new account was created"), "{english}");

    // A reset: the old password stops working at once; the code comes in
    // German and is never written readable to the database.
    let (code, out, err) = alice(&server, &inst, "password reset bob");
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("code:"), "{out}");
    assert_eq!(login("amber canyon whistle").0, SSH_REFUSED);
    let mail = wait_for("the reset mail", Duration::from_secs(20), || {
        mails(&maildir)
            .into_iter()
            .find(|m| m.contains("To: bob@example.com"))
    });
    assert!(mail.contains("Einmalcode"), "{mail}");
    let code = code_in(&mail);
    assert!(
        !any_file_holds(&inst.data_dir(), code.as_bytes()),
        "the code is in the database files"
    );
    let askpass = Askpass::new(inst.dir.path()).enrolment(&code);
    let run = server.exec_kbdint(
        "bob",
        &askpass,
        "password set bob",
        Some("copper lantern valley\n"),
    );
    assert_eq!(run.0, 0, "{run:?}\nprompts: {}", askpass.prompts());
    assert_eq!(login("copper lantern valley").0, 0);
    assert_eq!(login("amber canyon whistle").0, SSH_REFUSED);
}

#[test]
fn the_console_in_german_under_tmux_sets_a_temporary_password() {
    let inst = Instance::initialised();
    inst.create("bob", "--kind contractor --end +30d --company Acme");
    inst.ok(&[
        "prefs",
        "set",
        "alice",
        "--language",
        "de",
        "--timezone",
        "Europe/Berlin",
    ]);
    let server = inst.serve();
    let command = format!(
        "ssh -F /dev/null -tt -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes -p {} alice@127.0.0.1",
        inst.path("alice").display(),
        server.port
    );
    let tmux = Tmux::start(&command);
    tmux.wait_for("the accounts table in German", |s| {
        s.contains("BENUTZER") && s.contains("bob") && s.contains("suchen")
    });
    tmux.keys(&["/"]);
    tmux.text("bob");
    tmux.keys(&["Enter"]);
    tmux.keys(&["Enter"]);
    let detail = tmux.wait_for("bob's detail in German", |s| {
        s.contains("letzte Aktivität") && s.contains("user.create")
    });
    // Berlin time, named (CET in winter, CEST in summer).
    assert!(
        detail.contains(" CET ") || detail.contains(" CEST "),
        "{detail}"
    );
    tmux.keys(&["w"]);
    tmux.wait_for("the password prompt", |s| {
        s.contains("Neues Passwort") && s.contains("[ ] vorläufig")
    });
    tmux.keys(&["Tab"]);
    tmux.wait_for("temporary on", |s| s.contains("[x] vorläufig"));
    tmux.text("quiet harbour lamp 42");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the German status line", |s| {
        s.contains("vorläufiges Passwort von bob gesetzt")
    });
    tmux.keys(&["q"]);
    let (code, show, err) = alice(&server, &inst, "user show bob");
    assert_eq!(code, 0, "{err}");
    assert!(
        show.contains("temporary: to be changed at the next login"),
        "{show}"
    );
}
