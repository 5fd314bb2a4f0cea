//! The password policy end to end: the rules on every `password set`, a
//! temporary or expired password changed during the SSH login by the real
//! OpenSSH client (typed in tmux, or answered by SSH_ASKPASS), and a reset
//! code mailed through a real SMTP server (aiosmtpd) that works once.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::console::Tmux;
use crate::notify::{free_port, mails, python, smtp_server, wait_for};

/// What ssh itself exits with when it could not log in.
const SSH_REFUSED: i32 = 255;

const METHODS: &str =
    r#"methods = { admin = ["key"], operator = ["key"], sponsor = ["key"], user = ["key"] }"#;

fn user_methods(inst: &Instance, methods: &str) {
    inst.edit_config(
        METHODS,
        &format!(
            r#"methods = {{ admin = ["key"], operator = ["key"], sponsor = ["key"], user = {methods} }}"#
        ),
    );
}

fn alice(server: &Server, inst: &Instance, line: &str, stdin: Option<&str>) -> Run {
    server.exec("alice", &inst.path("alice"), line, stdin)
}

fn events(server: &Server, inst: &Instance, target: &str) -> Vec<Value> {
    let (code, out, err) = alice(
        server,
        inst,
        &format!("audit tail -n 1000 --target {target} --json"),
        None,
    );
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn details(events: &[Value], action: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| e["detail"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Polls the audit trail until `pred` holds (failed logins are written
/// when the connection ends).
fn events_until(
    server: &Server,
    inst: &Instance,
    target: &str,
    what: &str,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    wait_for(what, Duration::from_secs(10), || {
        let e = events(server, inst, target);
        pred(&e).then_some(e)
    })
}

#[test]
fn every_password_set_keeps_the_policy_with_one_line_naming_the_rule_and_nothing_written() {
    let inst = Instance::initialised();
    inst.edit_config(
        "refuse_common = true",
        "refuse_common = true\nmin_length = 14",
    );
    inst.create("bob", "--kind employee");
    for (password, rule) in [
        ("1Q2W3E4R5T6Y7U", "one of the 10,000 most common passwords"),
        (
            "123456789987654321",
            "one of the 10,000 most common passwords",
        ),
        (
            "only13chars..",
            "password too short: at least 14 characters",
        ),
    ] {
        let (code, out, err) = {
            let run = inst.run_stdin(&["password", "set", "bob"], &format!("{password}\n"));
            (run.0, run.1, run.2)
        };
        assert_eq!(code, 2, "{password}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(rule), "{password}: {err}");
        assert!(!err.contains(password), "the password echoed: {err}");
        assert_eq!(inst.show("bob")["password_set"], false, "nothing written");
    }
    // Over ssh the same rules, the same exit code.
    let server = inst.serve();
    let run = alice(
        &server,
        &inst,
        "password set bob",
        Some("1q2w3e4r5t6y7u8i\n"),
    );
    assert_eq!(run.0, 2, "{run:?}");
    assert!(run.2.contains("most common"), "{run:?}");
    let run = alice(
        &server,
        &inst,
        "password set bob --temporary",
        Some("violet staple orbit\n"),
    );
    assert_eq!(run.0, 0, "{run:?}");
    assert!(run.1.contains("temporary"), "{run:?}");
    let (code, out, _) = alice(&server, &inst, "user show bob", None);
    assert_eq!(code, 0);
    assert!(
        out.contains("temporary: to be changed at the next login"),
        "{out}"
    );
}

#[test]
fn a_temporary_password_is_changed_in_the_login_exchange_typed_into_the_real_ssh_client() {
    let inst = Instance::initialised();
    user_methods(&inst, r#"["password"]"#);
    inst.create("carl", "--kind employee --role user");
    inst.ok_stdin(
        &["password", "set", "carl", "--temporary"],
        "issued by the desk 42\n",
    );
    let server = inst.serve();
    let command = format!(
        "ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o PubkeyAuthentication=no -o PreferredAuthentications=keyboard-interactive -p {} carl@127.0.0.1 whoami; \
         echo ssh-exit=$?; sleep 30",
        server.port
    );
    let tmux = Tmux::start(&command);
    tmux.wait_for("the password prompt", |s| s.contains("Password:"));
    tmux.text("issued by the desk 42");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the new password prompt", |s| s.contains("New password:"));
    assert!(screen.contains("Your password is temporary"), "{screen}");
    tmux.text("my own choice of words");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the repeat prompt", |s| s.contains("Repeat:"));
    tmux.text("my own choice of words");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the session", |s| s.contains("ssh-exit="));
    assert!(screen.contains("carl (carl)"), "{screen}");
    assert!(screen.contains("ssh-exit=0"), "{screen}");

    // The new one works without a change; the old one no longer does.
    let askpass = Askpass::new(inst.dir.path());
    let run = server.exec_kbdint(
        "carl",
        &askpass.password("my own choice of words", ""),
        "whoami",
        None,
    );
    assert_eq!(run.0, 0, "{run:?}\nprompts: {}", askpass.prompts());
    assert!(
        !askpass.prompts().contains("New password"),
        "{}",
        askpass.prompts()
    );
    let run = server.exec_kbdint(
        "carl",
        &askpass.password("issued by the desk 42", ""),
        "whoami",
        None,
    );
    assert_eq!(run.0, SSH_REFUSED, "{run:?}");
    let e = events(&server, &inst, "carl");
    let changes = details(&e, "password.change");
    assert!(
        changes.len() == 1 && changes[0].contains("was temporary"),
        "{changes:#?}"
    );
    assert!(!e.iter().any(|e| e.to_string().contains("choice of words")));
}

/// The base32 secret of `totp enroll`'s otpauth URI.
fn totp_secret(enrol: &str) -> String {
    let uri = &enrol[enrol.find("otpauth://").expect("a URI")..];
    uri.lines()
        .next()
        .unwrap()
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .expect("a secret")
        .to_string()
}

fn oathtool(secret: &str) -> String {
    let out = std::process::Command::new("oathtool")
        .args(["--totp", "-b", secret])
        .output()
        .expect("oathtool");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Logs in with the password, a fresh code and the new-password answers.
fn login_with_code(server: &Server, user: &str, answers: &Askpass, secret: &str) -> Run {
    let answers = answers.password(&answers.password, &oathtool(secret));
    server.exec_kbdint(user, &answers, "whoami", None)
}

#[test]
fn an_expired_password_with_totp_is_refused_when_the_new_one_breaks_the_policy_and_changed_when_it_keeps_it(
) {
    let inst = Instance::initialised();
    user_methods(&inst, r#"["password+totp"]"#);
    inst.edit_config(
        "refuse_common = true",
        "refuse_common = true\nmax_age_days = 30",
    );
    inst.create("dana", "--kind employee --role user");
    // Set 31 days ago: expired today.
    inst.set_faketime(Some("-31d"));
    inst.ok_stdin(&["password", "set", "dana"], "winter quartz meadow\n");
    inst.set_faketime(None);
    let secret = totp_secret(&inst.ok(&["totp", "enroll", "dana"]));
    assert!(inst.show("dana")["password_expires_at"].is_string());
    let server = inst.serve();
    let (_, out, _) = alice(&server, &inst, "user show dana", None);
    assert!(out.contains("expired"), "{out}");
    let askpass = Askpass::new(inst.dir.path()).password("winter quartz meadow", "");

    // The two answers differ: refused, nothing changed.
    let run = login_with_code(
        &server,
        "dana",
        &askpass.new_password("summer basalt river", "summer basalt rivers"),
        &secret,
    );
    assert_eq!(run.0, SSH_REFUSED, "{run:?}");
    let prompts = askpass.prompts();
    assert!(
        prompts.contains("Password")
            && prompts.contains("Verification code")
            && prompts.contains("New password")
            && prompts.contains("Repeat"),
        "{prompts}"
    );
    // A common password: refused.
    std::thread::sleep(Duration::from_secs(1));
    let run = login_with_code(
        &server,
        "dana",
        &askpass.new_password("QWERTY123456", "QWERTY123456"),
        &secret,
    );
    assert_eq!(run.0, SSH_REFUSED, "{run:?}");
    let e = events_until(&server, &inst, "dana", "two refused changes", |e| {
        details(e, "auth.fail").len() >= 2
    });
    let fails = details(&e, "auth.fail").join("\n");
    assert!(fails.contains("two answers differ"), "{fails}");
    assert!(fails.contains("most common"), "{fails}");
    assert!(details(&e, "password.change").is_empty());
    assert!(details(&e, "auth.login").is_empty());

    // A good one: the session starts (a refused login used no code).
    let run = login_with_code(
        &server,
        "dana",
        &askpass.new_password("summer basalt river", "summer basalt river"),
        &secret,
    );
    assert_eq!(run.0, 0, "{run:?}\n{}", askpass.prompts());
    assert!(run.1.starts_with("dana (dana)"), "{run:?}");
    let e = events(&server, &inst, "dana");
    assert_eq!(details(&e, "password.change").len(), 1, "{e:#?}");
    let logins = details(&e, "auth.login");
    assert!(
        logins.iter().any(|d| d.contains("password+totp")),
        "{logins:#?}"
    );
    let (_, out, _) = alice(&server, &inst, "user show dana", None);
    assert!(out.contains("expires "), "{out}");
    assert!(!out.contains("expired"), "{out}");
}

fn smtp_config(inst: &Instance, port: u16) {
    let mut config = std::fs::read_to_string(&inst.config).unwrap();
    config = config.replace("retry_seconds = 30", "retry_seconds = 1");
    config.push_str(&format!(
        "\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nfrom = \"tenure <tenure@example.com>\"\nsecurity = \"plain\"\n"
    ));
    std::fs::write(&inst.config, config).unwrap();
}

fn code_in(mail: &str) -> String {
    mail.lines()
        .find_map(|l| l.trim().strip_prefix("code: "))
        .expect("a code line")
        .trim()
        .to_string()
}

#[test]
fn a_reset_code_mailed_by_smtp_lets_the_holder_in_once_to_set_a_password() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with aiosmtpd (run ./scripts/test.sh, which installs it)");
        return;
    };
    let inst = Instance::initialised();
    user_methods(&inst, r#"["password"]"#);
    let port = free_port();
    smtp_config(&inst, port);
    let maildir = inst.path("mail");
    let _smtp = smtp_server(&python, port, &maildir);
    inst.create("sam", "--kind employee --role sponsor");
    inst.keygen("sam", "ed25519", None);
    inst.ok_stdin(&["key", "add", "sam"], &inst.pubkey("sam"));
    inst.create(
        "erin",
        "--kind contractor --end +60d --sponsor sam --role user",
    );
    inst.create("finn", "--kind employee --role user");
    let server = inst.serve();

    // Not the sponsor of finn: refused. Erin's sponsor: allowed.
    let run = server.exec("sam", &inst.path("sam"), "password reset finn", None);
    assert_eq!(run.0, 4, "{run:?}");
    let run = server.exec("sam", &inst.path("sam"), "password reset erin", None);
    assert_eq!(run.0, 0, "{run:?}");
    assert!(run.1.contains("mailed to erin@example.com"), "{run:?}");
    assert!(!run.1.contains("code:"), "{run:?}");

    let mail = wait_for("the reset mail", Duration::from_secs(20), || {
        mails(&maildir)
            .into_iter()
            .find(|m| m.contains("one-time code for erin"))
    });
    assert!(mail.contains("To: erin@example.com"), "{mail}");
    let code = code_in(&mail);
    // The queue does not show it to whoever reads it.
    let (_, queue, _) = alice(&server, &inst, "notify queue --json", None);
    assert!(!queue.contains(&code), "{queue}");

    // The code logs in once; the holder sets a password in that session.
    let askpass = Askpass::new(inst.dir.path()).enrolment(&code);
    let run = server.exec_kbdint(
        "erin",
        &askpass,
        "password set erin",
        Some("copper lantern valley\n"),
    );
    assert_eq!(run.0, 0, "{run:?}\nprompts: {}", askpass.prompts());
    assert!(askpass.prompts().contains("Enrolment code"));
    let run = server.exec_kbdint("erin", &askpass, "whoami", None);
    assert_eq!(run.0, SSH_REFUSED, "a second use: {run:?}");
    let run = server.exec_kbdint(
        "erin",
        &Askpass::new(inst.dir.path()).password("copper lantern valley", ""),
        "whoami",
        None,
    );
    assert_eq!(run.0, 0, "{run:?}");
    let e = events(&server, &inst, "erin");
    for action in ["password.reset", "enrolment.used", "password.set"] {
        assert_eq!(details(&e, action).len(), 1, "{action}: {e:#?}");
    }
    assert!(!e.iter().any(|e| e.to_string().contains(&code)));
}

#[test]
fn the_server_mails_a_password_expiry_warning_once_and_closes_a_stale_request() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with aiosmtpd (run ./scripts/test.sh, which installs it)");
        return;
    };
    let inst = Instance::initialised();
    let port = free_port();
    smtp_config(&inst, port);
    inst.edit_config("# max_age_days = 180", "max_age_days = 30");
    inst.edit_config("interval_seconds = 60", "interval_seconds = 1");
    let maildir = inst.path("mail");
    let _smtp = smtp_server(&python, port, &maildir);
    inst.create("gus", "--kind employee --role user");
    // Set 25 days ago: it expires in 5 days, within the 7-day warning.
    inst.set_faketime(Some("-25d"));
    inst.ok_stdin(&["password", "set", "gus"], "amber willow canyon\n");
    inst.ok(&[
        "request",
        "create",
        "old",
        "--email",
        "old@x.example",
        "--display-name",
        "Old",
        "--kind",
        "employee",
        "--reason",
        "forgotten",
    ]);
    inst.set_faketime(None);
    let server = inst.serve();
    let mail = wait_for("the expiry warning", Duration::from_secs(20), || {
        mails(&inst.path("mail"))
            .into_iter()
            .find(|m| m.contains("your password for gus expires"))
    });
    assert!(mail.contains("To: gus@example.com"), "{mail}");
    // Passes go on every second; the warning is not repeated.
    std::thread::sleep(Duration::from_secs(3));
    let warnings = mails(&maildir)
        .iter()
        .filter(|m| m.contains("your password for gus expires"))
        .count();
    assert_eq!(warnings, 1);
    let (code, out, _) = alice(&server, &inst, "request list --json", None);
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["status"], "expired", "{list:#}");
    let e = events(&server, &inst, "gus");
    assert_eq!(details(&e, "password.warn").len(), 1, "{e:#?}");
}
