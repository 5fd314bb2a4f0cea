//! The console as a person uses it: the real OpenSSH client in tmux against
//! the real server.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Instance, Server};

/// Tests run in parallel in one process: each tmux server needs its own socket.
static SOCKETS: AtomicUsize = AtomicUsize::new(0);

/// A tmux server of our own, killed when dropped.
pub(crate) struct Tmux {
    socket: String,
}

impl Tmux {
    pub(crate) fn start(command: &str) -> Tmux {
        let socket = format!(
            "tenure-{}-{}",
            std::process::id(),
            SOCKETS.fetch_add(1, Ordering::SeqCst)
        );
        let t = Tmux { socket };
        let ok = t
            .cmd(&[
                "new-session",
                "-d",
                "-s",
                "c",
                "-x",
                "120",
                "-y",
                "40",
                command,
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux new-session");
        t
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]).args(args);
        c
    }

    pub(crate) fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "c"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status().unwrap().success());
    }

    pub(crate) fn text(&self, text: &str) {
        assert!(self
            .cmd(&["send-keys", "-t", "c", "-l", text])
            .status()
            .unwrap()
            .success());
    }

    pub(crate) fn screen(&self) -> String {
        self.capture("c", false)
    }

    /// The text of a pane; with `escapes`, its colours and attributes too.
    fn capture(&self, target: &str, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-t", target, "-p"];
        if escapes {
            args.push("-e");
        }
        let out = self.cmd(&args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "never saw {what}:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // The server is gone already when the last pane exited: say nothing then.
        let _ = self
            .cmd(&["kill-server"])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// True if any SGR sequence on the screen sets a foreground or background colour.
fn coloured(pane: &str) -> bool {
    pane.split("\x1b[").skip(1).any(|seq| {
        let Some(end) = seq.find('m') else {
            return false;
        };
        seq[..end].split(';').any(|p| {
            matches!(
                p.parse::<u32>(),
                Ok(30..=38 | 40..=48 | 90..=97 | 100..=107)
            )
        })
    })
}

/// The OpenSSH client command line that opens alice's console.
fn console_command(inst: &Instance, server: &Server, extra: &str) -> String {
    format!(
        "ssh -F /dev/null -tt -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes {extra} -p {} alice@127.0.0.1",
        inst.path("alice").display(),
        server.port
    )
}

fn console_sessions(inst: &Instance, server: &Server) -> usize {
    let (_, out, _) = server.exec("alice", &inst.path("alice"), "session list --json", None);
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "console")
        .count()
}

#[test]
fn find_someone_by_email_open_them_and_disable_them_with_a_reason() {
    let inst = Instance::initialised();
    inst.create("bob", "--kind contractor --end +30d --company Acme");
    inst.sh("user update bob --email bob.builder@acme.example");
    inst.create("carla", "--kind contractor --end +30d --company Globex");
    let server = inst.serve();
    let tmux = Tmux::start(&console_command(&inst, &server, ""));
    tmux.wait_for("the accounts table", |s| {
        s.contains("Accounts") && s.contains("carla")
    });

    tmux.keys(&["/"]);
    tmux.text("builder@acme");
    tmux.wait_for("the search narrowing to bob", |s| {
        s.contains("bob") && !s.contains("carla")
    });
    tmux.keys(&["Enter"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("bob's detail", |s| {
        s.contains("bob.builder@acme.example") && s.contains("recent activity")
    });

    tmux.keys(&["d"]);
    tmux.wait_for("the reason prompt", |s| {
        s.contains("Disable bob") && s.contains("Reason")
    });
    tmux.text("contract ended");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the confirmation", |s| {
        s.contains("Disable bob (contract ended)?")
    });
    tmux.keys(&["y"]);
    tmux.wait_for("bob disabled", |s| {
        s.contains("disabled (manual)") && s.contains("contract ended")
    });
    assert_eq!(
        inst.show_over(&server, "bob")["disable_note"],
        "contract ended"
    );

    // A change made elsewhere shows up without a key press.
    server.exec("alice", &inst.path("alice"), "user enable bob", None);
    tmux.wait_for("bob enabled again", |s| {
        s.contains("active") && !s.contains("disabled (manual)")
    });

    // The window follows the client's size; below 80x24 it says so.
    assert!(tmux
        .cmd(&["resize-window", "-t", "c", "-x", "70", "-y", "20"])
        .status()
        .unwrap()
        .success());
    tmux.wait_for("the too-small notice", |s| s.contains("terminal too small"));
    assert!(tmux
        .cmd(&["resize-window", "-t", "c", "-x", "100", "-y", "30"])
        .status()
        .unwrap()
        .success());
    tmux.wait_for("the detail again", |s| {
        s.contains("bob.builder@acme.example")
    });

    tmux.keys(&["Escape"]);
    // Esc then q at once would read as Alt-q: wait for the table first.
    tmux.wait_for("the accounts table again", |s| s.contains("USERNAME"));
    tmux.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while console_sessions(&inst, &server) > 0 {
        assert!(
            Instant::now() < deadline,
            "the console session did not end on q"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn create_through_the_form_clone_it_and_kill_a_session_from_the_sessions_screen() {
    let inst = Instance::initialised();
    let server = inst.serve();
    let tmux = Tmux::start(&console_command(&inst, &server, ""));
    tmux.wait_for("the accounts table", |s| s.contains("USERNAME"));

    // Create: form, inline check, review, done.
    tmux.keys(&["n"]);
    tmux.wait_for("the form", |s| s.contains("New account"));
    tmux.text("erin");
    tmux.keys(&["Tab"]);
    tmux.text("Erin Example");
    tmux.keys(&["Tab"]);
    tmux.text("erin@");
    tmux.wait_for("the email refused as typed", |s| {
        s.contains("invalid email")
    });
    tmux.text("initech.example");
    tmux.wait_for("the email accepted", |s| !s.contains("invalid email"));
    tmux.keys(&["Enter"]);
    tmux.wait_for("the end date asked for", |s| {
        s.contains("a contractor account needs an end date")
    });
    tmux.text("+30d");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the review", |s| {
        s.contains("Review: New account") && s.contains("erin@initech.example")
    });
    tmux.keys(&["Enter"]);
    tmux.wait_for("the done screen", |s| s.contains("Created erin."));
    assert_eq!(
        inst.show_over(&server, "erin")["email"],
        "erin@initech.example"
    );
    tmux.keys(&["Enter"]);
    tmux.wait_for("erin's page", |s| {
        s.contains("recent activity") || s.contains("keys (0)")
    });

    // Clone: the same kind and dates span, a new identity.
    tmux.keys(&["c"]);
    tmux.wait_for("the clone form", |s| {
        s.contains("Clone erin into a new account")
    });
    tmux.text("fred");
    tmux.keys(&["Tab"]);
    tmux.text("Fred Example");
    tmux.keys(&["Tab"]);
    tmux.text("fred@initech.example");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the clone's review", |s| s.contains("Review: Clone erin"));
    tmux.keys(&["Enter"]);
    tmux.wait_for("the clone done", |s| s.contains("Created fred."));
    let fred = inst.show_over(&server, "fred");
    assert_eq!(fred["kind"], "contractor");
    tmux.keys(&["Escape"]);

    // A second console in another window shows up in Sessions and is killed from there.
    let other = tmux
        .cmd(&[
            "new-window",
            "-d",
            "-t",
            "c",
            &console_command(&inst, &server, "-o SetEnv=NO_COLOR=1"),
        ])
        .status()
        .unwrap();
    assert!(other.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while console_sessions(&inst, &server) < 2 {
        assert!(
            Instant::now() < deadline,
            "the second console never logged in"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // NO_COLOR from the client's environment: the second console has no colour at all.
    let deadline = Instant::now() + Duration::from_secs(15);
    let plain = loop {
        let pane = tmux.capture("c:1", true);
        if pane.contains("USERNAME") {
            break pane;
        }
        assert!(Instant::now() < deadline, "second console:\n{pane}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !coloured(&plain),
        "NO_COLOR console is coloured:\n{plain:?}"
    );
    assert!(
        coloured(&tmux.capture("c:0", true)),
        "the first console has colour"
    );

    tmux.keys(&["S"]);
    let listed = tmux.wait_for("two console sessions", |s| s.contains("Live sessions: 2"));
    // The other console is the newer one: the last row.
    assert!(listed.matches("console").count() >= 2, "{listed}");
    tmux.keys(&["G", "K"]);
    tmux.wait_for("the kill confirmation", |s| s.contains("Kill session"));
    tmux.keys(&["y"]);
    tmux.wait_for("the session killed", |s| {
        s.contains("killed session") && s.contains("Live sessions: 1")
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while console_sessions(&inst, &server) != 1 {
        assert!(
            Instant::now() < deadline,
            "the killed console is still listed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The command line runs the exec grammar.
    tmux.keys(&[":"]);
    tmux.text("user disable fred --reason \"clone test\"");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the command output", |s| s.contains(":user disable fred"));
    assert_eq!(
        inst.show_over(&server, "fred")["disable_note"],
        "clone test"
    );
    tmux.keys(&["Escape"]);
    tmux.wait_for("the sessions screen again", |s| {
        !s.contains(":user disable fred")
    });
    tmux.keys(&["q"]);
}

/// The counts on the connectors screen's row for `name`: in sync, pending,
/// failed, disputed, jobs.
fn connector_counts(screen: &str, name: &str) -> Option<Vec<u64>> {
    let words = |l: &str| -> Vec<String> {
        l.split_whitespace()
            .map(|w| w.trim_matches('│').to_string())
            .filter(|w| !w.is_empty())
            .collect()
    };
    let line = screen.lines().map(words).find(|w| {
        w.first().map(String::as_str) == Some(name)
            && w.get(1).map(String::as_str) == Some("command")
    })?;
    let counts: Vec<u64> = line
        .iter()
        .skip(2)
        .take(5)
        .map(|w| w.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    (counts.len() == 5).then_some(counts)
}

#[test]
fn the_connectors_screen_shows_counts_lists_the_failed_and_retries_them() {
    use std::os::unix::fs::PermissionsExt;
    let inst = Instance::initialised();
    let script = inst.path("push.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncat >/dev/null\nif [ -e \"$(dirname \"$0\")/DOWN\" ]; then echo 'target is down' >&2; exit 1; fi\necho ok\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = std::fs::read_to_string(&inst.config).unwrap();
    config.push_str(&format!(
        "\n[[connectors]]\nname = \"hr\"\ntype = \"command\"\ncommand = [\"{}\"]\ntimeout_seconds = 10\n",
        script.display()
    ));
    std::fs::write(&inst.config, config).unwrap();
    std::fs::write(inst.path("DOWN"), "").unwrap();
    inst.create("bob", "--kind contractor --end +30d");
    inst.create("carla", "--kind contractor --end +30d");
    let server = inst.serve();
    let tmux = Tmux::start(&console_command(&inst, &server, ""));
    tmux.wait_for("the accounts table", |s| s.contains("USERNAME"));

    // C: the target with its counts: both accounts failed, two jobs waiting.
    let deadline = Instant::now() + Duration::from_secs(15);
    let screen = loop {
        tmux.keys(&["C"]);
        std::thread::sleep(Duration::from_millis(300));
        let screen = tmux.screen();
        if connector_counts(&screen, "hr") == Some(vec![0, 0, 2, 0, 2]) {
            break screen;
        }
        assert!(Instant::now() < deadline, "never saw 2 failed:\n{screen}");
    };
    assert!(
        screen.contains("Connectors: 1") && screen.contains("target is down"),
        "{screen}"
    );

    // Enter: the failed accounts, with the error.
    tmux.keys(&["Enter"]);
    let list = tmux.wait_for("the failed accounts", |s| {
        s.contains("hr: 2 to look at") && s.contains("bob") && s.contains("carla")
    });
    assert!(
        list.contains("failed ×1") && list.contains("target is down"),
        "{list}"
    );

    // The target is back; r retries at once (the backoff is not waited out).
    std::fs::remove_file(inst.path("DOWN")).unwrap();
    tmux.keys(&["r"]);
    tmux.wait_for("the retry said", |s| s.contains("hr: 2 jobs due now"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        tmux.keys(&["C"]);
        std::thread::sleep(Duration::from_millis(300));
        let screen = tmux.screen();
        if connector_counts(&screen, "hr") == Some(vec![2, 0, 0, 0, 0]) {
            break;
        }
        assert!(Instant::now() < deadline, "never saw 2 in sync:\n{screen}");
    }
    tmux.keys(&["Enter"]);
    tmux.wait_for("nothing left to look at", |s| {
        s.contains("hr: nothing failed or drifted")
    });
}
