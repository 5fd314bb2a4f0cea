//! Provisioning out, first slice: a real `command` connector (a shell script
//! written here) driven by the real server over ssh. The script appends each
//! job document to `applied.jsonl` and prints `t-<username>`; it fails while
//! a file `DOWN` exists, and takes its time while `SLOW` exists.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

const SCRIPT: &str = r#"#!/bin/sh
dir="$(dirname "$0")"
line="$(cat)"
if [ -e "$dir/DOWN" ]; then
  echo "target is down (DOWN exists)" >&2
  exit 1
fi
if [ -e "$dir/SLOW" ]; then sleep 0.3; fi
printf '%s\n' "$line" >> "$dir/applied.jsonl"
user="$(printf '%s' "$line" | sed -n 's/.*"username":"\([^"]*\)".*/\1/p')"
echo "t-$user"
"#;

struct Target {
    inst: Instance,
    server: Option<Server>,
    key: PathBuf,
}

impl Target {
    fn start() -> Target {
        Target::start_with("")
    }

    /// With `extra` lines in the connector's block.
    fn start_with(extra: &str) -> Target {
        let inst = Instance::initialised();
        let script = inst.path("push.sh");
        std::fs::write(&script, SCRIPT).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut config = std::fs::read_to_string(&inst.config).unwrap();
        config.push_str(&format!(
            "\n[[connectors]]\nname = \"hr\"\ntype = \"command\"\ncommand = [\"{}\"]\ntimeout_seconds = 10\n{extra}",
            script.display()
        ));
        std::fs::write(&inst.config, config).unwrap();
        let server = Some(inst.serve());
        let key = inst.path("alice");
        Target { inst, server, key }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    fn ok(&self, line: &str) -> String {
        let (code, out, err) = self.server().exec("alice", &self.key, line, None);
        assert!(
            code == 0 && err.is_empty(),
            "`{line}` exited {code}\n{out}\n{err}"
        );
        out
    }

    fn ok_in(&self, line: &str, stdin: &str) -> String {
        let (code, out, err) = self.server().exec("alice", &self.key, line, Some(stdin));
        assert!(code == 0, "`{line}` exited {code}\n{out}\n{err}");
        out
    }

    fn json(&self, line: &str) -> Value {
        let out = self.ok(line);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("`{line}`: {e}: {out}"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.inst.path(name)
    }

    /// The job documents the target received, in order.
    fn applied(&self) -> Vec<Value> {
        match std::fs::read_to_string(self.path("applied.jsonl")) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect(),
            Err(_) => vec![],
        }
    }

    fn applied_for(&self, user: &str) -> Vec<Value> {
        self.applied()
            .into_iter()
            .filter(|d| d["account"]["username"] == user || d["previous"]["username"] == user)
            .collect()
    }

    fn link(&self, user: &str) -> Option<Value> {
        let status = self.json("connector status hr --json");
        status["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["account"] == user)
            .cloned()
    }

    fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.proc.signal("KILL");
            drop(server);
        }
        self.server = Some(self.inst.serve());
    }
}

/// Polls `check` until it holds, for at most 30 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn touch(path: &Path) {
    std::fs::write(path, "").unwrap();
}

#[test]
fn a_command_connector_gets_every_change_in_order_and_survives_a_down_target_and_a_restart() {
    let mut t = Target::start();
    t.ok("user create carl --email carl@x.io --display-name Carl --kind contractor --end +90d --sponsor alice");
    t.ok("user create erin --email erin@x.io --display-name Erin --kind employee");

    // The contractor is created on the target and linked to its id.
    eventually("carl in sync", || {
        t.link("carl")
            .is_some_and(|l| l["status"] == "in_sync" && l["target_id"] == "t-carl")
    });
    let carl = t.applied_for("carl");
    assert_eq!(carl.len(), 1, "{carl:?}");
    assert_eq!(carl[0]["action"], "create");
    assert_eq!(carl[0]["connector"], "hr");
    assert_eq!(carl[0]["account"]["kind"], "contractor");
    assert_eq!(carl[0]["account"]["email"], "carl@x.io");
    assert!(carl[0]["previous"].is_null() && carl[0]["link_id"].is_null());
    let shown = t.json("user show carl --json");
    assert_eq!(shown["links"][0]["connector"], "hr");
    assert_eq!(shown["links"][0]["target_id"], "t-carl");
    assert!(t
        .ok("user show carl")
        .contains("links         hr in_sync id t-carl"));

    // The employee is out of the default scope: nothing queued, nothing sent.
    assert!(t.applied_for("erin").is_empty());
    assert!(t.link("erin").is_none());
    assert!(t.json("user show erin --json")["links"]
        .as_array()
        .unwrap()
        .is_empty());

    // Disabling sends a disable job with the link id and the state before.
    t.ok("user disable carl --reason 'contract ended'");
    eventually("carl's disable applied", || {
        t.applied_for("carl").len() == 2
    });
    let disable = &t.applied_for("carl")[1];
    assert_eq!(disable["action"], "disable");
    assert_eq!(disable["link_id"], "t-carl");
    assert_eq!(disable["account"]["status"], "disabled");
    assert_eq!(disable["previous"]["status"], "active");

    // The target goes down: 20 changes wait, the link says why.
    t.ok("user create dora --email dora@x.io --display-name Dora --kind vendor --end +90d --sponsor alice");
    eventually("dora in sync", || {
        t.link("dora").is_some_and(|l| l["status"] == "in_sync")
    });
    touch(&t.path("DOWN"));
    for i in 1..=20 {
        t.ok(&format!("user update dora --project p{i:02}"));
    }
    eventually("dora failed", || {
        t.link("dora").is_some_and(|l| {
            l["status"] == "failed"
                && l["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("target is down"))
        })
    });
    let status = t.json("connector status hr --json");
    let queued: Vec<&Value> = status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["account"] == "dora")
        .collect();
    assert_eq!(queued.len(), 20, "nothing lost: {status}");
    assert!(queued.iter().all(|j| j["action"] == "update"));
    let list = t.json("connector list --json");
    assert_eq!(list[0]["name"], "hr");
    assert_eq!(list[0]["failed"], 1);
    assert_eq!(list[0]["jobs_queued"], 20);
    assert!(list[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("target is down"));
    assert_eq!(
        t.applied_for("dora").len(),
        1,
        "only the create went through"
    );
    let text = t.ok("connector status hr");
    assert!(
        text.contains("failed") && text.contains("20 jobs queued"),
        "{text}"
    );

    // Back up (slowly), retried now; the server is killed midway through
    // the queue and resumes from the stored jobs after the restart.
    touch(&t.path("SLOW"));
    std::fs::remove_file(t.path("DOWN")).unwrap();
    let out = t.ok("connector retry hr --user dora");
    assert_eq!(out.trim(), "hr: 20 jobs due now");
    eventually("a few of dora's updates applied", || {
        t.applied_for("dora").len() >= 4
    });
    t.restart();
    let before_end = t.applied_for("dora").len();
    assert!(before_end < 21, "the restart came midway: {before_end}");
    std::fs::remove_file(t.path("SLOW")).unwrap();
    eventually("dora in sync again", || {
        t.link("dora")
            .is_some_and(|l| l["status"] == "in_sync" && l["last_error"].is_null())
            && t.json("connector status hr --json")["jobs"]
                .as_array()
                .unwrap()
                .is_empty()
    });
    // Every change applied, in order. The job in flight at the kill is
    // applied again by the new server (at least once), and its orphaned
    // script may still append its copy late: at most that one job twice.
    let projects: Vec<String> = t
        .applied_for("dora")
        .iter()
        .skip(1)
        .map(|d| d["account"]["project"].as_str().unwrap().to_string())
        .collect();
    let mut first = Vec::new();
    let mut repeated = std::collections::BTreeSet::new();
    for p in &projects {
        if first.contains(p) {
            repeated.insert(p.clone());
        } else {
            first.push(p.clone());
        }
    }
    let want: Vec<String> = (1..=20).map(|i| format!("p{i:02}")).collect();
    assert_eq!(first, want, "{projects:?}");
    assert!(repeated.len() <= 1, "{projects:?}");
    assert!(projects.len() <= 22, "{projects:?}");

    // The trail has the outcomes, by the connector.
    let trail = t.ok("audit tail -n 500 --action connector. --json");
    assert!(trail.contains("connector.apply") && trail.contains("connector.fail"));
    assert!(trail.contains("system:connector"));
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_containing(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn a_password_reaches_a_command_target_once_from_memory_and_a_restart_says_set_it_again() {
    let mut t = Target::start_with("passwords = true\n");
    t.ok("user create vic --email vic@x.io --display-name Vic --kind contractor --end +30d --sponsor alice");
    eventually("vic created", || !t.applied_for("vic").is_empty());
    assert!(t.applied_for("vic")[0].get("password").is_none());

    // Set: the program gets it in the JSON on stdin, for that job only.
    let first = "Lantern-Quartz-Meadow-41";
    t.ok_in("password set vic", &format!("{first}\n"));
    eventually("the password job applied", || {
        t.applied_for("vic").len() == 2
    });
    let docs = t.applied_for("vic");
    assert_eq!(docs[1]["password"], first, "{}", docs[1]);
    assert_eq!(docs[1]["action"], "update");
    t.ok("user extend vic --end +60d");
    eventually("the next change applied", || {
        t.applied_for("vic").len() == 3
    });
    assert!(t.applied_for("vic")[2].get("password").is_none());
    let link = t.link("vic").unwrap();
    assert_eq!(link["status"], "in_sync");
    assert!(link.get("notice").is_none(), "{link}");
    let trail = t.ok("audit tail -n 50 --action connector.apply");
    assert!(trail.contains("(with the password)"), "{trail}");

    // The plaintext is nowhere but in the target's own file: not in the
    // database, the audit, a status or the server's output.
    let found: Vec<PathBuf> = files_containing(t.inst.dir.path(), first.as_bytes())
        .into_iter()
        .filter(|p| !p.ends_with("applied.jsonl"))
        .collect();
    assert!(found.is_empty(), "the password is in {found:?}");
    let server = t.server();
    assert!(!server.proc.stdout.text().contains(first));
    assert!(!server.proc.stderr.text().contains(first));
    assert!(!t.ok("connector status hr --json").contains(first));

    // The target is down when the password is set, and tenure restarts
    // before it returns: the change applies without it, and says so.
    touch(&t.path("DOWN"));
    let second = "Harbor-Violet-Compass-77";
    t.ok_in("password set vic", &format!("{second}\n"));
    eventually("the password job failed", || {
        t.link("vic").is_some_and(|l| l["status"] == "failed")
    });
    assert!(files_containing(t.inst.dir.path(), second.as_bytes()).is_empty());
    t.restart();
    std::fs::remove_file(t.path("DOWN")).unwrap();
    t.ok("connector retry hr");
    eventually("applied without the password", || {
        t.applied_for("vic").len() == 4 && t.link("vic").is_some_and(|l| l["status"] == "in_sync")
    });
    assert!(t.applied_for("vic")[3].get("password").is_none());
    let link = t.link("vic").unwrap();
    assert!(
        link["notice"]
            .as_str()
            .is_some_and(|n| n.contains("password not delivered") && n.contains("set it again")),
        "{link}"
    );
    let text = t.ok("connector status hr");
    assert!(text.contains("password not delivered"), "{text}");
    assert!(t.ok("user show vic").contains("password not delivered"));
    assert!(t
        .ok("audit tail -n 50 --action connector.apply")
        .contains("(password not delivered)"));

    // Set again: delivered, and the notice goes.
    let third = "Pebble-Saffron-Orbit-53";
    t.ok_in("password set vic", &format!("{third}\n"));
    eventually("delivered this time", || t.applied_for("vic").len() == 5);
    assert_eq!(t.applied_for("vic")[4]["password"], third);
    eventually("the notice cleared", || {
        t.link("vic")
            .is_some_and(|l| l["status"] == "in_sync" && l.get("notice").is_none())
    });
}
