//! Lifecycle through the real binary, travelling in time with faketime.

use serde_json::Value;

use crate::common::{names, Instance};

fn actions_for<'a>(plan: &'a Value, user: &str) -> Vec<&'a str> {
    plan.as_array()
        .unwrap()
        .iter()
        .filter(|i| i["username"] == user)
        .map(|i| i["action"].as_str().unwrap())
        .collect()
}

#[test]
fn preview_then_a_pass_forty_days_later_does_what_it_said() {
    let inst = Instance::initialised();
    inst.create("sara", "--kind employee --role sponsor");
    // carl is exempt from the inactivity rules, so only his end date acts.
    inst.create(
        "carl",
        "--kind contractor --sponsor sara --end +30d --inactivity-exempt true",
    );
    inst.create(
        "nora",
        "--kind contractor --sponsor sara --end +200d --start +5d",
    );

    let plan = inst.json(&["lifecycle", "preview", "--until", "+45d", "--json"]);
    assert_eq!(
        actions_for(&plan, "carl"),
        [
            "warn sponsor (14 days left)",
            "warn sponsor (7 days left)",
            "warn sponsor (1 days left)",
            "disable (expired)"
        ],
        "{plan:#}"
    );
    assert_eq!(
        actions_for(&plan, "nora"),
        ["activate", "disable (never_logged_in)"],
        "{plan:#}"
    );
    let before = inst.snapshot();
    assert!(inst
        .ok(&["lifecycle", "run", "--dry-run"])
        .contains("nothing is due"));
    assert_eq!(inst.snapshot(), before, "a dry run writes nothing");

    inst.set_faketime(Some("+40d"));
    let done = inst.json(&["lifecycle", "run", "--json"]);
    assert!(
        actions_for(&done, "carl").contains(&"disable (expired)"),
        "{done:#}"
    );
    let carl = inst.show("carl");
    assert_eq!(
        (carl["status"].as_str(), carl["disable_reason"].as_str()),
        (Some("disabled"), Some("expired"))
    );
    let events = inst.json(&["audit", "tail", "-n", "50", "--target", "carl", "--json"]);
    let disable = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "lifecycle.disable")
        .expect("audited");
    assert_eq!(
        disable["actor"], "local:tester",
        "offline, the operator runs the pass"
    );
    assert!(
        inst.json(&["lifecycle", "run", "--json"])
            .as_array()
            .unwrap()
            .is_empty(),
        "a second pass finds nothing"
    );
    assert!(inst.ok(&["check"]).starts_with("ok:"));
}

#[test]
fn orphans_are_reported_and_an_extension_request_is_approved() {
    let inst = Instance::initialised();
    inst.create("sara", "--kind employee --role sponsor");
    inst.create("carl", "--kind contractor --sponsor sara --end +30d");
    inst.create("vera", "--kind vendor --end +30d");
    inst.sh("user disable sara --reason 'moved on'");

    let orphans = inst.json(&["report", "orphans", "--json"]);
    let problems = |user: &str| -> Vec<String> {
        orphans
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["username"] == user)
            .map(|o| o["problem"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        problems("carl").contains(&"sponsor_inactive".to_string()),
        "{orphans:#}"
    );
    assert!(
        problems("vera").contains(&"no_sponsor".to_string()),
        "{orphans:#}"
    );
    assert!(problems("carl").contains(&"never_logged_in".to_string()));

    let out = inst.sh("request extend carl --end +90d --reason 'project extended'");
    assert!(out.contains("request #1"), "{out}");
    let list = inst.json(&["request", "list", "--json"]);
    assert_eq!(names(&list, "account"), ["carl"]);
    inst.sh("request approve 1");
    assert_eq!(inst.show("carl")["days_left"], 90);
    let (code, _, err) = inst.run(&["request", "approve", "1"]);
    assert_eq!(code, 5, "{err}");
    let (code, _, err) = inst.run(&["request", "deny", "7", "--reason", "x"]);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn a_live_session_ends_when_its_account_expires_at_midnight() {
    let inst = Instance::initialised();
    inst.edit_config("interval_seconds = 60", "interval_seconds = 1");
    // Everything happens on 2030-06-30, a few seconds before midnight (UTC).
    inst.set_faketime(Some("@2030-06-30 23:59:56"));
    inst.create(
        "carl",
        "--kind contractor --end 2030-06-30 --inactivity-exempt true",
    );
    inst.keygen("carl", "ed25519", None);
    inst.ok_stdin(&["key", "add", "carl"], &inst.pubkey("carl"));
    // The server's clock starts at 23:59:56 and runs.
    let server = inst.serve();
    let mut cmd = server.ssh_key("carl", &inst.path("carl"));
    cmd.arg("-tt")
        .arg("127.0.0.1")
        .stdin(std::process::Stdio::piped());
    let mut console = crate::common::Proc::spawn(&mut cmd);
    console
        .stdout
        .wait_for("carl's console", std::time::Duration::from_secs(10), |t| {
            t.contains("tenure —")
        });
    let status = console.wait_exit(std::time::Duration::from_secs(15));
    assert!(status.is_some(), "carl is still connected after midnight");
    // The scheduler's pass disabled the account too.
    let (code, out, err) = server.exec("alice", &inst.path("alice"), "user show carl --json", None);
    assert_eq!(code, 0, "{err}");
    let carl: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(carl["disable_reason"], "expired", "{carl:#}");
}
