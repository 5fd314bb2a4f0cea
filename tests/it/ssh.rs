//! The SSH front door, end to end: the real `tenure serve` on an ephemeral
//! loopback port, driven by the real OpenSSH client (exec commands, a pty
//! console, keyboard-interactive through SSH_ASKPASS), TOTP codes from
//! oathtool, the algorithms checked by ssh-audit.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// What ssh itself exits with when it could not log in.
const SSH_REFUSED: i32 = 255;

/// An instance with a running server, and commands over ssh as someone.
struct Live {
    inst: Instance,
    server: Server,
}

impl Live {
    fn start(inst: Instance) -> Live {
        let server = inst.serve();
        Live { inst, server }
    }

    /// The private key `name` made by `Instance::keygen`.
    fn key(&self, name: &str) -> PathBuf {
        self.inst.path(name)
    }

    /// `ssh -i KEY USER@127.0.0.1 LINE` with the key named like the user.
    fn run(&self, user: &str, line: &str) -> Run {
        self.server.exec(user, &self.key(user), line, None)
    }

    fn run_stdin(&self, user: &str, line: &str, stdin: &str) -> Run {
        self.server.exec(user, &self.key(user), line, Some(stdin))
    }

    /// A command that must succeed with a quiet stderr; returns stdout.
    fn ok(&self, user: &str, line: &str) -> String {
        let run = self.run(user, line);
        assert!(
            run.0 == 0 && run.2.is_empty(),
            "{user}: `{line}` exited {}\nstdout: {}\nstderr: {}",
            run.0,
            run.1,
            run.2
        );
        run.1
    }

    fn ok_stdin(&self, user: &str, line: &str, stdin: &str) -> String {
        let run = self.run_stdin(user, line, stdin);
        assert!(
            run.0 == 0 && run.2.is_empty(),
            "{user}: `{line}` exited {}\nstdout: {}\nstderr: {}",
            run.0,
            run.1,
            run.2
        );
        run.1
    }

    fn json(&self, user: &str, line: &str) -> Value {
        let out = self.ok(user, line);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("`{line}`: not JSON ({e}): {out}"))
    }

    /// A command that must fail with `code`, no stdout and one `error: ` line.
    fn fails(&self, user: &str, line: &str, code: i32) -> String {
        let run = self.run(user, line);
        check_error(&[line], &run, code).unwrap_or_else(|e| panic!("{user}: {e}"));
        run.2.trim_end().to_string()
    }

    /// A login that must be refused (ssh's own exit code, nothing run).
    fn refused(&self, run: &Run, what: &str) {
        assert!(
            run.0 == SSH_REFUSED && run.1.is_empty(),
            "{what}: want the login refused (exit {SSH_REFUSED}); got exit {}\nstdout: {}\nstderr: {}",
            run.0,
            run.1,
            run.2
        );
    }

    /// Polls the audit trail (read by `reader` over ssh) until `pred` holds
    /// for the events about `target`; failed logins are recorded when the
    /// connection ends, a moment after the client gives up.
    fn audit_until(
        &self,
        reader: &str,
        target: &str,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.json(
                reader,
                &format!("audit tail -n 1000 --target {target} --json"),
            );
            let events = events.as_array().unwrap().clone();
            if pred(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "audit trail never showed {what} for {target}: {events:#?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// An interactive console (`ssh -tt`, a shell) kept open by a piped stdin;
    /// returns once the console has drawn its first screen.
    fn console(&self, user: &str, key: &str) -> Proc {
        let mut cmd = self.server.ssh_key(user, &self.key(key));
        cmd.arg("-tt").arg("127.0.0.1").stdin(Stdio::piped());
        let proc = Proc::spawn(&mut cmd);
        proc.stdout
            .wait_for("console screen", STEP, |t| t.contains("tenure —"));
        proc
    }

    /// The live console session of `user` (as listed to alice), waiting a
    /// moment for one just killed to leave the list.
    fn console_id(&self, user: &str, fingerprint: Option<&str>) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let sessions = self.json("alice", "session list --json");
            let found: Vec<&Value> = sessions
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["account"] == user && s["kind"] == "console")
                .filter(|s| fingerprint.is_none_or(|f| s["fingerprint"] == f))
                .collect();
            if found.len() == 1 {
                assert_eq!(found[0]["address"], "127.0.0.1");
                return found[0]["id"].as_u64().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "one console of {user}: {sessions:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Asserts that `client` exits within one second of `start`.
fn exits_within_a_second(client: &mut Proc, start: Instant, what: &str) {
    let status = client.wait_exit(Duration::from_secs(5));
    let took = start.elapsed();
    assert!(
        status.is_some(),
        "{what}: the client is still connected 5 s later\nstdout: {}",
        client.stdout.text()
    );
    assert!(
        took < Duration::from_secs(1),
        "{what}: the client took {took:?} to be disconnected"
    );
}

fn fingerprint(inst: &Instance, name: &str) -> String {
    ssh_keygen_fingerprint(&inst.path(&format!("{name}.pub")))
}

#[test]
fn an_admin_runs_the_whole_lifecycle_over_ssh_exec_with_the_offline_exit_codes() {
    let live = Live::start(Instance::initialised());
    let inst = &live.inst;
    let who = live.ok("alice", "whoami");
    assert!(who.starts_with("alice (alice), roles: admin"), "{who}");
    let who = live.json("alice", "whoami --json");
    assert_eq!(who["name"], "alice");
    assert_eq!(who["source"], "ssh:127.0.0.1");

    let out = live.ok(
        "alice",
        "user create bob --email bob@example.com --display-name 'Bob Builder' \
         --kind contractor --end +90d --sponsor alice --role user",
    );
    assert!(
        out.starts_with("created bob (contractor, active, ends "),
        "{out}"
    );
    let bob = live.json("alice", "user show bob --json");
    assert_eq!(bob["display_name"], "Bob Builder");
    assert_eq!(bob["sponsor"], "alice");
    assert_eq!(bob["days_left"], 90);
    assert_eq!(bob["effective_status"], "active");
    assert_eq!(bob["created_by"], "alice");

    // The error contract over ssh: exit code, one `error: ` line, no stdout.
    live.fails(
        "alice",
        "user create bob --email b2@example.com --display-name B --kind employee",
        5,
    );
    live.fails(
        "alice",
        "user create Bob --email b3@example.com --display-name B --kind employee",
        2,
    );
    live.fails("alice", "user create dan --email dan@example.com --display-name D --kind contractor --end 2020-02-01", 2);
    live.fails("alice", "user list --colour", 2);
    live.fails("alice", "frobnicate", 2);
    live.fails("alice", "user show 'unterminated", 2);
    live.fails("alice", "user show nobody", 3);
    live.fails("alice", "user disable nobody --reason x", 3);

    assert_eq!(
        live.ok("alice", "user disable bob --reason 'contract ended'"),
        "disabled bob\n"
    );
    let bob = live.json("alice", "user show bob --json");
    assert_eq!(bob["effective_status"], "disabled");
    assert_eq!(bob["disable_note"], "contract ended");
    live.fails("alice", "user disable bob --reason again", 5);
    assert_eq!(
        live.ok("alice", "user enable bob"),
        "enabled bob (active)\n"
    );
    let out = live.ok("alice", "user extend bob --end +120d");
    assert!(
        out.starts_with("extended bob to ") && out.ends_with("(active)\n"),
        "{out}"
    );
    assert_eq!(live.json("alice", "user show bob --json")["days_left"], 120);
    live.fails("alice", "user extend bob --end 2001-01-01", 2);

    // `key add` reads the key line from the channel's stdin.
    inst.keygen("bob", "ed25519", None);
    let fp = fingerprint(inst, "bob");
    let out = live.ok_stdin("alice", "key add bob", &inst.pubkey("bob"));
    assert_eq!(out, format!("added ssh-ed25519 {fp} to bob\n"));
    let run = live.run_stdin("alice", "key add bob", &inst.pubkey("bob"));
    check_error(&["key add bob"], &run, 5).unwrap();
    let run = live.run_stdin("alice", "key add bob", "ssh-ed25519 not-base64 x\n");
    check_error(&["key add bob"], &run, 2).unwrap();
    let keys = live.json("alice", "key list bob --json");
    assert_eq!(names(&keys, "fingerprint"), [fp.clone()]);

    // bob logs in with that key, and is refused what a user may not do.
    let who = live.ok("bob", "whoami");
    assert!(who.starts_with("bob (Bob Builder), roles: user"), "{who}");
    let denied = live.fails("bob", "user disable alice --reason x", 4);
    assert!(denied.contains("may not"), "{denied}");
    live.fails(
        "bob",
        "user create eve --email e@example.com --display-name E --kind employee",
        4,
    );
    let bob = live.json("alice", "user show bob --json");
    assert!(bob["last_login"].is_string(), "{bob}");
    assert!(bob["keys"][0]["last_used"].is_string(), "{bob}");

    let out = live.ok("alice", "user delete bob");
    assert!(out.starts_with("deleted bob"), "{out}");
    live.refused(&live.run("bob", "whoami"), "a deleted account");
    assert!(live
        .ok("alice", "user restore bob")
        .starts_with("restored bob"));
    assert_eq!(
        live.json("alice", "user show bob --json")["effective_status"],
        "disabled"
    );
    live.fails("alice", "user purge bob --yes", 5);
    live.ok("alice", "user delete bob");
    let line = live.fails("alice", "user purge bob", 2);
    assert!(line.contains("--yes"), "{line}");
    assert_eq!(live.ok("alice", "user purge bob --yes"), "purged bob\n");
    live.fails("alice", "user show bob", 3);

    // Every change is audited with alice as the actor, from her address.
    let events = live.json("alice", "audit tail -n 1000 --target bob --json");
    let events = events.as_array().unwrap();
    let by_alice: Vec<&str> = events
        .iter()
        .filter(|e| e["actor"] == "alice")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "user.create",
        "user.disable",
        "user.enable",
        "key.add",
        "user.delete",
        "user.restore",
        "user.purge",
    ] {
        assert!(
            by_alice.contains(&action),
            "no {action} by alice: {by_alice:?}"
        );
    }
    assert!(
        events
            .iter()
            .all(|e| e["actor"] != "alice" || e["source"] == "ssh:127.0.0.1"),
        "{events:#?}"
    );
}

#[test]
fn killing_a_session_disabling_its_account_or_removing_its_key_disconnects_it_within_a_second() {
    let inst = Instance::initialised();
    inst.create("bob", "--kind employee --role user");
    for key in ["bob", "bob2"] {
        inst.keygen(key, "ed25519", None);
        inst.ok_stdin(&["key", "add", "bob"], &inst.pubkey(key));
    }
    let live = Live::start(inst);
    let inst = &live.inst;

    // session kill ID
    let mut console = live.console("bob", "bob");
    let id = live.console_id("bob", None);
    let sessions = live.json("alice", "session list --json");
    let bob = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap();
    assert_eq!(bob["method"], "publickey");
    assert_eq!(bob["fingerprint"], fingerprint(inst, "bob").as_str());
    let out = live.ok("alice", &format!("session kill {id}"));
    let killed = Instant::now();
    assert_eq!(out, format!("killed session {id} of bob from 127.0.0.1\n"));
    exits_within_a_second(&mut console, killed, "session kill ID");
    live.fails("alice", &format!("session kill {id}"), 3);

    // session kill --user
    let mut console = live.console("bob", "bob");
    let out = live.ok("alice", "session kill --user bob");
    let killed = Instant::now();
    assert_eq!(out, "killed 1 session(s) of bob\n");
    exits_within_a_second(&mut console, killed, "session kill --user");

    // user disable
    let mut console = live.console("bob", "bob");
    live.ok("alice", "user disable bob --reason x");
    let disabled = Instant::now();
    exits_within_a_second(&mut console, disabled, "user disable");
    live.ok("alice", "user enable bob");

    // key remove closes the session that used the key, not bob's other one.
    let mut first = live.console("bob", "bob");
    let mut second = live.console("bob", "bob2");
    let fp = fingerprint(inst, "bob");
    live.console_id("bob", Some(&fp));
    live.ok("alice", &format!("key remove bob {fp}"));
    let removed = Instant::now();
    exits_within_a_second(&mut first, removed, "key remove");
    assert!(
        second.running(),
        "the session with bob's other key stays open"
    );
    let other = fingerprint(inst, "bob2");
    live.console_id("bob", Some(&other));
    // The console ends on `q`.
    second.send(b"q");
    let status = second
        .wait_exit(Duration::from_secs(5))
        .expect("q closes the console");
    assert!(status.success(), "{status}: {}", second.stdout.text());
    // It leaves the alternate screen it entered.
    assert!(second.stdout.text().contains("\x1b[?1049l"));

    let kills = live.json(
        "alice",
        "audit tail -n 1000 --target bob --action session.kill --json",
    );
    assert_eq!(kills.as_array().unwrap().len(), 2, "{kills:#}");
}

/// Who runs the matrix: (role, account).
const ROLES: [(&str, &str); 4] = [
    ("user", "uma"),
    ("sponsor", "sam"),
    ("operator", "olga"),
    ("admin", "alice"),
];

#[test]
fn each_role_may_do_exactly_what_its_rules_allow_over_ssh() {
    let inst = Instance::initialised();
    inst.create("olga", "--kind employee --role operator");
    inst.create("sam", "--kind employee --role sponsor");
    inst.create("uma", "--kind employee --role user");
    inst.create("tom", "--kind employee --role user --sponsor sam");
    inst.create("vic", "--kind employee --role user");
    inst.create("dis", "--kind employee --role user");
    inst.sh("user disable dis --reason paused");
    inst.create("del", "--kind employee --role user");
    for (_, name) in ROLES {
        if name != "alice" {
            inst.keygen(name, "ed25519", None);
            inst.ok_stdin(&["key", "add", name], &inst.pubkey(name));
        }
        inst.keygen(&format!("{name}-own"), "ed25519", None);
        inst.keygen(&format!("{name}-other"), "ed25519", None);
    }
    inst.keygen("vic", "ed25519", None);
    inst.ok_stdin(&["key", "add", "vic"], &inst.pubkey("vic"));
    let vic_fp = fingerprint(&inst, "vic");
    let live = Live::start(inst);
    let inst = &live.inst;

    const OWN_KEY: &str = "@own-key";
    const OTHER_KEY: &str = "@other-key";
    let password = "a long enough secret\n";
    let vic_key = format!("key remove vic {vic_fp}");
    let vic_pub = inst.pubkey("vic");
    // (command line with {me} for the actor, stdin, expected exit per ROLES,
    //  what alice runs after a success to restore the state)
    #[rustfmt::skip]
    let rows: Vec<(&str, Option<&str>, [i32; 4], Option<(&str, Option<&str>)>)> = vec![
        ("whoami", None, [0, 0, 0, 0], None),
        ("user show {me}", None, [0, 0, 0, 0], None),
        ("user list", None, [4, 0, 0, 0], None),
        ("user show tom", None, [4, 0, 0, 0], None),
        ("key list tom", None, [4, 0, 0, 0], None),
        ("user show vic", None, [4, 4, 0, 0], None),
        ("user show alice", None, [4, 4, 0, 0], None),
        ("user create new-{me} --email new-{me}@example.com --display-name New --kind employee", None, [4, 4, 4, 0], None),
        ("user disable vic --reason matrix", None, [4, 4, 0, 0], Some(("user enable vic", None))),
        ("user disable tom --reason matrix", None, [4, 4, 0, 0], Some(("user enable tom", None))),
        ("user enable dis", None, [4, 4, 4, 0], None),
        ("user delete del", None, [4, 4, 4, 0], None),
        ("key add {me}", Some(OWN_KEY), [0, 0, 0, 0], None),
        ("key add vic", Some(OTHER_KEY), [4, 4, 4, 0], None),
        (&vic_key, None, [4, 4, 0, 0], Some(("key add vic", Some(&vic_pub)))),
        ("password set {me}", Some(password), [0, 0, 0, 0], None),
        ("password set vic", Some(password), [4, 4, 4, 0], None),
        ("totp enroll {me}", None, [0, 0, 0, 0], None),
        ("allow add vic 10.0.0.0/8", None, [4, 4, 4, 0], None),
        ("audit tail -n 1", None, [4, 4, 0, 0], None),
        ("group create g-{me}", None, [4, 4, 4, 0], None),
        ("export --format json", None, [4, 4, 0, 0], None),
        ("session list", None, [0, 0, 0, 0], None),
        ("session kill --user vic", None, [4, 4, 0, 0], None),
    ];
    let mut failures = Vec::new();
    for (line, stdin, want, restore) in &rows {
        for ((role, me), code) in ROLES.iter().zip(want) {
            let line = line.replace("{me}", me);
            let stdin = match *stdin {
                Some(OWN_KEY) => Some(inst.pubkey(&format!("{me}-own"))),
                Some(OTHER_KEY) => Some(inst.pubkey(&format!("{me}-other"))),
                other => other.map(str::to_string),
            };
            let run = live.server.exec(me, &live.key(me), &line, stdin.as_deref());
            let verdict = if *code == 0 {
                (run.0 == 0 && run.2.is_empty())
                    .then_some(())
                    .ok_or_else(|| {
                        format!("want exit 0; got exit {}\n  stderr: {:?}", run.0, run.2)
                    })
            } else {
                check_error(&[&line], &run, *code)
            };
            if let Err(e) = verdict {
                failures.push(format!("{role} ({me}): `{line}`: {e}"));
            }
            if run.0 == 0 {
                if let Some((fix, input)) = restore {
                    live.server.exec("alice", &live.key("alice"), fix, *input);
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} (role, command) pairs broke the rules:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // A sponsor's list is narrowed to the accounts it sponsors.
    let list = live.json("sam", "user list --json");
    assert_eq!(names(&list, "username"), ["tom"]);
    // A user's session list shows only their own.
    let sessions = live.json("uma", "session list --json");
    assert_eq!(names(&sessions, "account"), ["uma"]);

    // Every denial is an audit event naming who tried what.
    let denied = live.json("alice", "audit tail -n 1000 --action auth.denied --json");
    let denied = denied.as_array().unwrap();
    for (_, me) in &ROLES[..3] {
        assert!(
            denied
                .iter()
                .any(|e| e["actor"] == *me && e["source"] == "ssh:127.0.0.1"),
            "no auth.denied by {me}: {denied:#?}"
        );
    }
    let uma_on_vic = denied
        .iter()
        .find(|e| e["actor"] == "uma" && e["target"] == "vic")
        .expect("uma denied on vic");
    assert!(
        uma_on_vic["detail"]
            .as_str()
            .unwrap()
            .contains("uma may not"),
        "{uma_on_vic}"
    );
}

/// The login methods line of the shipped config.
const METHODS: &str =
    r#"methods = { admin = ["key"], operator = ["key"], sponsor = ["key"], user = ["key"] }"#;

/// Sets the methods of the `user` role (others keep keys).
fn user_methods(inst: &Instance, methods: &str) {
    inst.edit_config(
        METHODS,
        &format!(
            r#"methods = {{ admin = ["key"], operator = ["key"], sponsor = ["key"], user = {methods} }}"#
        ),
    );
}

/// The base32 secret in `totp enroll` output (`otpauth://totp/...?secret=...`).
fn totp_secret(enrol: &str) -> String {
    let at = enrol
        .find("otpauth://totp/")
        .unwrap_or_else(|| panic!("no otpauth URI: {enrol}"));
    let uri = enrol[at..].lines().next().unwrap();
    let secret = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap_or_else(|| panic!("no secret in {uri}"))
        .to_string();
    assert!(
        !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
        "not base32: {secret}"
    );
    secret
}

/// The current code, from an independent implementation.
fn oathtool(secret: &str) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", secret])
        .output()
        .expect("run oathtool (apt-get install oathtool)");
    assert!(out.status.success(), "oathtool failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A six-digit code that is not `code`.
fn wrong_code(code: &str) -> String {
    format!(
        "{:06}",
        (code.parse::<u32>().unwrap() + 500_001) % 1_000_000
    )
}

fn actions<'a>(events: &'a [Value], action: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| e["detail"].as_str().unwrap_or_default())
        .collect()
}

#[test]
fn password_and_totp_log_in_through_keyboard_interactive_and_every_bad_factor_or_replay_is_refused()
{
    let inst = Instance::initialised();
    user_methods(&inst, r#"["password+totp"]"#);
    let live = Live::start(inst);
    live.ok(
        "alice",
        "user create carl --email carl@example.com --display-name Carl --kind employee --role user",
    );
    let password = "correct horse battery staple";
    let out = live.ok_stdin("alice", "password set carl", &format!("{password}\n"));
    assert_eq!(out, "password set for carl\n");
    let enrol = live.ok("alice", "totp enroll carl");
    let secret = totp_secret(&enrol);
    let askpass = Askpass::new(live.inst.dir.path());

    // A good login, then the same code again: a replay. Should the 30 s step
    // roll over before the first login, the pair is tried once more.
    let mut tries = 0;
    let code = loop {
        tries += 1;
        let code = oathtool(&secret);
        let run =
            live.server
                .exec_kbdint("carl", &askpass.password(password, &code), "whoami", None);
        if run.0 == 0 {
            assert!(run.1.starts_with("carl (Carl), roles: user"), "{}", run.1);
            break code;
        }
        assert!(
            tries < 2,
            "password and code refused twice: {run:?}\nprompts: {}",
            askpass.prompts()
        );
    };
    let prompts = askpass.prompts();
    assert!(
        prompts.contains("Password") && prompts.contains("Verification code"),
        "{prompts}"
    );
    let replay =
        live.server
            .exec_kbdint("carl", &askpass.password(password, &code), "whoami", None);
    live.refused(&replay, "a replayed code");

    let fresh = oathtool(&secret);
    let run = live.server.exec_kbdint(
        "carl",
        &askpass.password("not the password", &fresh),
        "whoami",
        None,
    );
    live.refused(&run, "a wrong password");
    let run = live.server.exec_kbdint(
        "carl",
        &askpass.password(password, &wrong_code(&fresh)),
        "whoami",
        None,
    );
    live.refused(&run, "a wrong code");

    let events = live.audit_until("alice", "carl", "three failed logins", |events| {
        actions(events, "auth.fail").len() >= 3
    });
    let fails = actions(&events, "auth.fail");
    assert_eq!(fails.len(), 3, "{fails:#?}");
    for (why, detail) in [
        ("replay", "already used"),
        ("wrong password", "wrong password"),
        ("wrong code", "wrong verification code"),
    ] {
        assert!(
            fails.iter().any(|d| d.contains(detail)),
            "{why}: no auth.fail saying {detail:?}: {fails:#?}"
        );
    }
    let logins = actions(&events, "auth.login");
    assert!(
        logins.len() == 1 && logins[0].contains("password+totp"),
        "{logins:#?}"
    );
    for e in events.iter().filter(|e| e["action"] == "auth.fail") {
        assert_eq!(e["source"], "ssh:127.0.0.1", "{e}");
        let text = e.to_string();
        assert!(
            !text.contains(password) && !text.contains("not the password"),
            "a password in the audit: {text}"
        );
    }
}

#[test]
fn a_disabled_a_not_yet_started_or_an_address_restricted_account_is_refused_whatever_the_credential(
) {
    let inst = Instance::initialised();
    user_methods(&inst, r#"["key", "password"]"#);
    inst.edit_config("max_failures = 5", "max_failures = 50");
    let password = "a long enough secret";
    for (name, flags) in [
        ("okay", "--kind employee --role user"),
        ("dora", "--kind employee --role user"),
        ("stan", "--kind employee --role user --start +10d"),
        ("al", "--kind employee --role user"),
    ] {
        inst.create(name, flags);
        inst.keygen(name, "ed25519", None);
        inst.ok_stdin(&["key", "add", name], &inst.pubkey(name));
        inst.ok_stdin(&["password", "set", name], &format!("{password}\n"));
    }
    inst.sh("user disable dora --reason left");
    inst.sh("allow add al 10.0.0.0/8");
    assert_eq!(inst.show("stan")["effective_status"], "staged");
    let live = Live::start(inst);
    let askpass = Askpass::new(live.inst.dir.path()).password(password, "");

    // The same credentials work for an account with nothing against it.
    assert!(live.ok("okay", "whoami").starts_with("okay "));
    let run = live.server.exec_kbdint("okay", &askpass, "whoami", None);
    assert!(run.0 == 0 && run.1.starts_with("okay "), "{run:?}");

    for (name, why, reason) in [
        ("dora", "disabled", "account is disabled"),
        (
            "stan",
            "start date in the future",
            "account is not yet active",
        ),
        (
            "al",
            "address outside its allowlist",
            "address 127.0.0.1 is not in the account's allowlist",
        ),
    ] {
        live.refused(&live.run(name, "whoami"), &format!("{why}: key"));
        let run = live.server.exec_kbdint(name, &askpass, "whoami", None);
        live.refused(&run, &format!("{why}: password"));
        let events = live.audit_until("alice", name, "two failed logins", |events| {
            actions(events, "auth.fail").len() >= 2
        });
        assert!(
            actions(&events, "auth.login").is_empty(),
            "{why}: {events:#?}"
        );
        let fails = actions(&events, "auth.fail");
        assert_eq!(fails.len(), 2, "{why}: {fails:#?}");
        for method in ["publickey: ", "password: "] {
            assert!(
                fails
                    .iter()
                    .any(|d| d.contains(&format!("{method}{reason}"))),
                "{why}: no auth.fail for {method}{reason}: {fails:#?}"
            );
        }
    }
}

#[test]
fn repeated_failures_lock_the_account_and_the_address_for_passwords_even_the_right_ones() {
    let inst = Instance::initialised();
    user_methods(&inst, r#"["password+totp"]"#);
    inst.edit_config("max_failures = 5", "max_failures = 3");
    // The shipped lockout_seconds = 60: the test never waits for it to end.
    assert!(std::fs::read_to_string(&inst.config)
        .unwrap()
        .contains("lockout_seconds = 60"));
    inst.create("dave", "--kind employee --role user");
    let password = "a long enough secret";
    inst.ok_stdin(&["password", "set", "dave"], &format!("{password}\n"));
    let secret = totp_secret(&inst.ok(&["totp", "enroll", "dave"]));
    let live = Live::start(inst);
    let askpass = Askpass::new(live.inst.dir.path());

    for _ in 0..3 {
        let run = live.server.exec_kbdint(
            "dave",
            &askpass.password("wrong password!", &oathtool(&secret)),
            "whoami",
            None,
        );
        live.refused(&run, "a wrong password");
    }
    // Locked: the right password and code no longer open the door…
    let right = askpass.password(password, &oathtool(&secret));
    live.refused(
        &live.server.exec_kbdint("dave", &right, "whoami", None),
        "dave while locked",
    );
    // The address is locked too, for passwords and codes; but a verified key
    // is never refused by a lockout, so alice (an admin) still gets in.
    let run = live.run("alice", "whoami");
    assert!(
        run.0 == 0 && run.1.starts_with("alice "),
        "alice's key from a locked address: {run:?}"
    );

    // From another loopback address: alice gets in, dave is still locked.
    let from = |mut cmd: Command, line: &str| {
        cmd.args(["-o", "BindAddress=127.0.0.2"])
            .arg("127.0.0.1")
            .arg(line);
        run_bounded(&mut cmd, None, STEP)
    };
    let run = from(live.server.ssh_kbdint("dave", &right), "whoami");
    live.refused(
        &run,
        "dave from another address while his account is locked",
    );
    let run = from(live.server.ssh_key("alice", &live.key("alice")), "whoami");
    assert!(
        run.0 == 0 && run.1.starts_with("alice "),
        "alice from 127.0.0.2: {run:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let fails = loop {
        let run = from(
            live.server.ssh_key("alice", &live.key("alice")),
            "audit tail -n 1000 --action auth.fail --json",
        );
        assert_eq!(run.0, 0, "{run:?}");
        let events: Value = serde_json::from_str(&run.1).unwrap();
        let events = events.as_array().unwrap().clone();
        if events.len() >= 5 || Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let about = |who: &str| -> Vec<String> {
        fails
            .iter()
            .filter(|e| e["target"] == who)
            .map(|e| e["detail"].as_str().unwrap().to_string())
            .collect()
    };
    let dave = about("dave");
    assert_eq!(dave.len(), 5, "{dave:#?}");
    assert_eq!(
        dave.iter().filter(|d| d.contains("wrong password")).count(),
        3,
        "{dave:#?}"
    );
    assert_eq!(
        dave.iter().filter(|d| d.contains("locked out")).count(),
        2,
        "{dave:#?}"
    );
    assert!(
        dave.iter().any(|d| d.contains("from 127.0.0.2")),
        "{dave:#?}"
    );
    assert!(about("alice").is_empty(), "{:#?}", about("alice"));
}

/// ssh-audit: SSH_AUDIT (scripts/test.sh), then PATH, then the repo's .venv-test.
fn ssh_audit() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SSH_AUDIT") {
        return Some(PathBuf::from(path));
    }
    if let Ok(out) = Command::new("which").arg("ssh-audit").output() {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !path.is_empty() {
            return Some(PathBuf::from(path));
        }
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/ssh-audit");
    venv.exists().then_some(venv)
}

#[test]
fn ssh_audit_finds_no_failure_and_hardened_mode_passes_it_outright() {
    let Some(audit) = ssh_audit() else {
        println!(
            "note: ssh-audit not found (set SSH_AUDIT or install it); skipping the algorithm audit"
        );
        return;
    };
    let inst = Instance::initialised();
    let inst = {
        let mut live = Live::start(inst);
        let port = live.server.port.to_string();
        let run = run_bounded(
            Command::new(&audit).args(["-n", "--skip-rate-test", "-j", "-p", &port, "127.0.0.1"]),
            None,
            STEP,
        );
        // 2: warnings (the classic curve25519 fallback), never 3 (a failure).
        assert_eq!(run.0, 2, "ssh-audit exit {}: {}{}", run.0, run.1, run.2);
        let report: Value =
            serde_json::from_str(&run.1).unwrap_or_else(|e| panic!("{e}: {}", run.1));
        assert_eq!(report["cves"], serde_json::json!([]), "{report:#}");
        let mut warned = Vec::new();
        for section in ["kex", "key", "enc", "mac"] {
            for alg in report[section].as_array().unwrap() {
                let name = alg["algorithm"].as_str().unwrap();
                let notes = &alg["notes"];
                assert!(
                    notes["fail"].as_array().is_none_or(|f| f.is_empty()),
                    "{section} {name}: {notes}"
                );
                if let Some(warns) = notes["warn"].as_array().filter(|w| !w.is_empty()) {
                    warned.push(name.to_string());
                    assert!(
                        section == "kex" && name.starts_with("curve25519-sha256"),
                        "a warning beyond the curve25519 fallback: {section} {name}: {warns:?}"
                    );
                    assert!(
                        warns
                            .iter()
                            .all(|w| w.as_str().unwrap().contains("post-quantum")),
                        "{name}: {warns:?}"
                    );
                }
            }
        }
        assert!(
            !warned.is_empty(),
            "the curve25519 fallback is offered for OpenSSH 9.2"
        );
        assert_eq!(report["key"][0]["algorithm"], "ssh-ed25519");
        assert_eq!(report["kex"][0]["algorithm"], "mlkem768x25519-sha256");
        // The fallback works for this OpenSSH client.
        assert!(live.ok("alice", "whoami").starts_with("alice "));
        live.server
            .terminate(STEP)
            .expect("the server stops on SIGTERM");
        live.inst
    };
    inst.edit_config("hardened = false", "hardened = true");
    let live = Live::start(inst);
    let port = live.server.port.to_string();
    let run = run_bounded(
        Command::new(&audit).args(["-n", "--skip-rate-test", "-p", &port, "127.0.0.1"]),
        None,
        STEP,
    );
    assert_eq!(
        run.0, 0,
        "hardened: ssh-audit exit {}:\n{}{}",
        run.0, run.1, run.2
    );
    assert!(!run.1.contains("curve25519"), "{}", run.1);
    // Hardened offers only ML-KEM: an OpenSSH client older than 9.9 (Debian
    // 12 has 9.2) cannot agree on a key exchange, as the config says.
    if openssh_version().is_some_and(|v| v < (9, 9)) {
        let run = live.run("alice", "whoami");
        live.refused(&run, "an OpenSSH < 9.9 client against a hardened server");
    }
}

/// The local OpenSSH client's (major, minor) version, from `ssh -V`.
fn openssh_version() -> Option<(u32, u32)> {
    let out = Command::new("ssh").arg("-V").output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    let rest = text.strip_prefix("OpenSSH_")?;
    let (major, rest) = rest.split_once('.')?;
    let minor: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[test]
fn sigterm_closes_open_sessions_and_leaves_a_database_the_offline_cli_can_open() {
    let inst = Instance::initialised();
    let mut live = Live::start(inst);
    let mut console = live.console("alice", "alice");
    let status = live.server.terminate(Duration::from_secs(10));
    let status = status
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM: {}", live.server.stdout()));
    assert!(
        status.success(),
        "exit {status}; stderr: {}",
        live.server.proc.stderr.text()
    );
    let out = live.server.stdout();
    assert!(
        out.contains("shutting down") && out.ends_with("stopped\n"),
        "{out}"
    );
    let gone = console.wait_exit(Duration::from_secs(5));
    assert!(gone.is_some(), "the console client is still connected");
    let verify = live.inst.sh("audit verify");
    assert!(verify.starts_with("audit chain intact"), "{verify}");
    live.inst.sh("check");
}

/// `tenure serve` with no --config, in `dir`, for OS user `firstrun` with `home`.
fn first_run(dir: &Path, home: &Path) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("HOME", home)
        .env("USER", "firstrun")
        .env("LOGNAME", "firstrun")
        .env_remove("TENURE_CONFIG")
        .env_remove("TENURE_LOG");
    Server::start(&mut cmd)
}

#[test]
fn first_run_makes_the_os_user_an_admin_with_the_key_in_their_home() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let ssh_dir = home.path().join(".ssh");
    std::fs::create_dir(&ssh_dir).unwrap();
    let key = ssh_dir.join("id_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "firstrun@test", "-f"])
        .arg(&key)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let server = first_run(dir.path(), home.path());
    let out = server.stdout();
    assert!(
        out.contains("first run: initialised the database with admin 'firstrun'"),
        "{out}"
    );
    let fp = ssh_keygen_fingerprint(&key.with_extension("pub"));
    assert!(out.contains(&format!("admin key: {fp}")), "{out}");
    assert!(
        out.contains(&format!("ssh -p {} firstrun@localhost", server.port)),
        "{out}"
    );
    assert!(dir.path().join("data").is_dir() && dir.path().join("keys").is_dir());
    let run = server.exec("firstrun", &key, "whoami", None);
    assert!(run.0 == 0 && run.1.starts_with("firstrun "), "{run:?}");
    assert!(run.1.contains("admin"), "{}", run.1);
}

#[test]
fn first_run_without_a_key_prints_a_one_time_enrolment_code_that_works_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let server = first_run(dir.path(), home.path());
    let out = server.stdout();
    assert!(
        out.contains("initialised the database with admin 'firstrun'"),
        "{out}"
    );
    let code = out
        .lines()
        .find_map(|l| l.split("enrolment code (valid 15 minutes): ").nth(1))
        .unwrap_or_else(|| panic!("no enrolment code: {out}"))
        .trim()
        .to_string();
    let b = code.as_bytes();
    assert!(
        b.len() == 9
            && b[4] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || c.is_ascii_digit()),
        "not NNNN-NNNN: {code}"
    );
    assert!(out.contains(&format!("ssh -p {} ", server.port)), "{out}");

    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "firstrun@test", "-f"])
        .arg(&key)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let askpass = Askpass::new(keys.path()).enrolment(&code);
    let run = server.exec_kbdint("firstrun", &askpass, "key add firstrun", Some(&pubkey));
    assert!(
        run.0 == 0 && run.1.starts_with("added ssh-ed25519 "),
        "{run:?}\nprompts: {}",
        askpass.prompts()
    );
    assert!(
        askpass.prompts().contains("Enrolment code"),
        "{}",
        askpass.prompts()
    );
    let run = server.exec("firstrun", &key, "whoami", None);
    assert!(run.0 == 0 && run.1.starts_with("firstrun "), "{run:?}");

    let again = server.exec_kbdint("firstrun", &askpass, "whoami", None);
    assert!(
        again.0 == SSH_REFUSED && again.1.is_empty(),
        "the code works once: {again:?}"
    );
}

#[test]
fn idle_and_overlong_sessions_are_closed_by_the_server() {
    let inst = Instance::initialised();
    // 0.05 minutes = 3 s without input; 0.002 hours = 7.2 s at most.
    inst.edit_config("idle_timeout_minutes = 30", "idle_timeout_minutes = 0.05");
    inst.edit_config("max_session_hours = 12", "max_session_hours = 0.002");
    inst.create("bob", "--kind employee --role user");
    inst.keygen("bob", "ed25519", None);
    inst.ok_stdin(&["key", "add", "bob"], &inst.pubkey("bob"));
    let live = Live::start(inst);

    // Idle: nothing typed, closed after about 3 s (well before the maximum length).
    let start = Instant::now();
    let mut idle = live.console("bob", "bob");
    let status = idle.wait_exit(Duration::from_secs(10));
    assert!(status.is_some(), "the idle console is still open");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(7),
        "closed after {took:?}"
    );

    // Busy but too long: a key every second keeps it from idling; the maximum length ends it.
    let start = Instant::now();
    let mut busy = live.console("bob", "bob");
    let mut closed = None;
    while start.elapsed() < Duration::from_secs(15) {
        if let Some(stdin) = busy.child.stdin.as_mut() {
            let _ = stdin.write_all(b"x");
            let _ = stdin.flush();
        }
        if let Some(status) = busy.child.try_wait().unwrap() {
            closed = Some((status, start.elapsed()));
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, took) = closed.expect("the busy console outlived the maximum session length");
    assert!(
        took >= Duration::from_millis(7000) && took < Duration::from_secs(10),
        "closed after {took:?}"
    );
    let events = live.json("alice", "audit tail -n 50 --target bob --json");
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "auth.login")
            .count()
            >= 2
    );
}

/// Reads what the server sends first on a raw TCP connection (its banner, or
/// nothing when it closes at once), within `limit`.
fn first_bytes(port: u16, limit: Duration) -> (String, Option<Duration>) {
    use std::io::Read;
    let start = Instant::now();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => {
                return (
                    String::from_utf8_lossy(&seen).into_owned(),
                    Some(start.elapsed()),
                )
            }
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                return (
                    String::from_utf8_lossy(&seen).into_owned(),
                    Some(start.elapsed()),
                )
            }
        }
    }
    (String::from_utf8_lossy(&seen).into_owned(), None)
}

#[test]
fn an_address_outside_the_global_allowlist_is_closed_before_the_banner_and_audited() {
    let inst = Instance::initialised();
    inst.edit_config(
        "allowlist = []",
        "allowlist = [\"10.0.0.0/8\", \"127.0.0.2\"]",
    );
    let live = Live::start(inst);
    let (banner, closed) = first_bytes(live.server.port, Duration::from_secs(5));
    assert!(
        banner.is_empty(),
        "no banner for a refused address: {banner:?}"
    );
    assert!(closed.is_some(), "the connection is closed at once");
    // 127.0.0.2 is allowed: alice reads the trail from there.
    let mut cmd = live.server.ssh_key("alice", &live.key("alice"));
    cmd.args([
        "-o",
        "BindAddress=127.0.0.2",
        "127.0.0.1",
        "audit tail -n 20 --json",
    ]);
    let (code, out, err) = run_bounded(&mut cmd, None, STEP);
    assert_eq!(code, 0, "{err}");
    let events: Value = serde_json::from_str(&out).unwrap();
    let refused = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "connection.refused");
    assert!(
        refused.is_some_and(|e| e["source"] == "ssh:127.0.0.1"),
        "{events:#}"
    );
}

#[test]
fn unauthenticated_connections_get_a_grace_time_and_a_cap() {
    let inst = Instance::initialised();
    inst.edit_config("login_grace_seconds = 30", "login_grace_seconds = 2");
    inst.edit_config("max_unauthenticated = 64", "max_unauthenticated = 2");
    let live = Live::start(inst);
    // Two connections that never log in hold the two places…
    let holders: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", live.server.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // …so a third is closed before the banner,
    let (banner, closed) = first_bytes(live.server.port, Duration::from_secs(1));
    assert!(
        banner.is_empty() && closed.is_some(),
        "a third unauthenticated connection: {banner:?}"
    );
    // and after the grace time the holders are gone and logins work again.
    let (banner, closed) = {
        let start = Instant::now();
        let mut stream = holders.into_iter().next().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(6)))
            .unwrap();
        let mut all = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stream, &mut all);
        (String::from_utf8_lossy(&all).into_owned(), start.elapsed())
    };
    assert!(banner.starts_with("SSH-2.0-tenure"), "{banner:?}");
    assert!(
        closed < Duration::from_secs(5),
        "grace time: closed after {closed:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let run = live.run("alice", "whoami");
        if run.0 == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "logins never came back: {run:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_expired_key_is_refused_but_the_account_may_use_another() {
    let inst = Instance::initialised();
    inst.create("bob", "--kind employee --role user");
    inst.keygen("bob", "ed25519", None);
    inst.keygen("bob2", "ed25519", None);
    inst.ok_stdin(
        &["key", "add", "bob", "--expires", "+1d"],
        &inst.pubkey("bob"),
    );
    inst.ok_stdin(&["key", "add", "bob"], &inst.pubkey("bob2"));
    inst.set_faketime(Some("+3d"));
    let live = Live::start(inst);
    let expired = live.run("bob", "whoami");
    live.refused(&expired, "a key past its expiry");
    let other = live.server.exec("bob", &live.key("bob2"), "whoami", None);
    assert_eq!(other.0, 0, "{other:?}");
    let events = live.json("alice", "audit tail -n 50 --target bob --json");
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "auth.fail"
                && e["detail"].as_str().is_some_and(|d| d.contains("expired"))),
        "{events:#}"
    );
}
