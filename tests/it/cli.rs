//! The offline command line, end to end: the real binary, a real sled
//! database in a temp dir, keys from ssh-keygen.

use serde_json::Value;

use crate::common::*;

fn has(list: &Value, key: &str, want: &str) -> bool {
    names(list, key).iter().any(|n| n == want)
}

#[test]
fn an_account_goes_from_init_through_clone_disable_delete_and_purge() {
    let inst = Instance::new();
    let key = inst.keygen("alice", "ed25519", None);
    let key = key.to_str().unwrap();
    let out = inst.ok(&["init", "--admin", "alice", "--key", key]);
    assert!(out.contains("initialised") && out.contains("host key"), "{out}");
    let again = inst.fails(&["init", "--admin", "alice", "--key", key], 5);
    assert!(again.contains("already initialised"), "{again}");

    let who = inst.ok(&["whoami"]);
    assert!(who.starts_with(ACTOR) && who.contains("offline operator"), "{who}");
    let who = inst.json(&["whoami", "--json"]);
    assert_eq!((&who["name"], &who["source"]), (&Value::from(ACTOR), &Value::from("cli")));
    let alice = inst.show("alice");
    assert_eq!(alice["roles"], serde_json::json!(["admin"]));
    assert_eq!(alice["keys"].as_array().unwrap().len(), 1);

    let out = inst.ok(&[
        "user", "create", "bob", "--email", "bob@example.com", "--display-name", "Bob Builder",
        "--kind", "contractor", "--end", "+90d", "--company", "Acme", "--sponsor", "alice",
        "--group", "contractors", "--field", "cost_center=AB-1234",
    ]);
    assert!(out.starts_with("created bob (contractor, active, ends "), "{out}");
    let bob = inst.show("bob");
    assert_eq!(bob["kind"], "contractor");
    assert_eq!(bob["company"], "Acme");
    assert_eq!(bob["sponsor"], "alice");
    assert_eq!(bob["days_left"], 90);
    assert_eq!(bob["effective_status"], "active");
    assert_eq!(bob["fields"]["cost_center"], "AB-1234");
    assert_eq!(bob["groups"], serde_json::json!(["contractors"]));
    inst.keygen("bob", "ed25519", None);
    inst.ok_stdin(&["key", "add", "bob"], &inst.pubkey("bob"));
    inst.ok(&["allow", "add", "bob", "198.51.100.0/24"]);
    let bob = inst.show("bob");

    // A template sets the kind, the groups and the end date from the start date.
    inst.create("ivy", &["--template", "summer-intern"]);
    let ivy = inst.show("ivy");
    assert_eq!(ivy["kind"], "intern");
    assert_eq!(ivy["days_left"], 90);
    assert_eq!(ivy["groups"], serde_json::json!(["interns"]));

    // A clone copies what the account is, never who it is or its credentials.
    let out = inst.ok(&[
        "user", "clone", "bob", "frank", "--email", "frank@example.com", "--display-name",
        "Frank Furter",
    ]);
    assert!(out.starts_with("cloned from bob: frank (contractor"), "{out}");
    let frank = inst.show("frank");
    for field in ["kind", "company", "sponsor", "groups", "fields", "roles", "days_left", "allowlist"] {
        assert_eq!(frank[field], bob[field], "clone copies {field}");
    }
    assert_eq!(frank["email"], "frank@example.com");
    assert_eq!(frank["display_name"], "Frank Furter");
    assert_eq!(frank["keys"], serde_json::json!([]));
    assert_eq!(frank["password_set"], false);

    let out = inst.ok(&["user", "update", "frank", "--project", "apollo"]);
    assert!(out.starts_with("updated frank"), "{out}");
    assert_eq!(inst.show("frank")["project"], "apollo");

    assert_eq!(
        inst.ok(&["user", "disable", "bob", "--reason", "contract ended"]),
        "disabled bob\n"
    );
    let bob = inst.show("bob");
    assert_eq!(bob["effective_status"], "disabled");
    assert_eq!(bob["disable_note"], "contract ended");
    assert!(inst.ok(&["user", "show", "bob"]).contains("disabled (manual): contract ended"));

    assert_eq!(inst.ok(&["user", "enable", "bob"]), "enabled bob (active)\n");
    let bob = inst.show("bob");
    assert_eq!(bob["effective_status"], "active");
    assert_eq!(bob["disable_note"], Value::Null);

    let out = inst.ok(&["user", "extend", "bob", "--end", "+120d"]);
    assert!(out.starts_with("extended bob to ") && out.ends_with("(active)\n"), "{out}");
    assert_eq!(inst.show("bob")["days_left"], 120);

    assert!(inst.ok(&["user", "delete", "bob"]).starts_with("deleted bob"));
    assert_eq!(inst.show("bob")["effective_status"], "deleted");
    assert!(inst.ok(&["user", "restore", "bob"]).starts_with("restored bob"));
    assert_eq!(inst.show("bob")["effective_status"], "disabled");
    // Purge: only a deleted account, and only with --yes.
    inst.fails(&["user", "purge", "bob", "--yes"], 5);
    inst.ok(&["user", "delete", "bob"]);
    let line = inst.fails(&["user", "purge", "bob"], 2);
    assert!(line.contains("--yes"), "{line}");
    assert_eq!(inst.show("bob")["effective_status"], "deleted");
    assert_eq!(inst.ok(&["user", "purge", "bob", "--yes"]), "purged bob\n");
    inst.fails(&["user", "show", "bob"], 3);

    let csv = inst.ok(&["export", "--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("username,display_name,email,kind,"), "{csv}");
    assert!(lines[0].ends_with("field:cost_center,field:nda_signed,field:manager_email"));
    assert_eq!(lines.len(), 4, "header + alice, frank, ivy: {csv}");
    assert!(lines[2].starts_with("frank,Frank Furter,frank@example.com,contractor,Acme,alice,apollo,"));
    assert!(lines[2].ends_with(",AB-1234,,"), "{}", lines[2]);
    let all = inst.json(&["export", "--format", "json"]);
    assert_eq!(names(&all, "username"), ["alice", "frank", "ivy"]);

    let out = inst.ok(&["check"]);
    assert!(out.starts_with("ok: 3 accounts"), "{out}");
    let out = inst.ok(&["audit", "verify"]);
    assert!(out.starts_with("audit chain intact: "), "{out}");
}

/// A command that must be refused, and the exit code it must be refused with.
struct Refused {
    what: &'static str,
    args: Vec<&'static str>,
    stdin: Option<String>,
    code: i32,
}

fn case(what: &'static str, code: i32, args: &[&'static str]) -> Refused {
    Refused { what, args: args.to_vec(), stdin: None, code }
}

fn piped(what: &'static str, code: i32, args: &[&'static str], stdin: &str) -> Refused {
    Refused { stdin: Some(stdin.to_string()), ..case(what, code, args) }
}

/// `user create dan` with a valid base of the given kind, plus `extra` flags.
fn dan(kind: &'static str, extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec!["user", "create", "dan", "--email", "dan@example.com", "--display-name", "Dan", "--kind", kind];
    args.extend_from_slice(extra);
    args
}

#[test]
fn every_refusal_has_its_exit_code_one_error_line_and_changes_nothing() {
    let inst = Instance::initialised();
    inst.create("bob", &["--kind", "employee"]);
    inst.create("carol", &["--kind", "employee"]);
    inst.ok(&["user", "disable", "carol", "--reason", "left"]);
    inst.keygen("bob", "ed25519", None);
    inst.ok_stdin(&["key", "add", "bob"], &inst.pubkey("bob"));
    inst.ok(&["allow", "add", "bob", "10.0.0.0/8"]);
    inst.create("dora", &["--kind", "employee"]);
    inst.ok(&["user", "delete", "dora"]);
    inst.keygen("spare", "ed25519", None);
    let spare = inst.pubkey("spare");
    let private = std::fs::read_to_string(inst.path("spare")).unwrap();
    let bob_key = inst.pubkey("bob");

    let cases = [
        case("bad username", 2, &["user", "create", "Bob", "--email", "dan@example.com", "--display-name", "Dan", "--kind", "employee"]),
        case("bad email", 2, &["user", "create", "dan", "--email", "dan-at-example", "--display-name", "Dan", "--kind", "employee"]),
        case("duplicate username", 5, &["user", "create", "bob", "--email", "bob2@example.com", "--display-name", "B", "--kind", "employee"]),
        case("duplicate email, other case", 5, &["user", "create", "dan", "--email", "BOB@Example.COM", "--display-name", "Dan", "--kind", "employee"]),
        case("contractor without --end", 2, &dan("contractor", &[])),
        case("end before start", 2, &dan("contractor", &["--start", "+10d", "--end", "+5d"])),
        case("end beyond the kind's maximum", 2, &dan("contractor", &["--end", "+400d"])),
        case("unknown sponsor", 3, &dan("employee", &["--sponsor", "nobody"])),
        case("disabled sponsor", 5, &dan("employee", &["--sponsor", "carol"])),
        case("unknown kind", 2, &["user", "create", "dan", "--email", "dan@example.com", "--display-name", "Dan", "--kind", "wizard"]),
        case("unknown group", 3, &dan("employee", &["--group", "nosuch"])),
        case("unknown custom field", 2, &dan("employee", &["--field", "shoe_size=42"])),
        case("field not matching its pattern", 2, &dan("employee", &["--field", "cost_center=ab-12"])),
        case("choice field with a bad value", 2, &dan("employee", &["--field", "nda_signed=maybe"])),
        case("field without =", 2, &dan("employee", &["--field", "cost_center"])),
        case("unknown template", 3, &["user", "create", "dan", "--email", "dan@example.com", "--display-name", "Dan", "--template", "nosuch"]),
        case("template's required field missing", 2, &["user", "create", "dan", "--email", "dan@example.com", "--display-name", "Dan", "--template", "vendor-support"]),
        case("bad date text", 2, &dan("contractor", &["--end", "2027-02-30"])),
        case("missing email", 2, &["user", "create", "dan", "--display-name", "Dan", "--kind", "employee"]),
        case("show unknown user", 3, &["user", "show", "nobody"]),
        case("disable unknown user", 3, &["user", "disable", "nobody", "--reason", "x"]),
        case("disable without a reason text", 2, &["user", "disable", "bob", "--reason", " "]),
        case("disable already disabled", 5, &["user", "disable", "carol", "--reason", "again"]),
        case("enable an active account", 5, &["user", "enable", "bob"]),
        case("restore an account not deleted", 5, &["user", "restore", "bob"]),
        case("extend into the past", 2, &["user", "extend", "bob", "--end", "2001-01-01"]),
        case("update with nothing to change", 2, &["user", "update", "bob"]),
        case("list with an unknown status", 2, &["user", "list", "--status", "sleeping"]),
        piped("key add with garbage", 2, &["key", "add", "bob"], "ssh-ed25519 not-base64 x\n"),
        piped("key add with empty stdin", 2, &["key", "add", "bob"], ""),
        piped("key already on another account", 5, &["key", "add", "alice"], &bob_key),
        piped("key already on this account", 5, &["key", "add", "bob"], &bob_key),
        piped("key add to unknown user", 3, &["key", "add", "nobody"], &bob_key),
        case("key remove unknown fingerprint", 3, &["key", "remove", "bob", "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]),
        piped("password too short", 2, &["password", "set", "bob"], "short\n"),
        piped("password equal to the username", 2, &["password", "set", "carol"], "carol\n"),
        case("allow add bad CIDR", 2, &["allow", "add", "bob", "10.0.0.0/33"]),
        case("allow add duplicate", 5, &["allow", "add", "bob", "10.1.2.3/8"]),
        case("allow remove not present", 3, &["allow", "remove", "bob", "192.0.2.1"]),
        case("group add to unknown group", 3, &["group", "add", "nosuch", "bob"]),
        case("group add unknown user", 3, &["group", "add", "interns", "nobody"]),
        case("group create existing", 5, &["group", "create", "interns"]),
        case("group create bad name", 2, &["group", "create", "Ops"]),
        case("group remove non-member", 3, &["group", "remove", "interns", "bob"]),
        case("enable a deleted account", 5, &["user", "enable", "dora"]),
        case("disable a deleted account", 5, &["user", "disable", "dora", "--reason", "x"]),
        case("delete a deleted account", 5, &["user", "delete", "dora"]),
        case("extend a deleted account", 5, &["user", "extend", "dora", "--end", "+10d"]),
        case("update a deleted account", 5, &["user", "update", "dora", "--project", "x"]),
        piped("key add to a deleted account", 5, &["key", "add", "dora"], &spare),
        piped("password set on a deleted account", 5, &["password", "set", "dora"], "long enough password\n"),
        case("allow add on a deleted account", 5, &["allow", "add", "dora", "10.0.0.1"]),
        case("group add a deleted account", 5, &["group", "add", "interns", "dora"]),
        case("purge unknown user", 3, &["user", "purge", "nobody", "--yes"]),
        case("update with --template", 2, &["user", "update", "bob", "--template", "contractor"]),
        case("sponsor oneself", 2, &["user", "update", "bob", "--sponsor", "bob"]),
        case("update to a kind that needs an end", 2, &["user", "update", "bob", "--kind", "contractor"]),
        case("unknown timezone", 2, &["user", "update", "bob", "--timezone", "Mars/Olympus"]),
        case("clone unknown source", 3, &["user", "clone", "nobody", "dan", "--email", "dan@example.com", "--display-name", "Dan"]),
        case("clone onto an existing name", 5, &["user", "clone", "bob", "carol", "--email", "dan@example.com", "--display-name", "Dan"]),
        case("clone with a bad email", 2, &["user", "clone", "bob", "dan", "--email", "dan@", "--display-name", "Dan"]),
        piped("key add of a private key", 2, &["key", "add", "bob"], &private),
        piped("key add of two lines", 2, &["key", "add", "bob"], &format!("{spare}{bob_key}")),
        piped("password from empty stdin", 2, &["password", "set", "bob"], ""),
        case("key add with a bad --expires", 2, &["key", "add", "bob", "--expires", "soon"]),
        case("unknown subcommand", 2, &["frobnicate"]),
        case("unknown flag", 2, &["user", "list", "--colour"]),
        case("missing argument", 2, &["user", "show"]),
    ];

    let before = inst.snapshot();
    let mut failures = Vec::new();
    for c in &cases {
        let run = match &c.stdin {
            Some(text) => inst.run_stdin(&c.args, text),
            None => inst.run(&c.args),
        };
        if let Err(e) = check_error(&c.args, &run, c.code) {
            failures.push(format!("{}: {e}", c.what));
        }
        if inst.snapshot() != before {
            failures.push(format!("{}: {:?} changed the audit trail or the accounts", c.what, c.args));
            break;
        }
    }
    assert!(failures.is_empty(), "{} case(s) broke the contract:\n{}", failures.len(), failures.join("\n"));
    inst.ok(&["check"]);
}

#[test]
fn keys_are_fingerprinted_like_ssh_keygen_and_weak_or_expired_keys_are_refused() {
    let inst = Instance::initialised();
    inst.create("bob", &["--kind", "employee"]);
    let ed = inst.keygen("bob", "ed25519", None);
    let want = ssh_keygen_fingerprint(&ed);
    let out = inst.ok_stdin(&["key", "add", "bob"], &inst.pubkey("bob"));
    assert_eq!(out, format!("added ssh-ed25519 {want} to bob\n"));

    let keys = inst.json(&["key", "list", "bob", "--json"]);
    assert_eq!(names(&keys, "fingerprint"), [want.clone()]);
    assert_eq!(keys[0]["algorithm"], "ssh-ed25519");
    assert_eq!(keys[0]["comment"], "bob@test");
    assert_eq!(keys[0]["added_by"], ACTOR);
    assert!(inst.pubkey("bob").starts_with(keys[0]["public_key"].as_str().unwrap()));

    // ssh-keygen on this machine still makes 1024-bit RSA keys (OpenSSH's floor).
    inst.keygen("weak", "rsa", Some(1024));
    let line = inst.fails(&["key", "add", "bob"], 2);
    assert!(line.contains("no public key"), "empty stdin: {line}");
    let run = inst.run_stdin(&["key", "add", "bob"], &inst.pubkey("weak"));
    check_error(&["key", "add", "bob"], &run, 2).unwrap();
    assert!(run.2.contains("1024 bits refused"), "{}", run.2);

    let rsa = inst.keygen("strong", "rsa", Some(3072));
    let out = inst.ok_stdin(&["key", "add", "bob", "--json"], &inst.pubkey("strong"));
    let added: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(added["fingerprint"], ssh_keygen_fingerprint(&rsa).as_str());
    assert_eq!(added["algorithm"], "ssh-rsa");

    inst.keygen("later", "ecdsa", None);
    let run = inst.run_stdin(&["key", "add", "bob", "--expires", "2001-01-01"], &inst.pubkey("later"));
    check_error(&["key", "add", "--expires"], &run, 2).unwrap();
    assert!(run.2.contains("in the past"), "{}", run.2);
    inst.ok_stdin(&["key", "add", "bob", "--expires", "+30d"], &inst.pubkey("later"));
    let keys = inst.json(&["key", "list", "bob", "--json"]);
    assert_eq!(keys.as_array().unwrap().len(), 3);
    assert!(keys[2]["algorithm"].as_str().unwrap().starts_with("ecdsa-sha2-"));
    assert!(keys[2]["expires_on"].is_string(), "{}", keys[2]);
    let table = inst.ok(&["key", "list", "bob"]);
    assert!(table.trim_start().starts_with("FINGERPRINT") && table.contains(&want), "{table}");

    let out = inst.ok(&["key", "remove", "bob", &want]);
    assert_eq!(out, format!("removed {want} from bob\n"));
    inst.fails(&["key", "remove", "bob", &want], 3);
    // Without the SHA256: prefix too.
    let rsa_fp = ssh_keygen_fingerprint(&rsa);
    inst.ok(&["key", "remove", "bob", rsa_fp.trim_start_matches("SHA256:")]);
    let keys = inst.json(&["key", "list", "bob", "--json"]);
    assert_eq!(keys.as_array().unwrap().len(), 1);
    // A removed key may be registered again, to another account.
    inst.ok_stdin(&["key", "add", "alice"], &inst.pubkey("bob"));
}

#[test]
fn a_password_is_stored_but_never_shown_or_logged() {
    let inst = Instance::initialised();
    inst.create("bob", &["--kind", "employee"]);
    assert_eq!(inst.show("bob")["password_set"], false);
    let secret = "Tr0ub4dor&3-horse-staple";
    let out = inst.ok_stdin(&["password", "set", "bob"], &format!("{secret}\nsecond line ignored\n"));
    assert_eq!(out, "password set for bob\n");
    let bob = inst.show("bob");
    assert_eq!(bob["password_set"], true);
    assert!(bob["password_set_at"].is_string());
    assert!(inst.ok(&["user", "show", "bob"]).contains("\npassword      set "));

    let event = inst.json(&["audit", "tail", "-n", "1", "--json"]);
    assert_eq!(event[0]["action"], "password.set");
    assert_eq!(event[0]["changes"][0]["field"], "password");
    for args in [
        &["user", "show", "bob", "--json"][..],
        &["user", "show", "bob"],
        &["user", "list", "--json"],
        &["audit", "tail", "-n", "1000", "--json"],
        &["audit", "tail", "-n", "1000"],
        &["export", "--format", "json"],
        &["export", "--format", "csv"],
    ] {
        let out = inst.ok(args).to_lowercase();
        assert!(!out.contains(&secret.to_lowercase()), "{args:?} shows the password");
        assert!(!out.contains("argon2"), "{args:?} shows the hash");
        assert!(!out.contains("second line"), "{args:?}");
    }
}

#[test]
fn allowlists_take_cidrs_and_bare_addresses() {
    let inst = Instance::initialised();
    inst.create("bob", &["--kind", "employee"]);
    assert!(inst.ok(&["allow", "list", "bob"]).contains("bob has no allowlist"));
    assert_eq!(inst.json(&["allow", "list", "bob", "--json"]), serde_json::json!([]));
    for (given, stored) in [
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("192.0.2.7", "192.0.2.7/32"),
        ("2001:db8::1/32", "2001:db8::/32"),
        ("::1", "::1/128"),
    ] {
        assert_eq!(inst.ok(&["allow", "add", "bob", given]), format!("allowed {stored} for bob\n"));
    }
    let all = ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "::1/128"];
    assert_eq!(inst.json(&["allow", "list", "bob", "--json"]), serde_json::json!(all));
    assert_eq!(inst.ok(&["allow", "list", "bob"]), all.join("\n") + "\n");
    assert_eq!(inst.show("bob")["allowlist"], serde_json::json!(all));

    assert_eq!(
        inst.ok(&["allow", "remove", "bob", "192.0.2.7"]),
        "removed 192.0.2.7/32 from bob's allowlist\n"
    );
    inst.ok(&["allow", "remove", "bob", "10.0.0.0/8"]);
    inst.fails(&["allow", "remove", "bob", "10.0.0.0/8"], 3);
    assert_eq!(
        inst.json(&["allow", "list", "bob", "--json"]),
        serde_json::json!(["2001:db8::/32", "::1/128"])
    );
}

#[test]
fn groups_are_created_filled_listed_and_emptied() {
    let inst = Instance::initialised();
    inst.create("bob", &["--kind", "employee"]);
    inst.create("carol", &["--kind", "employee"]);
    let groups = inst.json(&["group", "list", "--json"]);
    assert_eq!(names(&groups, "name"), ["contractors", "interns", "vendors"], "template groups");

    assert_eq!(inst.ok(&["group", "create", "ops"]), "created group ops\n");
    assert_eq!(inst.ok(&["group", "add", "ops", "bob"]), "added bob to ops\n");
    inst.ok(&["group", "add", "ops", "carol"]);
    inst.fails(&["group", "add", "ops", "bob"], 5);
    let groups = inst.json(&["group", "list", "--json"]);
    let ops = groups.as_array().unwrap().iter().find(|g| g["name"] == "ops").unwrap();
    assert_eq!(ops["members"], serde_json::json!(["bob", "carol"]));
    assert_eq!(ops["created_by"], ACTOR);
    assert_eq!(inst.show("bob")["groups"], serde_json::json!(["ops"]));
    let table = inst.ok(&["group", "list"]);
    assert!(table.lines().any(|l| l.split_whitespace().take(2).eq(["ops", "2"])), "{table}");

    assert_eq!(inst.ok(&["group", "remove", "ops", "bob"]), "removed bob from ops\n");
    inst.fails(&["group", "remove", "ops", "bob"], 3);
    let groups = inst.json(&["group", "list", "--json"]);
    let ops = groups.as_array().unwrap().iter().find(|g| g["name"] == "ops").unwrap();
    assert_eq!(ops["members"], serde_json::json!(["carol"]));
    assert_eq!(inst.show("bob")["groups"], serde_json::json!([]));
}

#[test]
fn user_list_filters_by_status_kind_sponsor_project_and_expiry() {
    let inst = Instance::initialised();
    inst.create("bob", &["--kind", "employee"]);
    inst.create("dave", &["--kind", "contractor", "--end", "+10d", "--sponsor", "alice", "--project", "apollo"]);
    inst.create("erin", &["--kind", "partner", "--end", "+200d", "--sponsor", "bob", "--project", "zeus"]);
    let out = inst.create("fay", &["--kind", "employee", "--start", "+30d"]);
    assert!(out.contains("staged"), "{out}");
    inst.create("gus", &["--kind", "intern", "--end", "+20d", "--sponsor", "alice"]);
    inst.ok(&["user", "disable", "gus", "--reason", "paused"]);

    let list = |args: &[&str]| {
        let mut all = vec!["user", "list", "--json"];
        all.extend_from_slice(args);
        names(&inst.json(&all), "username")
    };
    assert_eq!(list(&[]), ["alice", "bob", "dave", "erin", "fay", "gus"]);
    assert_eq!(list(&["--status", "active"]), ["alice", "bob", "dave", "erin"]);
    assert_eq!(list(&["--status", "STAGED"]), ["fay"]);
    assert_eq!(list(&["--status", "disabled"]), ["gus"]);
    assert_eq!(list(&["--status", "deleted"]), Vec::<String>::new());
    assert_eq!(list(&["--kind", "contractor"]), ["dave"]);
    assert_eq!(list(&["--kind", "employee"]), ["alice", "bob", "fay"]);
    assert_eq!(list(&["--sponsor", "alice"]), ["dave", "gus"]);
    assert_eq!(list(&["--sponsor", "bob"]), ["erin"]);
    assert_eq!(list(&["--project", "apollo"]), ["dave"]);
    assert_eq!(list(&["--expiring-within", "30"]), ["dave"], "gus is disabled");
    assert_eq!(list(&["--expiring-within", "365"]), ["dave", "erin"]);
    assert_eq!(list(&["--sponsor", "alice", "--status", "active"]), ["dave"]);
    assert_eq!(list(&["--kind", "partner", "--sponsor", "alice"]), Vec::<String>::new());

    let table = inst.ok(&["user", "list", "--kind", "contractor"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].trim_start().starts_with("USERNAME"), "{table}");
    assert!(lines[1].trim_start().starts_with("dave") && lines[1].contains("(10d)"), "{table}");
    assert_eq!(lines.last(), Some(&"1 account(s)"));
    assert_eq!(inst.ok(&["user", "list", "--project", "nope"]), "no accounts match\n");
}

#[test]
fn the_audit_trail_records_who_did_what_to_whom() {
    let inst = Instance::initialised();
    inst.create("bob", &["--kind", "contractor", "--end", "+30d"]);
    inst.create("carol", &["--kind", "employee"]);
    inst.ok(&["user", "disable", "bob", "--reason", "contract ended"]);
    inst.keygen("carol", "ed25519", None);
    inst.ok_stdin(&["key", "add", "carol"], &inst.pubkey("carol"));
    inst.ok_stdin(&["password", "set", "bob"], "a long enough secret\n");

    let events = inst.json(&["audit", "tail", "--json"]);
    let events = events.as_array().unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions[0], "system.init");
    assert_eq!(&actions[actions.len() - 5..], ["user.create", "user.create", "user.disable", "key.add", "password.set"]);
    for pair in events.windows(2) {
        assert_eq!(pair[1]["seq"].as_u64(), pair[0]["seq"].as_u64().map(|s| s + 1));
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "hash chain");
    }
    for e in events {
        assert_eq!(e["actor"], ACTOR, "{e}");
        assert_eq!(e["source"], "cli", "{e}");
        assert!(e["changes"].is_array(), "{e}");
    }
    let find = |action: &str, target: &str| {
        events
            .iter()
            .find(|e| e["action"] == action && e["target"] == target)
            .unwrap_or_else(|| panic!("no {action} {target}"))
    };
    let created = find("user.create", "bob");
    let fields: Vec<String> = names(&created["changes"], "field");
    assert!(fields.iter().any(|f| f == "kind") && fields.iter().any(|f| f == "end_date"), "{fields:?}");
    let disabled = find("user.disable", "bob");
    assert_eq!(disabled["detail"], "contract ended");
    let status = disabled["changes"].as_array().unwrap().iter().find(|c| c["field"] == "status").unwrap();
    assert_eq!((&status["old"], &status["new"]), (&Value::from("active"), &Value::from("disabled")));
    assert_eq!(find("key.add", "carol")["changes"][0]["new"]["fingerprint"], ssh_keygen_fingerprint(&inst.path("carol.pub")).as_str());
    let password = find("password.set", "bob").to_string();
    assert!(!password.contains("a long enough secret") && !password.contains("argon2"), "{password}");

    let bob = inst.json(&["audit", "tail", "--target", "bob", "--json"]);
    assert_eq!(names(&bob, "action"), ["user.create", "user.disable", "password.set"]);
    let last = inst.json(&["audit", "tail", "-n", "2", "--json"]);
    assert_eq!(names(&last, "action"), ["key.add", "password.set"]);
    let keys = inst.json(&["audit", "tail", "--action", "key.", "--json"]);
    assert_eq!(names(&keys, "target"), ["alice", "carol"]);
    assert_eq!(inst.json(&["audit", "tail", "--actor", "someone", "--json"]), serde_json::json!([]));
    let text = inst.ok(&["audit", "tail", "-n", "1"]);
    assert!(text.starts_with('#') && text.contains(&format!(" {ACTOR} password.set bob ")), "{text}");
    let verify = inst.json(&["audit", "verify", "--json"]);
    assert_eq!(verify["events"].as_u64(), events.last().unwrap()["seq"].as_u64());
    assert_eq!(verify["broken"], Value::Null);
}

#[test]
fn the_offline_cli_refuses_a_database_another_process_holds() {
    let inst = Instance::initialised();
    {
        let _held = tenure::store::SledStore::open(&inst.data_dir()).expect("open the store");
        for args in [&["user", "list"][..], &["user", "create", "bob", "--email", "b@example.com", "--display-name", "B", "--kind", "employee"], &["check"]] {
            let run = inst.run(args);
            check_error(args, &run, 1).unwrap();
            assert!(run.2.contains("in use by a running tenure server"), "{args:?}: {}", run.2);
        }
        let run = inst.run(&["init", "--admin", "alice"]);
        check_error(&["init"], &run, 1).unwrap();
        assert!(run.2.contains("in use by a running tenure server"), "{}", run.2);
    }
    // Once the holder lets go, nothing was half-written.
    assert_eq!(names(&inst.json(&["user", "list", "--json"]), "username"), ["alice"]);
    inst.ok(&["check"]);
}

#[test]
fn a_bad_config_is_refused_with_the_line_and_key() {
    let inst = Instance::new();
    let cases: [(&str, &[&str]); 4] = [
        ("[server]\ndata_dir = \"data\"\nbogus = 1\n", &["line 3", "bogus"]),
        ("[policy]\ninactivity_days = \"ninety\"\n", &["line 2"]),
        ("[server]\nlisten = [\"nowhere\"]\n", &["line 2", "server.listen"]),
        ("\n[[custom_fields]]\nname = \"cc\"\npattern = \"([\"\n", &["line 2", "pattern"]),
    ];
    for (text, wanted) in cases {
        std::fs::write(&inst.config, text).unwrap();
        for args in [&["user", "list"][..], &["init", "--admin", "alice"]] {
            let run = inst.run(args);
            check_error(args, &run, 1).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            for w in wanted {
                assert!(run.2.contains(w), "{text:?}: {} lacks {w}", run.2);
            }
        }
    }
    assert!(!inst.data_dir().exists(), "nothing created from a bad config");
    let missing = inst.path("nope.toml");
    let run = std::process::Command::new(BIN)
        .args(["--config", missing.to_str().unwrap(), "user", "list"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).starts_with("error: cannot read config"));
}
