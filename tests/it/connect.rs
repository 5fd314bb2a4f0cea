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
        let inst = Instance::initialised();
        let script = inst.path("push.sh");
        std::fs::write(&script, SCRIPT).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut config = std::fs::read_to_string(&inst.config).unwrap();
        config.push_str(&format!(
            "\n[[connectors]]\nname = \"hr\"\ntype = \"command\"\ncommand = [\"{}\"]\ntimeout_seconds = 10\n",
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
