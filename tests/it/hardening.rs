//! Security regressions of issue 9, end to end over the real OpenSSH client:
//! terminal escapes from client-supplied text never reach an admin's
//! terminal (§5), admins stay reachable (§6), and `session kill` does not
//! tell a missing session from someone else's (§7).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// Clears the screen, retitles the window and forges an audit line.
const HOSTILE: &str = "x\x1b[2J\x1b]0;owned\x07\x1b[1A#9999 root user.purge bob";

/// The server and the people on it: alice (admin), olga (operator), bob
/// (a contractor, user) and uma (user), each with an ed25519 key named after them.
struct Site {
    inst: Instance,
    server: Server,
}

impl Site {
    fn start() -> Site {
        let inst = Instance::initialised();
        inst.create("olga", "--kind employee --role operator");
        inst.create("bob", "--kind contractor --end +60d");
        inst.create("uma", "--kind employee");
        for name in ["olga", "bob", "uma"] {
            inst.keygen(name, "ed25519", None);
            inst.ok_stdin(&["key", "add", name], &inst.pubkey(name));
        }
        let server = inst.serve();
        Site { inst, server }
    }

    fn key(&self, name: &str) -> PathBuf {
        self.inst.path(name)
    }

    fn run(&self, user: &str, line: &str) -> Run {
        self.server.exec(user, &self.key(user), line, None)
    }

    fn run_stdin(&self, user: &str, line: &str, stdin: &str) -> Run {
        self.server.exec(user, &self.key(user), line, Some(stdin))
    }

    /// A command that must succeed; returns stdout, checked to carry no
    /// escape byte (and stderr none either).
    fn clean_ok(&self, user: &str, line: &str) -> String {
        let (code, out, err) = self.run(user, line);
        assert!(
            code == 0 && err.is_empty(),
            "{user}: `{}` exited {code}\nstdout: {out}\nstderr: {err}",
            line.escape_debug()
        );
        no_escape(&out, line);
        out
    }

    fn json(&self, user: &str, line: &str) -> Value {
        let out = self.clean_ok(user, line);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("`{line}`: not JSON ({e}): {out}"))
    }

    /// A command that must fail with `code` and one `error: ` line (itself
    /// free of escape bytes); returns that line.
    fn fails(&self, user: &str, line: &str, code: i32) -> String {
        let run = self.run(user, line);
        check_error(&[line.escape_debug().to_string()], &run, code)
            .unwrap_or_else(|e| panic!("{user}: {e}"));
        no_escape(&run.2, line);
        run.2.trim_end().to_string()
    }

    /// Polls `audit tail` (plain text, as alice) until a line contains `want`.
    fn audit_text_until(&self, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.clean_ok("alice", "audit tail -n 200");
            if out.contains(want) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "audit tail never showed {want:?}:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// An exec session of `user` kept open (the command waits for stdin).
    fn held_exec(&self, user: &str, line: &str) -> Proc {
        let mut cmd = self.server.ssh_key(user, &self.key(user));
        cmd.arg("127.0.0.1").arg(line).stdin(Stdio::piped());
        Proc::spawn(&mut cmd)
    }

    /// The id of `user`'s live exec session running `command…`, as alice lists it.
    fn session_of(&self, user: &str, command: &str) -> u64 {
        let deadline = Instant::now() + STEP;
        loop {
            let sessions = self.json("alice", "session list --json");
            if let Some(s) = sessions.as_array().unwrap().iter().find(|s| {
                s["account"] == user
                    && s["kind"] == "exec"
                    && s["command"]
                        .as_str()
                        .is_some_and(|c| c.starts_with(command))
            }) {
                return s["id"].as_u64().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "no exec session of {user}: {sessions:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn no_escape(text: &str, what: &str) {
    assert!(
        !text.contains('\x1b') && !text.contains('\x07'),
        "`{}` let a terminal control through: {text:?}",
        what.escape_debug()
    );
}

#[test]
fn client_supplied_text_reaches_plain_output_escaped_never_as_terminal_controls() {
    let site = Site::start();

    // An unauthenticated username, recorded as the target of auth.fail.
    // (Recent OpenSSH clients refuse to send a username with control
    // characters at all; an attacker's client does: asyncssh here.)
    let user = "evx\x1b[2J\x1b[1A#9999 root user.purge bob\x1b]0;owned\x07";
    let seen =
        crate::security::hostile(&["kbdint", &site.server.port.to_string(), user, "1"], STEP);
    assert_eq!(seen["answered"], 1, "{seen}");
    let audit = site.audit_text_until("auth.fail ev");
    assert!(
        audit.contains("auth.fail evx\\x1b[2J\\x1b[1A#9999 root"),
        "{audit}"
    );
    assert!(!audit.contains("\n#9999"), "a forged line: {audit}");

    // A refused target name (uma may not read accounts).
    let refusal = site.fails("uma", &format!("user show 'v{HOSTILE}'"), 4);
    assert!(refusal.contains("\\x1b[2J"), "{refusal}");
    let audit = site.audit_text_until("auth.denied v");
    assert!(audit.contains("auth.denied vx\\x1b[2J"), "{audit}");

    // An extension request's reason, in `request list`.
    site.clean_ok(
        "alice",
        &format!("request extend bob --end +90d --reason 'r{HOSTILE}'"),
    );
    let requests = site.clean_ok("alice", "request list");
    assert!(requests.contains("rx\\x1b[2J"), "{requests}");
    assert_eq!(requests.lines().count(), 2, "{requests}");

    // An exec line, in `session list` while the session lives.
    let mut held = site.held_exec("bob", &format!("key add bob --expires 'e{HOSTILE}'"));
    site.session_of("bob", "key add bob");
    let sessions = site.clean_ok("alice", "session list");
    assert!(sessions.contains("\\x1b[2J"), "{sessions}");
    assert!(!sessions.contains("\n#9999"), "{sessions}");
    drop(held.child.stdin.take());
    let status = held.wait_exit(STEP).expect("the held exec ends at EOF");
    assert_eq!(status.code(), Some(2), "{}", held.stderr.text());
    no_escape(&held.stderr.text(), "key add bob --expires");

    // A disable reason, in `user show` and the trail.
    site.clean_ok("olga", &format!("user disable uma --reason 'd{HOSTILE}'"));
    let shown = site.clean_ok("alice", "user show uma");
    assert!(shown.contains("dx\\x1b[2J"), "{shown}");
    site.audit_text_until("user.disable uma (dx\\x1b[2J");

    // A usage error quoting what the client typed stays one inert line.
    let usage = site.fails("bob", &format!("user 'u{HOSTILE}'"), 2);
    assert!(usage.contains("#9999 root user.purge bob"), "{usage}");
}

#[test]
fn a_key_comment_with_terminal_controls_is_refused_at_key_add() {
    let site = Site::start();
    site.inst.keygen("bob2", "ed25519", None);
    let line = site
        .inst
        .pubkey("bob2")
        .replace("bob2@test", &format!("laptop{HOSTILE}"));
    let keys_of_bob = || names(&site.json("alice", "key list bob --json"), "fingerprint");
    let before = keys_of_bob();
    for (who, target) in [("alice", "bob"), ("bob", "bob")] {
        let run = site.run_stdin(who, &format!("key add {target}"), &line);
        check_error(&["key add"], &run, 2).unwrap_or_else(|e| panic!("{who}: {e}"));
        assert!(run.2.contains("key comment"), "{}", run.2);
        no_escape(&run.2, "key add");
    }
    assert_eq!(keys_of_bob(), before);
    // The same key with a plain comment is fine.
    let plain = site.inst.pubkey("bob2");
    let (code, _, err) = site.run_stdin("alice", "key add bob", &plain);
    assert_eq!(code, 0, "{err}");
    let keys = site.clean_ok("alice", "key list bob");
    assert!(keys.contains("bob2@test"), "{keys}");
}

#[test]
fn operators_cut_access_only_below_operator_and_the_last_admin_stays_reachable() {
    let inst = Instance::initialised();
    // Offline, the host's operator holds every permission, but not this one.
    for args in [
        &["user", "disable", "alice", "--reason", "gone"][..],
        &["user", "delete", "alice"],
        &["user", "update", "alice", "--role", "user"],
    ] {
        let line = inst.fails(args, 5);
        assert!(line.contains("last active admin"), "{line}");
    }
    inst.create("olga", "--kind employee --role operator");
    inst.create("oleg", "--kind employee --role operator");
    inst.create("bob", "--kind contractor --end +60d");
    for name in ["olga", "oleg", "bob"] {
        inst.keygen(name, "ed25519", None);
        inst.ok_stdin(&["key", "add", name], &inst.pubkey(name));
    }
    let alice_fp = ssh_keygen_fingerprint(&inst.path("alice.pub"));
    let oleg_fp = ssh_keygen_fingerprint(&inst.path("oleg.pub"));
    let server = inst.serve();
    let site = Site { inst, server };
    let alice_before = site.json("alice", "user show alice --json");

    // An operator: not on an admin, not on another operator, saying why.
    for line in [
        "user disable alice --reason pwned".to_string(),
        format!("key remove alice {alice_fp}"),
        "session kill --user alice".to_string(),
        "user disable oleg --reason pwned".to_string(),
        format!("key remove oleg {oleg_fp}"),
    ] {
        let refusal = site.fails("olga", &line, 4);
        assert!(refusal.contains("below operator"), "{line}: {refusal}");
    }
    let alice_after = site.json("alice", "user show alice --json");
    assert_eq!(
        names(&alice_after["keys"], "fingerprint"),
        names(&alice_before["keys"], "fingerprint")
    );
    for field in ["status", "roles"] {
        assert_eq!(alice_after[field], alice_before[field], "{field}");
    }
    // …but on a user, as before.
    site.clean_ok("olga", "session kill --user bob");
    site.clean_ok("olga", "user disable bob --reason 'contract ended'");
    let bob = site.json("alice", "user show bob --json");
    assert_eq!(bob["status"], "disabled");

    // Alice is the only admin: she cannot remove her last key or her role.
    for line in [
        format!("key remove alice {alice_fp}"),
        "user update alice --role user".to_string(),
        "user update alice --start +10d".to_string(),
    ] {
        let refusal = site.fails("alice", &line, 5);
        assert!(refusal.contains("last active admin"), "{line}: {refusal}");
    }
    let denied = site.json("alice", "audit tail -n 100 --action auth.denied --json");
    assert!(
        denied
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "olga" && e["target"] == "alice"),
        "{denied:#}"
    );
    // A second admin with a key lifts the rule.
    site.clean_ok(
        "alice",
        "user create ada --email ada@example.com --display-name Ada --kind employee --role admin",
    );
    site.inst.keygen("ada", "ed25519", None);
    let (code, _, err) = site.run_stdin("alice", "key add ada", &site.inst.pubkey("ada"));
    assert_eq!(code, 0, "{err}");
    site.clean_ok("ada", &format!("key remove alice {alice_fp}"));
    site.clean_ok("ada", "user disable alice --reason 'left'");
    let ada_fp = ssh_keygen_fingerprint(&site.inst.path("ada.pub"));
    let refusal = site.fails("ada", &format!("key remove ada {ada_fp}"), 5);
    assert!(
        refusal.contains("ada is the last active admin"),
        "{refusal}"
    );
}

#[test]
fn session_kill_answers_the_same_for_a_missing_session_and_someone_elses() {
    let site = Site::start();
    let mut held = site.held_exec("alice", "key add alice");
    let alice_session = site.session_of("alice", "key add alice");
    let missing = alice_session + 1000;
    for who in ["bob", "olga"] {
        let others = site.fails(who, &format!("session kill {alice_session}"), 3);
        let none = site.fails(who, &format!("session kill {missing}"), 3);
        assert_eq!(
            others.replace(&alice_session.to_string(), "N"),
            none.replace(&missing.to_string(), "N"),
            "{who}"
        );
        assert!(others.contains("that you may kill"), "{others}");
    }
    assert!(held.running(), "alice's session was closed");
    // Her own sessions, or an admin, may close it.
    let bob_held = site.held_exec("bob", "key add bob");
    let bob_session = site.session_of("bob", "key add bob");
    site.clean_ok("bob", &format!("session kill {bob_session}"));
    site.clean_ok("alice", &format!("session kill {alice_session}"));
    assert!(held.wait_exit(STEP).is_some(), "killed session still open");
    drop(bob_held);
}

#[test]
fn the_sweep_keeps_the_last_admin_who_can_log_in_and_she_still_can() {
    let inst = Instance::initialised();
    // The first admin starts exempt from inactivity; take that away, and
    // add a second admin who could never log in (no key).
    inst.sh("user update alice --inactivity-exempt false");
    inst.create("ada", "--kind employee --role admin");
    // Forty days on nobody has logged in: a pass (the scheduler's actor,
    // through the real binary) is due for both.
    inst.set_faketime(Some("+40d"));
    let plan = inst.json(&["lifecycle", "preview", "--json"]);
    let promised: Vec<(&str, &str)> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["username"].as_str().unwrap(),
                i["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        promised,
        [
            ("ada", "disable (never_logged_in)"),
            ("alice", "keep: exempt from inactivity")
        ],
        "{plan:#}"
    );
    let done = inst.json(&["lifecycle", "run", "--json"]);
    let alice_items: Vec<&Value> = done
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["username"] == "alice")
        .collect();
    assert_eq!(alice_items.len(), 1, "{done:#}");
    assert!(
        alice_items[0]["action"]
            .as_str()
            .unwrap()
            .starts_with("keep"),
        "{done:#}"
    );
    // She still logs in, forty days on.
    let server = inst.serve();
    let site = Site { inst, server };
    let alice = site.json("alice", "user show alice --json");
    assert_eq!(alice["status"], "active", "{alice:#}");
    assert_eq!(alice["inactivity_exempt"], true, "{alice:#}");
    let ada = site.json("alice", "user show ada --json");
    assert_eq!(ada["disable_reason"], "never_logged_in", "{ada:#}");
    let kept = site.json("alice", "audit tail --action lifecycle.keep --json");
    let kept = kept.as_array().unwrap();
    assert_eq!(kept.len(), 1, "{kept:#?}");
    assert_eq!(kept[0]["target"], "alice");
    assert_eq!(kept[0]["actor"], ACTOR);
    let why = kept[0]["detail"].as_str().unwrap();
    assert!(why.contains("last active admin"), "{why}");
}
