//! Crash tests (issue 10 §4): the server is killed with SIGKILL at random
//! moments during a burst of changes over SSH and during a lifecycle pass
//! with notices queued. After each kill: `check` is clean, `audit verify`
//! passes, every change whose command returned success is there, and none is
//! half-applied (no account without its audit event, no queued notice about
//! a change that did not commit).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// A small deterministic generator; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(7)
            });
        eprintln!("crash test seed: CRASH_SEED={seed}");
        Rng(seed | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn kill(mut server: Server) {
    server.proc.signal("KILL");
    assert!(
        server.proc.wait_exit(Duration::from_secs(10)).is_some(),
        "the server outlived SIGKILL"
    );
}

/// Everything that must hold after a crash, checked offline.
fn after_crash(inst: &Instance, acknowledged: &BTreeSet<String>, round: &str) {
    let (code, out, err) = inst.run(&["check"]);
    assert_eq!(code, 0, "{round}: check after a crash:\n{out}{err}");
    let (code, out, err) = inst.run(&["audit", "verify"]);
    assert_eq!(code, 0, "{round}: audit verify after a crash:\n{out}{err}");
    let accounts: BTreeSet<String> = inst
        .json(&["export", "--format", "json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<_> = acknowledged.difference(&accounts).collect();
    assert!(lost.is_empty(), "{round}: acknowledged but lost: {lost:?}");
    let events: Vec<Value> = inst
        .json(&["audit", "tail", "-n", "1000000", "--json"])
        .as_array()
        .unwrap()
        .clone();
    let created: BTreeSet<String> = events
        .iter()
        .filter(|e| e["action"] == "user.create" || e["action"] == "init")
        .filter_map(|e| e["target"].as_str().map(str::to_string))
        .collect();
    let unrecorded: Vec<_> = accounts
        .iter()
        .filter(|a| *a != "alice" && !created.contains(*a))
        .collect();
    assert!(
        unrecorded.is_empty(),
        "{round}: accounts without their creation event: {unrecorded:?}"
    );
    let disabled_events: BTreeSet<String> = events
        .iter()
        .filter(|e| e["action"] == "lifecycle.disable")
        .filter_map(|e| e["target"].as_str().map(str::to_string))
        .collect();
    for entry in inst
        .json(&["notify", "queue", "--json"])
        .as_array()
        .unwrap()
    {
        let who = entry["account"].as_str().unwrap();
        assert!(
            accounts.contains(who),
            "{round}: a notice about {who}, who does not exist: {entry}"
        );
        if entry["event"] == "disabled" {
            assert!(
                disabled_events.contains(who),
                "{round}: a 'disabled' notice without the disable event: {entry}"
            );
        }
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged_and_half_applies_nothing() {
    let mut rng = Rng::seeded();
    let inst = Instance::initialised();
    // Small audit segments: the sealer moves events out of sled while the kills land.
    inst.set_env("TENURE_AUDIT_SEGMENT_EVENTS", "40");
    // Notices go to a webhook that is never there: every one stays queued.
    std::fs::write(inst.path("hook_secret"), "s3cret\n").unwrap();
    let mut config = std::fs::read_to_string(&inst.config).unwrap();
    config = config.replace("retry_seconds = 30", "retry_seconds = 3600");
    config.push_str(
        "\n[[notify.webhooks]]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_file = \"hook_secret\"\n",
    );
    std::fs::write(&inst.config, config).unwrap();
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));

    // 1. Bursts of single changes over SSH from four clients at once.
    for round in 0..14 {
        let server = inst.serve();
        let port = server.port;
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..4)
            .map(|t| {
                let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
                let key = inst.path("alice");
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) && i < 200 {
                        let name = format!("r{round}t{t}n{i}");
                        let line = format!(
                            "user create {name} --email {name}@acme.example --display-name X \
                             --kind contractor --sponsor alice --end +30d"
                        );
                        let (code, _, _) = ssh_exec(port, "alice", &key, &line, None);
                        if code == 0 {
                            acknowledged.lock().unwrap().insert(name);
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150 + rng.below(900)));
        kill(server);
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        after_crash(
            &inst,
            &acknowledged.lock().unwrap(),
            &format!("burst {round}"),
        );
    }
    let made = acknowledged.lock().unwrap().len();
    assert!(made >= 14, "only {made} accounts were acknowledged in all");

    // 2. A bulk import over SSH, killed at random moments: after each restart
    // the file's rows are all there or none is; the import that returns
    // success has them all.
    let mut imports = 0;
    for round in 0..6 {
        let csv: String =
            std::iter::once("username,display_name,email,kind,sponsor,end_date\n".to_string())
                .chain((0..3000).map(|i| {
                    format!("i{round}n{i},I {i},i{round}n{i}@farm.example,contractor,alice,+30d\n")
                }))
                .collect();
        let server = inst.serve();
        let port = server.port;
        let key = inst.path("alice");
        let client =
            std::thread::spawn(move || ssh_exec(port, "alice", &key, "import", Some(&csv)));
        std::thread::sleep(Duration::from_millis(100 + rng.below(1500)));
        kill(server);
        let (code, _, _) = client.join().unwrap();
        // The first open after the crash finishes (or drops) the import and says so on stderr.
        let (opened, out, err) = inst.run(&["check"]);
        assert_eq!(
            opened, 0,
            "import {round}: check after a crash:\n{out}{err}"
        );
        let present = inst
            .json(&["user", "list", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| {
                a["username"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("i{round}n"))
            })
            .count();
        assert!(
            present == 0 || present == 3000,
            "import {round}: {present} of 3000 rows after a crash"
        );
        if code == 0 {
            assert_eq!(present, 3000, "import {round} said it succeeded");
            imports += 1;
        }
        if present == 3000 {
            let mut ack = acknowledged.lock().unwrap();
            for i in 0..3000 {
                ack.insert(format!("i{round}n{i}"));
            }
        }
        after_crash(
            &inst,
            &acknowledged.lock().unwrap(),
            &format!("import {round}"),
        );
    }
    eprintln!("crash test: {imports} of 6 imports over ssh finished before their kill");

    // 3. Forty days on, every one of them has expired: the lifecycle pass at
    // start disables them (queueing a notice each) and is killed as it goes.
    inst.set_faketime(Some("+40d"));
    let mut round = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let server = inst.serve();
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        kill(server);
        round += 1;
        after_crash(
            &inst,
            &acknowledged.lock().unwrap(),
            &format!("pass {round}"),
        );
        let active = inst
            .json(&[
                "user",
                "list",
                "--status",
                "active",
                "--kind",
                "contractor",
                "--json",
            ])
            .as_array()
            .unwrap()
            .len();
        if active == 0 && round >= 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{active} contractors still active after {round} passes"
        );
    }
    // The kills also landed while older events were being sealed out of sled.
    let sealed = std::fs::read_dir(inst.data_dir().join("audit_segments"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(sealed >= 2, "{sealed} sealed audit segments");
    eprintln!(
        "crash test: {} kills, {made} acknowledged creations kept",
        14 + 6 + round
    );
}
