//! The offline command line, end to end: the real binary, a real sled
//! database in a temp dir, keys from ssh-keygen.

use serde_json::{json, Value};

use crate::common::*;

#[test]
fn an_account_goes_from_init_through_clone_disable_delete_and_purge() {
    let inst = Instance::new();
    let key = inst.keygen("alice", "ed25519", None);
    let init = ["init", "--admin", "alice", "--key", key.to_str().unwrap()];
    let out = inst.ok(&init);
    assert!(
        out.contains("initialised") && out.contains("host key"),
        "{out}"
    );
    let again = inst.fails(&init, 5);
    assert!(again.contains("already initialised"), "{again}");

    let who = inst.sh("whoami");
    assert!(
        who.starts_with(ACTOR) && who.contains("offline operator"),
        "{who}"
    );
    let who = inst.json(&["whoami", "--json"]);
    assert_eq!(
        (&who["name"], &who["source"]),
        (&json!(ACTOR), &json!("cli"))
    );
    let alice = inst.show("alice");
    assert_eq!(alice["roles"], json!(["admin"]));
    assert_eq!(alice["keys"].as_array().unwrap().len(), 1);

    let out = inst.sh(
        "user create bob --email bob@example.com --display-name 'Bob Builder' --kind contractor \
         --end +90d --company Acme --sponsor alice --group contractors --field cost_center=AB-1234",
    );
    assert!(
        out.starts_with("created bob (contractor, active, ends "),
        "{out}"
    );
    let bob = inst.show("bob");
    assert_eq!(bob["kind"], "contractor");
    assert_eq!(bob["company"], "Acme");
    assert_eq!(bob["sponsor"], "alice");
    assert_eq!(bob["days_left"], 90);
    assert_eq!(bob["effective_status"], "active");
    assert_eq!(bob["fields"]["cost_center"], "AB-1234");
    assert_eq!(bob["groups"], json!(["contractors"]));
    inst.keygen("bob", "ed25519", None);
    inst.ok_stdin(&["key", "add", "bob"], &inst.pubkey("bob"));
    inst.sh("allow add bob 198.51.100.0/24");
    let bob = inst.show("bob");

    // A template sets the kind, the groups and the end date from the start date.
    inst.create("ivy", "--template summer-intern");
    let ivy = inst.show("ivy");
    assert_eq!(ivy["kind"], "intern");
    assert_eq!(ivy["days_left"], 90);
    assert_eq!(ivy["groups"], json!(["interns"]));

    // A clone copies what the account is, never who it is or its credentials.
    let out =
        inst.sh("user clone bob frank --email frank@example.com --display-name 'Frank Furter'");
    assert!(
        out.starts_with("cloned from bob: frank (contractor"),
        "{out}"
    );
    let frank = inst.show("frank");
    for field in [
        "kind",
        "company",
        "sponsor",
        "groups",
        "fields",
        "roles",
        "days_left",
        "allowlist",
    ] {
        assert_eq!(frank[field], bob[field], "clone copies {field}");
    }
    assert_eq!(frank["email"], "frank@example.com");
    assert_eq!(frank["display_name"], "Frank Furter");
    assert_eq!(frank["keys"], json!([]));
    assert_eq!(frank["password_set"], false);

    let out = inst.sh("user update frank --project apollo");
    assert!(out.starts_with("updated frank"), "{out}");
    assert_eq!(inst.show("frank")["project"], "apollo");

    let out = inst.sh("user disable bob --reason 'contract ended'");
    assert_eq!(out, "disabled bob\n");
    let bob = inst.show("bob");
    assert_eq!(bob["effective_status"], "disabled");
    assert_eq!(bob["disable_note"], "contract ended");
    assert!(inst
        .sh("user show bob")
        .contains("disabled (manual): contract ended"));

    assert_eq!(inst.sh("user enable bob"), "enabled bob (active)\n");
    let bob = inst.show("bob");
    assert_eq!(bob["effective_status"], "active");
    assert_eq!(bob["disable_note"], Value::Null);

    let out = inst.sh("user extend bob --end +120d");
    assert!(
        out.starts_with("extended bob to ") && out.ends_with("(active)\n"),
        "{out}"
    );
    assert_eq!(inst.show("bob")["days_left"], 120);

    assert!(inst.sh("user delete bob").starts_with("deleted bob"));
    assert_eq!(inst.show("bob")["effective_status"], "deleted");
    assert!(inst.sh("user restore bob").starts_with("restored bob"));
    assert_eq!(inst.show("bob")["effective_status"], "disabled");
    // Purge: only a deleted account, and only with --yes.
    inst.fails(&sh("user purge bob --yes"), 5);
    inst.sh("user delete bob");
    let line = inst.fails(&sh("user purge bob"), 2);
    assert!(line.contains("--yes"), "{line}");
    assert_eq!(inst.show("bob")["effective_status"], "deleted");
    assert_eq!(inst.sh("user purge bob --yes"), "purged bob\n");
    inst.fails(&sh("user show bob"), 3);

    let csv = inst.sh("export --format csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("username,display_name,email,kind,"),
        "{csv}"
    );
    assert!(lines[0].ends_with(",field:cost_center,field:nda_signed,field:manager_email"));
    assert_eq!(lines.len(), 4, "header + alice, frank, ivy: {csv}");
    let frank_row = "frank,Frank Furter,frank@example.com,contractor,Acme,alice,apollo,";
    assert!(lines[2].starts_with(frank_row), "{}", lines[2]);
    assert!(lines[2].ends_with(",AB-1234,,"), "{}", lines[2]);
    let all = inst.json(&sh("export --format json"));
    assert_eq!(names(&all, "username"), ["alice", "frank", "ivy"]);

    let out = inst.sh("check");
    assert!(out.starts_with("ok: 3 accounts"), "{out}");
    let out = inst.sh("audit verify");
    assert!(out.starts_with("audit chain intact: "), "{out}");
}

#[test]
fn every_refusal_has_its_exit_code_one_error_line_and_changes_nothing() {
    let inst = Instance::initialised();
    inst.create("bob", "--kind employee");
    inst.create("carol", "--kind employee");
    inst.create("maximilianus", "--kind employee");
    inst.sh("user disable carol --reason left");
    // An end date in the past is refused at creation: olga ends tomorrow,
    // and the case that needs her end date passed runs 40 days later.
    inst.create("olga", "--kind contractor --end +1d");
    inst.sh("user disable olga --reason left");
    inst.create("dora", "--kind employee");
    inst.sh("user delete dora");
    inst.keygen("bob", "ed25519", None);
    inst.ok_stdin(&["key", "add", "bob"], &inst.pubkey("bob"));
    inst.sh("allow add bob 10.0.0.0/8");
    inst.keygen("spare", "ed25519", None);
    let (bob_key, spare) = (inst.pubkey("bob"), inst.pubkey("spare"));
    let private = std::fs::read_to_string(inst.path("spare")).unwrap();
    let two_keys = format!("{spare}{bob_key}");
    let dan =
        |flags: &str| format!("user create dan --email dan@example.com --display-name Dan {flags}");
    let none = None;

    // (exit code, what, command line, stdin)
    #[rustfmt::skip]
    let cases: Vec<(i32, &str, String, Option<&str>)> = vec![
        (2, "bad username", "user create Bob --email b@example.com --display-name B --kind employee".into(), none),
        (2, "bad email", "user create dan --email dan-at-example --display-name Dan --kind employee".into(), none),
        (2, "missing email", "user create dan --display-name Dan --kind employee".into(), none),
        (5, "duplicate username", "user create bob --email b2@example.com --display-name B --kind employee".into(), none),
        (5, "duplicate email, other case", "user create dan --email BOB@Example.COM --display-name Dan --kind employee".into(), none),
        (2, "contractor without --end", dan("--kind contractor"), none),
        (2, "end before start", dan("--kind contractor --start +10d --end +5d"), none),
        (2, "end beyond the kind's maximum", dan("--kind contractor --end +400d"), none),
        (3, "unknown sponsor", dan("--kind employee --sponsor nobody"), none),
        (5, "disabled sponsor", dan("--kind employee --sponsor carol"), none),
        (2, "unknown kind", dan("--kind wizard"), none),
        (3, "unknown group", dan("--kind employee --group nosuch"), none),
        (2, "unknown custom field", dan("--kind employee --field shoe_size=42"), none),
        (2, "field not matching its pattern", dan("--kind employee --field cost_center=ab-12"), none),
        (2, "choice field with a bad value", dan("--kind employee --field nda_signed=maybe"), none),
        (2, "email field with a bad value", dan("--kind employee --field manager_email=boss"), none),
        (2, "--field without =", dan("--kind employee --field cost_center"), none),
        (3, "unknown template", dan("--template nosuch"), none),
        (2, "template's required field missing", dan("--template vendor-support"), none),
        (2, "bad date text", dan("--kind contractor --end 2027-02-30"), none),
        (2, "end date in the past", dan("--kind contractor --start 2020-01-01 --end 2020-02-01"), none),
        (2, "end date in the past, start today", dan("--kind contractor --end 2020-02-01"), none),
        (2, "unknown timezone", "user update bob --timezone Mars/Olympus".into(), none),
        (3, "show unknown user", "user show nobody".into(), none),
        (3, "disable unknown user", "user disable nobody --reason x".into(), none),
        (2, "disable with a blank reason", "user disable bob --reason ' '".into(), none),
        (5, "disable already disabled", "user disable carol --reason again".into(), none),
        (5, "enable an active account", "user enable bob".into(), none),
        (5, "enable an account whose end date passed", "@+40d user enable olga".into(), none),
        (5, "restore an account not deleted", "user restore bob".into(), none),
        (2, "extend into the past", "user extend bob --end 2001-01-01".into(), none),
        (2, "update with nothing to change", "user update bob".into(), none),
        (2, "update with --template", "user update bob --template contractor".into(), none),
        (2, "sponsor oneself", "user update bob --sponsor bob".into(), none),
        (2, "update to a kind that needs an end", "user update bob --kind contractor".into(), none),
        (5, "update to an email in use", "user update bob --email CAROL@example.com".into(), none),
        (5, "enable a deleted account", "user enable dora".into(), none),
        (5, "disable a deleted account", "user disable dora --reason x".into(), none),
        (5, "delete a deleted account", "user delete dora".into(), none),
        (5, "extend a deleted account", "user extend dora --end +10d".into(), none),
        (5, "update a deleted account", "user update dora --project x".into(), none),
        (3, "purge unknown user", "user purge nobody --yes".into(), none),
        (3, "clone unknown source", "user clone nobody dan --email dan@example.com --display-name Dan".into(), none),
        (5, "clone onto an existing name", "user clone bob carol --email dan@example.com --display-name Dan".into(), none),
        (2, "clone with a bad email", "user clone bob dan --email dan@ --display-name Dan".into(), none),
        (2, "list with an unknown status", "user list --status sleeping".into(), none),
        (2, "key add with garbage", "key add bob".into(), Some("ssh-ed25519 not-base64 x\n")),
        (2, "key add with empty stdin", "key add bob".into(), Some("")),
        (2, "key add of a private key", "key add bob".into(), Some(&private)),
        (2, "key add of two lines", "key add bob".into(), Some(&two_keys)),
        (2, "key add with a bad --expires", "key add bob --expires soon".into(), Some(&spare)),
        (5, "key already on another account", "key add alice".into(), Some(&bob_key)),
        (5, "key already on this account", "key add bob".into(), Some(&bob_key)),
        (3, "key add to unknown user", "key add nobody".into(), Some(&spare)),
        (5, "key add to a deleted account", "key add dora".into(), Some(&spare)),
        (3, "key remove unknown fingerprint", "key remove bob SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(), none),
        (2, "password too short", "password set bob".into(), Some("short\n")),
        (2, "password from empty stdin", "password set bob".into(), Some("")),
        (2, "password equal to the username", "password set maximilianus".into(), Some("MaximilianuS\n")),
        (5, "password set on a deleted account", "password set dora".into(), Some("long enough password\n")),
        (2, "allow add bad CIDR", "allow add bob 10.0.0.0/33".into(), none),
        (5, "allow add duplicate", "allow add bob 10.1.2.3/8".into(), none),
        (3, "allow remove not present", "allow remove bob 192.0.2.1".into(), none),
        (5, "allow add on a deleted account", "allow add dora 10.0.0.1".into(), none),
        (3, "group add to unknown group", "group add nosuch bob".into(), none),
        (3, "group add unknown user", "group add interns nobody".into(), none),
        (5, "group add a deleted account", "group add interns dora".into(), none),
        (5, "group create existing", "group create interns".into(), none),
        (2, "group create bad name", "group create Ops".into(), none),
        (3, "group remove non-member", "group remove interns bob".into(), none),
        (2, "unknown subcommand", "frobnicate".into(), none),
        (2, "unknown flag", "user list --colour".into(), none),
        (2, "missing argument", "user show".into(), none),
    ];

    let before = inst.snapshot();
    let mut failures = Vec::new();
    for (code, what, line, stdin) in &cases {
        // `@OFFSET command`: run under faketime, the clock shifted by OFFSET.
        let (shift, line) = match line.strip_prefix('@') {
            Some(rest) => {
                let (offset, rest) = rest.split_once(' ').unwrap();
                (Some(offset), rest)
            }
            None => (None, line.as_str()),
        };
        let args = sh(line);
        inst.set_faketime(shift);
        let run = match stdin {
            Some(text) => inst.run_stdin(&args, text),
            None => inst.run(&args),
        };
        inst.set_faketime(None);
        if let Err(e) = check_error(&args, &run, *code) {
            failures.push(format!("{what}: {e}"));
        }
        if inst.snapshot() != before {
            failures.push(format!(
                "{what}: `{line}` changed the audit trail or the accounts"
            ));
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{} broke the contract:\n{}",
        failures.len(),
        failures.join("\n")
    );
    inst.sh("check");
}

#[test]
fn keys_are_fingerprinted_like_ssh_keygen_and_weak_or_expired_keys_are_refused() {
    let inst = Instance::initialised();
    inst.create("bob", "--kind employee");
    let ed = inst.keygen("bob", "ed25519", None);
    let want = ssh_keygen_fingerprint(&ed);
    let out = inst.ok_stdin(&["key", "add", "bob"], &inst.pubkey("bob"));
    assert_eq!(out, format!("added ssh-ed25519 {want} to bob\n"));

    let keys = inst.json(&sh("key list bob --json"));
    assert_eq!(names(&keys, "fingerprint"), std::slice::from_ref(&want));
    assert_eq!(keys[0]["algorithm"], "ssh-ed25519");
    assert_eq!(keys[0]["comment"], "bob@test");
    assert_eq!(keys[0]["added_by"], ACTOR);
    assert!(inst
        .pubkey("bob")
        .starts_with(keys[0]["public_key"].as_str().unwrap()));

    // ssh-keygen here still makes 1024-bit RSA keys (OpenSSH's own floor).
    inst.keygen("weak", "rsa", Some(1024));
    let run = inst.run_stdin(&["key", "add", "bob"], &inst.pubkey("weak"));
    check_error(&["key", "add", "bob"], &run, 2).unwrap();
    assert!(run.2.contains("1024 bits refused"), "{}", run.2);

    let rsa = inst.keygen("strong", "rsa", Some(3072));
    let out = inst.ok_stdin(&sh("key add bob --json"), &inst.pubkey("strong"));
    let added: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(added["fingerprint"], ssh_keygen_fingerprint(&rsa).as_str());
    assert_eq!(added["algorithm"], "ssh-rsa");

    inst.keygen("later", "ecdsa", None);
    let past = sh("key add bob --expires 2001-01-01");
    let run = inst.run_stdin(&past, &inst.pubkey("later"));
    check_error(&past, &run, 2).unwrap();
    assert!(run.2.contains("in the past"), "{}", run.2);
    inst.ok_stdin(&sh("key add bob --expires +30d"), &inst.pubkey("later"));
    let keys = inst.json(&sh("key list bob --json"));
    assert_eq!(keys.as_array().unwrap().len(), 3);
    assert!(keys[2]["algorithm"]
        .as_str()
        .unwrap()
        .starts_with("ecdsa-sha2-"));
    assert!(keys[2]["expires_on"].is_string(), "{}", keys[2]);
    let table = inst.sh("key list bob");
    assert!(
        table.trim_start().starts_with("FINGERPRINT") && table.contains(&want),
        "{table}"
    );

    let out = inst.ok(&["key", "remove", "bob", &want]);
    assert_eq!(out, format!("removed {want} from bob\n"));
    inst.fails(&["key", "remove", "bob", &want], 3);
    // Without the SHA256: prefix too.
    let rsa_fp = ssh_keygen_fingerprint(&rsa);
    inst.ok(&["key", "remove", "bob", rsa_fp.trim_start_matches("SHA256:")]);
    assert_eq!(
        inst.json(&sh("key list bob --json"))
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A removed key may be registered again, to another account.
    inst.ok_stdin(&["key", "add", "alice"], &inst.pubkey("bob"));
}

#[test]
fn a_password_is_stored_but_never_shown_or_logged() {
    let inst = Instance::initialised();
    inst.create("bob", "--kind employee");
    assert_eq!(inst.show("bob")["password_set"], false);
    let secret = "Tr0ub4dor&3-horse-staple";
    let stdin = format!("{secret}\nsecond line ignored\n");
    let out = inst.ok_stdin(&["password", "set", "bob"], &stdin);
    assert_eq!(out, "password set for bob\n");
    let bob = inst.show("bob");
    assert_eq!(bob["password_set"], true);
    assert!(bob["password_set_at"].is_string());
    assert!(inst.sh("user show bob").contains("\npassword      set "));

    let event = inst.json(&sh("audit tail -n 1 --json"));
    assert_eq!(event[0]["action"], "password.set");
    assert_eq!(event[0]["changes"][0]["field"], "password");
    for line in [
        "user show bob --json",
        "user show bob",
        "user list --json",
        "audit tail -n 1000 --json",
        "audit tail -n 1000",
        "export --format json",
        "export --format csv",
    ] {
        let out = inst.sh(line).to_lowercase();
        assert!(
            !out.contains(&secret.to_lowercase()),
            "{line} shows the password"
        );
        assert!(!out.contains("argon2"), "{line} shows the hash");
        assert!(!out.contains("second line"), "{line}");
    }
}

#[test]
fn allowlists_take_cidrs_and_bare_addresses() {
    let inst = Instance::initialised();
    inst.create("bob", "--kind employee");
    assert!(inst.sh("allow list bob").contains("bob has no allowlist"));
    assert_eq!(inst.json(&sh("allow list bob --json")), json!([]));
    for (given, stored) in [
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("192.0.2.7", "192.0.2.7/32"),
        ("2001:db8::1/32", "2001:db8::/32"),
        ("::1", "::1/128"),
    ] {
        let out = inst.ok(&["allow", "add", "bob", given]);
        assert_eq!(out, format!("allowed {stored} for bob\n"));
    }
    let all = ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "::1/128"];
    assert_eq!(inst.json(&sh("allow list bob --json")), json!(all));
    assert_eq!(inst.sh("allow list bob"), all.join("\n") + "\n");
    assert_eq!(inst.show("bob")["allowlist"], json!(all));

    let out = inst.sh("allow remove bob 192.0.2.7");
    assert_eq!(out, "removed 192.0.2.7/32 from bob's allowlist\n");
    inst.sh("allow remove bob 10.0.0.0/8");
    inst.fails(&sh("allow remove bob 10.0.0.0/8"), 3);
    let left = inst.json(&sh("allow list bob --json"));
    assert_eq!(left, json!(["2001:db8::/32", "::1/128"]));
}

#[test]
fn groups_are_created_filled_listed_and_emptied() {
    let inst = Instance::initialised();
    inst.create("bob", "--kind employee");
    inst.create("carol", "--kind employee");
    let groups = inst.json(&sh("group list --json"));
    let from_templates = ["contractors", "interns", "vendors"];
    assert_eq!(names(&groups, "name"), from_templates);

    assert_eq!(inst.sh("group create ops"), "created group ops\n");
    assert_eq!(inst.sh("group add ops bob"), "added bob to ops\n");
    inst.sh("group add ops carol");
    inst.fails(&sh("group add ops bob"), 5);
    let ops = |groups: Value| {
        let list = groups.as_array().unwrap().clone();
        list.into_iter().find(|g| g["name"] == "ops").unwrap()
    };
    let group = ops(inst.json(&sh("group list --json")));
    assert_eq!(group["members"], json!(["bob", "carol"]));
    assert_eq!(group["created_by"], ACTOR);
    assert_eq!(inst.show("bob")["groups"], json!(["ops"]));
    let table = inst.sh("group list");
    let row = table.lines().find(|l| l.trim_start().starts_with("ops"));
    assert_eq!(
        row.map(|r| r.split_whitespace().nth(1)),
        Some(Some("2")),
        "{table}"
    );

    assert_eq!(inst.sh("group remove ops bob"), "removed bob from ops\n");
    inst.fails(&sh("group remove ops bob"), 3);
    let group = ops(inst.json(&sh("group list --json")));
    assert_eq!(group["members"], json!(["carol"]));
    assert_eq!(inst.show("bob")["groups"], json!([]));
}

#[test]
fn user_list_filters_by_status_kind_sponsor_project_and_expiry() {
    let inst = Instance::initialised();
    // olga ends tomorrow; everything after runs 40 days later, when her end
    // date has passed (an end date in the past is refused at creation).
    inst.create("olga", "--kind contractor --end +1d");
    inst.set_faketime(Some("+40d"));
    inst.create("bob", "--kind employee");
    inst.create(
        "dave",
        "--kind contractor --end +10d --sponsor alice --project apollo",
    );
    inst.create(
        "erin",
        "--kind partner --end +200d --sponsor bob --project zeus",
    );
    let out = inst.create("fay", "--kind employee --start +30d");
    assert!(out.contains("staged"), "{out}");
    inst.create("gus", "--kind intern --end +20d --sponsor alice");
    inst.sh("user disable gus --reason paused");

    let list = |flags: &str| {
        names(
            &inst.json(&sh(&format!("user list --json {flags}"))),
            "username",
        )
    };
    let none: Vec<String> = vec![];
    assert_eq!(
        list(""),
        ["alice", "bob", "dave", "erin", "fay", "gus", "olga"]
    );
    assert_eq!(list("--status active"), ["alice", "bob", "dave", "erin"]);
    assert_eq!(list("--status STAGED"), ["fay"]);
    assert_eq!(list("--status expired"), ["olga"]);
    assert!(list("--status disabled").contains(&"gus".to_string()));
    assert_eq!(list("--status deleted"), none);
    assert_eq!(list("--kind contractor"), ["dave", "olga"]);
    assert_eq!(list("--kind employee"), ["alice", "bob", "fay"]);
    assert_eq!(list("--sponsor alice"), ["dave", "gus"]);
    assert_eq!(list("--sponsor bob"), ["erin"]);
    assert_eq!(list("--project apollo"), ["dave"]);
    assert_eq!(
        list("--expiring-within 30"),
        ["dave"],
        "gus is disabled, olga ended"
    );
    assert_eq!(list("--expiring-within 365"), ["dave", "erin"]);
    assert_eq!(list("--sponsor alice --status active"), ["dave"]);
    assert_eq!(list("--kind partner --sponsor alice"), none);

    let table = inst.sh("user list --project apollo");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].trim_start().starts_with("USERNAME"), "{table}");
    assert!(
        lines[1].trim_start().starts_with("dave") && lines[1].contains("(10d)"),
        "{table}"
    );
    assert_eq!(lines.last(), Some(&"1 account(s)"));
    assert_eq!(inst.sh("user list --project nope"), "no accounts match\n");
}

#[test]
fn the_audit_trail_records_who_did_what_to_whom() {
    let inst = Instance::initialised();
    inst.create("bob", "--kind contractor --end +30d");
    inst.create("carol", "--kind employee");
    inst.sh("user disable bob --reason 'contract ended'");
    inst.keygen("carol", "ed25519", None);
    inst.ok_stdin(&["key", "add", "carol"], &inst.pubkey("carol"));
    inst.ok_stdin(&["password", "set", "bob"], "a long enough secret\n");

    let events = inst.json(&sh("audit tail --json"));
    let events = events.as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[0], "system.init");
    let newest = [
        "user.create",
        "user.create",
        "user.disable",
        "key.add",
        "password.set",
    ];
    assert_eq!(&actions[actions.len() - 5..], newest);
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["seq"].as_u64(),
            pair[0]["seq"].as_u64().map(|s| s + 1)
        );
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "hash chain");
    }
    for e in events {
        assert_eq!(
            (&e["actor"], &e["source"]),
            (&json!(ACTOR), &json!("cli")),
            "{e}"
        );
        assert!(e["changes"].is_array(), "{e}");
    }
    let find = |action: &str, target: &str| {
        let found = events
            .iter()
            .find(|e| e["action"] == action && e["target"] == target);
        found.unwrap_or_else(|| panic!("no {action} {target}"))
    };
    // A creation is one change, "account", carrying the whole record (no secrets).
    let created = &find("user.create", "bob")["changes"][0];
    assert_eq!(created["field"], "account");
    assert!(
        created["new"]["kind"].is_string() && created["new"]["end_date"].is_string(),
        "{created}"
    );
    let disabled = find("user.disable", "bob");
    assert_eq!(disabled["detail"], "contract ended");
    let changes = disabled["changes"].as_array().unwrap();
    let status = changes.iter().find(|c| c["field"] == "status").unwrap();
    assert_eq!(
        (&status["old"], &status["new"]),
        (&json!("active"), &json!("disabled"))
    );
    let fingerprint = ssh_keygen_fingerprint(&inst.path("carol.pub"));
    assert_eq!(
        find("key.add", "carol")["changes"][0]["new"]["fingerprint"],
        fingerprint.as_str()
    );
    let password = find("password.set", "bob").to_string();
    assert!(
        !password.contains("enough secret") && !password.contains("argon2"),
        "{password}"
    );

    let bob = inst.json(&sh("audit tail --target bob --json"));
    assert_eq!(
        names(&bob, "action"),
        ["user.create", "user.disable", "password.set"]
    );
    let last = inst.json(&sh("audit tail -n 2 --json"));
    assert_eq!(names(&last, "action"), ["key.add", "password.set"]);
    let keys = inst.json(&sh("audit tail --action key. --json"));
    assert_eq!(names(&keys, "target"), ["alice", "carol"]);
    assert_eq!(
        inst.json(&sh("audit tail --actor someone --json")),
        json!([])
    );
    let text = inst.sh("audit tail -n 1");
    let want = format!(" {ACTOR} password.set bob ");
    assert!(text.starts_with('#') && text.contains(&want), "{text}");
    let verify = inst.json(&sh("audit verify --json"));
    assert_eq!(
        verify["events"].as_u64(),
        events.last().unwrap()["seq"].as_u64()
    );
    assert_eq!(verify["broken"], Value::Null);
}

#[test]
fn the_offline_cli_refuses_a_database_another_process_holds() {
    let inst = Instance::initialised();
    {
        let _held = tenure::store::SledStore::open(&inst.data_dir()).expect("open the store");
        for line in [
            "user list",
            "user create bob --email b@example.com --display-name B --kind employee",
            "check",
            "init --admin alice",
        ] {
            let args = sh(line);
            let run = inst.run(&args);
            check_error(&args, &run, 1).unwrap();
            assert!(
                run.2.contains("in use by a running tenure server"),
                "{line}: {}",
                run.2
            );
        }
    }
    // Once the holder lets go, nothing was half-written.
    assert_eq!(
        names(&inst.json(&sh("user list --json")), "username"),
        ["alice"]
    );
    inst.sh("check");
}

#[test]
fn a_bad_config_is_refused_with_the_line_and_key() {
    let inst = Instance::new();
    let cases: [(&str, &[&str]); 4] = [
        (
            "[server]\ndata_dir = \"data\"\nbogus = 1\n",
            &["line 3", "bogus"],
        ),
        ("[policy]\ninactivity_days = \"ninety\"\n", &["line 2"]),
        (
            "[server]\nlisten = [\"nowhere\"]\n",
            &["line 2", "server.listen"],
        ),
        (
            "\n[[custom_fields]]\nname = \"cc\"\npattern = \"([\"\n",
            &["line 2", "pattern"],
        ),
    ];
    for (text, wanted) in cases {
        std::fs::write(&inst.config, text).unwrap();
        for args in [sh("user list"), sh("init --admin alice")] {
            let run = inst.run(&args);
            check_error(&args, &run, 1).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            for w in wanted {
                assert!(run.2.contains(w), "{text:?}: {} lacks {w}", run.2);
            }
        }
    }
    assert!(
        !inst.data_dir().exists(),
        "nothing created from a bad config"
    );
    let missing = inst.path("nope.toml");
    let run = std::process::Command::new(BIN)
        .args(["--config", missing.to_str().unwrap(), "user", "list"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.starts_with("error: cannot read config") && stderr.lines().count() == 1);
}

#[test]
fn a_refused_init_leaves_no_initialised_database_behind() {
    let inst = Instance::new();
    let line = inst.fails(&sh("user list"), 1);
    assert!(line.contains("no database"), "{line}");
    let good = inst.keygen("alice", "ed25519", None);
    let good = good.to_str().unwrap();
    inst.keygen("weak", "rsa", Some(1024));
    std::fs::write(inst.path("garbage.pub"), "not a key\n").unwrap();
    #[rustfmt::skip]
    let cases = [
        ("bad admin name", format!("--admin Alice --key {good}"), None),
        ("missing key file", "--admin alice --key missing.pub".to_string(), None),
        ("garbage key file", "--admin alice --key garbage.pub".to_string(), None),
        ("weak RSA key", "--admin alice --key weak.pub".to_string(), None),
        ("short password", "--admin alice --password".to_string(), Some("short\n")),
        ("password equal to the name", "--admin administrator --password".to_string(), Some("administrator\n")),
        ("password with a control character", "--admin alice --password".to_string(), Some("long\tenough password\n")),
    ];
    let mut failures = Vec::new();
    for (what, flags, stdin) in cases {
        let args = sh(&format!("init {flags}"));
        let run = match stdin {
            Some(text) => inst.run_stdin(&args, text),
            None => inst.run(&args),
        };
        if let Err(e) = check_error(&args, &run, 2) {
            failures.push(format!("{what}: {e}"));
        }
        let after = inst.run(&["user", "list"]);
        if after.0 == 0 {
            failures.push(format!(
                "{what}: refused, yet the database is initialised:\n{}",
                after.1
            ));
            std::fs::remove_dir_all(inst.data_dir()).unwrap();
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    inst.ok(&["init", "--admin", "alice", "--key", good]);
    assert_eq!(
        names(&inst.json(&sh("user list --json")), "username"),
        ["alice"]
    );
}

#[test]
fn a_clone_records_the_allowlist_it_copies_in_the_audit_trail() {
    let inst = Instance::initialised();
    inst.create("bob", "--kind employee");
    inst.sh("allow add bob 10.0.0.0/8");
    inst.sh("user clone bob frank --email f@example.com --display-name F");
    assert_eq!(inst.show("frank")["allowlist"], json!(["10.0.0.0/8"]));
    // Replaying frank's events must give the allowlist frank has.
    let events = inst.json(&sh("audit tail --target frank --json"));
    let mut allowlist = Value::Null;
    for e in events.as_array().unwrap() {
        for c in e["changes"].as_array().unwrap() {
            if c["field"] == "allowlist" {
                allowlist = c["new"].clone();
            }
            // A creation is one change carrying the whole record.
            if c["field"] == "account" && !c["new"]["allowlist"].is_null() {
                allowlist = c["new"]["allowlist"].clone();
            }
        }
    }
    assert_eq!(allowlist, json!(["10.0.0.0/8"]), "frank's events: {events}");
}
