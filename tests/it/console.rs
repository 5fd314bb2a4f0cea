//! The console as a person uses it: the real OpenSSH client in tmux against
//! the real server.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::Instance;

/// A tmux server of our own, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let socket = format!(
            "tenure-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
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

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "c"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status().unwrap().success());
    }

    fn text(&self, text: &str) {
        assert!(self
            .cmd(&["send-keys", "-t", "c", "-l", text])
            .status()
            .unwrap()
            .success());
    }

    fn screen(&self) -> String {
        let out = self
            .cmd(&["capture-pane", "-t", "c", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
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
        let _ = self.cmd(&["kill-server"]).status();
    }
}

#[test]
fn find_someone_by_email_open_them_and_disable_them_with_a_reason() {
    let inst = Instance::initialised();
    inst.create("bob", "--kind contractor --end +30d --company Acme");
    inst.sh("user update bob --email bob.builder@acme.example");
    inst.create("carla", "--kind contractor --end +30d --company Globex");
    let server = inst.serve();
    let ssh = format!(
        "ssh -F /dev/null -tt -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes -p {} alice@127.0.0.1",
        inst.path("alice").display(),
        server.port
    );
    let tmux = Tmux::start(&ssh);
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
    tmux.wait_for("the reason prompt", |s| s.contains("Reason:"));
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
    let sessions = || {
        let (_, out, _) = server.exec("alice", &inst.path("alice"), "session list --json", None);
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while sessions()
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["kind"] == "console")
    {
        assert!(
            Instant::now() < deadline,
            "the console session did not end on q"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
