//! The exec front door as people type it: `ssh HOST import < people.csv`,
//! free-text options without quotes, every README example as printed, and
//! the limits on what a client may send (stdin, command lines, subsystems).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// An instance with a running server; commands over ssh with the key named
/// like the user.
struct Live {
    inst: Instance,
    server: Server,
}

impl Live {
    /// alice (admin) plus bob, a contractor with his own key and role user.
    fn start() -> Live {
        Live::start_with(|_| {})
    }

    /// `start`, with more set up offline before the server starts.
    fn start_with(prepare: impl FnOnce(&Instance)) -> Live {
        let inst = Instance::initialised();
        inst.create(
            "bob",
            "--kind contractor --company Acme --sponsor alice --end +90d",
        );
        let bob = inst.keygen("bob", "ed25519", None);
        inst.ok_stdin(
            &["key", "add", "bob"],
            &std::fs::read_to_string(bob).unwrap(),
        );
        prepare(&inst);
        let server = inst.serve();
        Live { inst, server }
    }

    fn key(&self, name: &str) -> PathBuf {
        self.inst.path(name)
    }

    fn run(&self, user: &str, line: &str, stdin: Option<&str>) -> Run {
        self.server.exec(user, &self.key(user), line, stdin)
    }

    fn ok(&self, user: &str, line: &str, stdin: Option<&str>) -> String {
        let (code, out, err) = self.run(user, line, stdin);
        assert!(
            code == 0 && err.is_empty(),
            "{user}: `{line}` exited {code}\nstdout: {out}\nstderr: {err}"
        );
        out
    }

    /// A refusal: `code`, nothing on stdout, one `error: ` line; returns it.
    fn fails(&self, user: &str, line: &str, stdin: Option<&str>, code: i32) -> String {
        let run = self.run(user, line, stdin);
        check_error(&[line], &run, code).unwrap_or_else(|e| panic!("{e}"));
        run.2.trim_end().to_string()
    }

    fn json(&self, line: &str) -> Value {
        let out = self.ok("alice", line, None);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("`{line}`: {e}: {out}"))
    }

    /// The newest audit event whose action starts with `action`.
    fn last_event(&self, action: &str) -> Value {
        let events = self.json(&format!("audit tail -n 1 --action {action} --json"));
        events
            .as_array()
            .and_then(|a| a.first())
            .cloned()
            .unwrap_or_else(|| panic!("no {action} event"))
    }

    fn usernames(&self) -> Vec<String> {
        names(&self.json("user list --json"), "username")
    }
}

const PEOPLE: &str =
    "username,display_name,email,kind,company,sponsor,end_date,groups,field:cost_center\n\
sam,Sam Season,sam@farm.example,contractor,Farm Co,alice,+90d,contractors,AB-1234\n\
tia,Tia Season,tia@farm.example,contractor,Farm Co,sam,+90d,contractors,\n\
uma,Uma Season,uma@farm.example,intern,,alice,+60d,,\n";

#[test]
fn import_over_ssh_reads_the_csv_with_its_dry_run_and_row_errors() {
    let live = Live::start();
    let out = live.ok("alice", "import --dry-run", Some(PEOPLE));
    assert!(out.contains("3 row(s) valid"), "{out}");
    assert!(!live.usernames().contains(&"sam".to_string()));

    let bad = format!("{PEOPLE}vic,Vic,TIA@farm.example,contractor,,,+10d,,\n");
    let err = live.fails("alice", "import", Some(&bad), 5);
    assert!(err.contains("line 5 (vic): email"), "{err}");
    assert!(
        !live.usernames().contains(&"sam".to_string()),
        "a refused file writes no row"
    );

    let out = live.ok("alice", "import", Some(PEOPLE));
    assert!(out.contains("imported 3 account(s)"), "{out}");
    let tia = live.json("user show tia --json");
    assert_eq!(tia["sponsor"], "sam");
    let import = live.last_event("user.import");
    assert!(
        import["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3 account(s) created"),
        "{import}"
    );

    // The same file again: every name exists; --skip-existing finishes the job.
    let err = live.fails("alice", "import", Some(PEOPLE), 5);
    assert!(err.contains("line 2 (sam)"), "{err}");
    let more = format!("{PEOPLE}val,Val Season,val@farm.example,intern,,alice,+30d,,\n");
    let out = live.ok("alice", "import --skip-existing", Some(&more));
    assert!(
        out.contains("imported 1 account(s), 3 existing skipped"),
        "{out}"
    );
}

#[test]
fn a_refused_import_over_ssh_exits_4_and_is_audited_before_the_csv_is_read() {
    let live = Live::start();
    // Not even a valid header: the refusal must come first.
    let err = live.fails("bob", "import", Some("no,header,here\n1,2,3\n"), 4);
    assert!(err.contains("permission denied"), "{err}");
    let denied = live.last_event("auth.denied");
    assert_eq!(denied["actor"], "bob", "{denied}");

    // Refused at once: bob's stdin never ends, and he need not upload it.
    let mut cmd = live.server.ssh_key("bob", &live.key("bob"));
    cmd.args(["127.0.0.1", "import"]).stdin(Stdio::piped());
    let mut proc = Proc::spawn(&mut cmd);
    proc.send(b"username,email\n");
    let status = proc.wait_exit(STEP);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(4),
        "stderr: {}",
        proc.stderr.text()
    );
    proc.stderr
        .wait_for("the refusal", STEP, |t| t.contains("permission denied"));
}

#[test]
fn free_text_options_take_the_words_that_follow_them_over_ssh() {
    let live = Live::start();
    live.ok(
        "alice",
        "user create carl --email carl@acme.example --display-name Carl Acme Junior --kind contractor --company Acme Widgets Ltd --sponsor alice --end +30d --notes met at the fair",
        None,
    );
    let carl = live.json("user show carl --json");
    assert_eq!(carl["display_name"], "Carl Acme Junior");
    assert_eq!(carl["company"], "Acme Widgets Ltd");
    assert_eq!(carl["notes"], "met at the fair");

    live.ok("alice", "user disable bob --reason contract ended", None);
    let bob = live.json("user show bob --json");
    assert_eq!(bob["disable_note"], "contract ended", "{bob}");

    // Quoting keeps working, and a --reason=… form joins too.
    live.ok("alice", "user enable bob", None);
    live.ok("alice", "user disable bob --reason 'left early'", None);
    assert_eq!(
        live.json("user show bob --json")["disable_note"],
        "left early"
    );
    live.ok("alice", "user enable bob", None);
    live.ok("alice", "user disable bob --reason=budget cut", None);
    assert_eq!(
        live.json("user show bob --json")["disable_note"],
        "budget cut"
    );
    // Words after the text that are options still parse as options.
    let err = live.fails("alice", "user disable carl --reason gone --bogus", None, 2);
    assert!(err.contains("--bogus"), "{err}");
}

/// Every `ssh -p 2222 …` line of the README: the "Over SSH" block and the
/// inline examples in the prose.
fn readme_ssh_examples() -> Vec<String> {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let mut examples = Vec::new();
    // Inline code, which may wrap across lines in the prose.
    for (i, span) in readme.split('`').enumerate() {
        let span = span.split_whitespace().collect::<Vec<_>>().join(" ");
        if i % 2 == 1 && span.starts_with("ssh -p 2222 ") {
            examples.push(span);
        }
    }
    // Indented code blocks.
    for line in readme.lines() {
        let line = line.trim();
        if line.starts_with("ssh -p 2222 ") {
            examples.push(line.to_string());
        }
    }
    examples
}

#[test]
fn every_readme_ssh_example_runs_as_printed() {
    let live = Live::start_with(|inst| {
        inst.create(
            "carl",
            "--kind contractor --company Acme --sponsor alice --end +90d",
        );
    });
    // `key add bob < bob.pub` reads a new key of bob's from the working directory.
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bob@laptop", "-f"])
        .arg(dir.path().join("bob"))
        .status()
        .unwrap();
    assert!(status.success());
    // `import < people.csv` reads a file of two newcomers sponsored by alice.
    std::fs::write(
        dir.path().join("people.csv"),
        "username,display_name,email,kind,sponsor,end_date\n\
         dan,Dan Day,dan@acme.example,contractor,alice,+30d\n\
         eve,Eve Eve,eve@acme.example,intern,alice,+30d\n",
    )
    .unwrap();

    let client = format!(
        "ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes \
         -o IdentitiesOnly=yes -i {} -p {}",
        live.key("alice").display(),
        live.server.port
    );
    let examples = readme_ssh_examples();
    assert!(
        examples.len() >= 10,
        "found only {} examples: {examples:?}",
        examples.len()
    );
    let mut ran = 0;
    for example in &examples {
        // `ssh -p 2222 NAME@host` describes the console for anyone: no example.
        if example.contains("NAME@") {
            continue;
        }
        let line = example
            .replacen("ssh -p 2222", &client, 1)
            .replace("@localhost", "@127.0.0.1")
            .replace("@host", "@127.0.0.1");
        let console = example
            .split('#')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .count()
            == 4;
        if example.contains("user disable bob") {
            // Each example starts from an active bob.
            live.run("alice", "user enable bob", None);
        }
        let mut cmd = Command::new("bash");
        cmd.current_dir(dir.path());
        let stdin = if console {
            // The console example: a terminal is forced (there is none here)
            // and `q` quits it.
            cmd.arg("-c").arg(line.replacen("ssh ", "ssh -tt ", 1));
            Some("q")
        } else {
            cmd.arg("-c").arg(&line);
            None
        };
        let (code, out, err) = run_bounded(&mut cmd, stdin, Duration::from_secs(30));
        assert_eq!(
            code, 0,
            "README example `{example}` exited {code}\nstdout: {out}\nstderr: {err}"
        );
        if !console {
            assert!(err.is_empty(), "README example `{example}`: stderr {err}");
        }
        ran += 1;
    }
    assert!(ran >= 10, "{ran} examples ran");
    let bob = live.json("user show bob --json");
    assert_eq!(bob["disable_note"], "contract ended", "{bob}");
    assert_eq!(bob["keys"].as_array().map_or(0, Vec::len), 2, "{bob}");
}

#[test]
fn stdin_over_the_limit_is_refused_with_one_line_and_audited() {
    let live = Live::start();
    // A key line is at most 64 KiB: 100 KiB is refused, whatever follows dropped.
    let big = format!("ssh-ed25519 {}\n", "A".repeat(100 * 1024));
    let err = live.fails("alice", "key add bob", Some(&big), 2);
    assert!(err.contains("input too large"), "{err}");
    assert!(err.contains("64 KiB"), "{err}");
    let refused = live.last_event("limit.stdin");
    let detail = refused["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("key add"), "{detail}");
    assert!(detail.len() < 200, "the trail keeps no input: {detail}");
    assert_eq!(
        live.json("key list bob --json")
            .as_array()
            .map_or(0, Vec::len),
        1,
        "nothing added"
    );
    // The server carries on.
    assert!(live.ok("alice", "whoami", None).contains("alice"));
}

#[test]
fn a_command_line_over_the_limit_is_refused_and_audited_cut_to_256_bytes() {
    let live = Live::start();
    let line = format!("user show {}", "x".repeat(100 * 1024));
    let err = live.fails("alice", &line, None, 2);
    assert!(err.contains("at most 64 KiB"), "{err}");
    let refused = live.last_event("limit.exec_line");
    let detail = refused["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("102410 bytes refused") && detail.contains("…[cut 102154 bytes]"),
        "{detail}"
    );
    assert!(detail.len() < 512, "{} bytes recorded", detail.len());
}

#[test]
fn a_subsystem_request_is_refused_in_words_not_left_hanging() {
    let live = Live::start();
    let mut cmd = live.server.ssh_key("alice", &live.key("alice"));
    cmd.args(["-s", "127.0.0.1", "sftp"]);
    let (code, out, err) = run_bounded(&mut cmd, Some(""), Duration::from_secs(20));
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("tenure offers no subsystems"), "{err}");
    let mut sftp = Command::new("sftp");
    sftp.args(["-F", "/dev/null", "-b", "-"])
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "LogLevel=ERROR"])
        .args(["-o", "BatchMode=yes"])
        .args(["-o", "IdentitiesOnly=yes"])
        .arg("-i")
        .arg(live.key("alice"))
        .args(["-P", &live.server.port.to_string()])
        .arg("alice@127.0.0.1");
    let (code, _, err) = run_bounded(&mut sftp, Some("ls\n"), Duration::from_secs(20));
    assert_ne!(code, 0);
    assert!(err.contains("tenure offers no subsystems"), "{err}");
    let refused = live.last_event("limit.subsystem");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("subsystem 'sftp' refused"),
        "{refused}"
    );
}
