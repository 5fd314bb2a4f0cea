//! Directory sources against a real slapd on loopback: the binary reads
//! `ou=vendors` (paged), creates, updates, disables and re-enables accounts,
//! and refuses to deprovision on a cut-short read, a stopped directory or
//! a run that would remove too many.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::slapd::*;

const VENDORS: &str = "ou=vendors,dc=example,dc=com";
const READER_DN: &str = "cn=reader,dc=example,dc=com";
const READER_PW: &str = "reader-secret";

fn person_ldif(cn: &str, uid: &str, ou: &str, manager: Option<&str>) -> String {
    let mut s = format!(
        "dn: cn={cn},{ou}\nobjectClass: inetOrgPerson\ncn: {cn}\nsn: {uid}\nuid: {uid}\nmail: {uid}@vendor.example\no: Acme Ltd\n"
    );
    if let Some(m) = manager {
        s.push_str(&format!("manager: {m}\n"));
    }
    s
}

/// slapd with `ou=vendors`, a read-only bind DN (`cn=reader`, limited by
/// `limits` when given) and `count` people `p0…` (no manager).
fn directory(limits: &str, people: &[(&str, &str, Option<&str>)]) -> Slapd {
    let slapd = Slapd::start_with(&format!("limits dn.exact=\"{READER_DN}\" {limits}\n"));
    slapd.ldap(
        "ldapadd",
        &[],
        &format!(
            "dn: {VENDORS}\nobjectClass: organizationalUnit\nou: vendors\n\n\
             dn: {READER_DN}\nobjectClass: person\ncn: reader\nsn: reader\nuserPassword: {READER_PW}\n"
        ),
    );
    for (cn, uid, manager) in people {
        slapd.ldap("ldapadd", &[], &person_ldif(cn, uid, VENDORS, *manager));
    }
    slapd
}

/// An initialised instance with source `corp` reading `slapd`.
fn tenure(slapd: &Slapd, extra: &str) -> Instance {
    let inst = Instance::initialised();
    std::fs::write(inst.path("ldap_password"), format!("{READER_PW}\n")).unwrap();
    let mut config = std::fs::read_to_string(&inst.config).unwrap();
    config.push_str(&format!(
        "\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = 1\nfrom = \"tenure@example.org\"\nsecurity = \"plain\"\n\n\
         [[sources]]\nname = \"corp\"\ntype = \"ldap\"\nurl = \"{url}\"\nbind_dn = \"{READER_DN}\"\n\
         bind_password_file = \"ldap_password\"\nbase_dn = \"{VENDORS}\"\nfilter = \"(objectClass=inetOrgPerson)\"\n\
         page_size = 2\nkind = \"vendor\"\ninterval_minutes = 15\ntimeout_seconds = 5\n\
         map = {{ username = \"uid\", display_name = \"cn\", email = \"mail\", company = \"o\", sponsor = \"manager\" }}\n\
         groups = {{ \"vendor-devs\" = \"developers\" }}\n{extra}\n",
        url = slapd.url()
    ));
    std::fs::write(&inst.config, config).unwrap();
    inst
}

fn sync(inst: &Instance, flags: &str) -> Value {
    inst.json(&sh(&format!("source sync corp --json {flags}")))
}

fn count(run: &Value, key: &str) -> u64 {
    run[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {run}"))
}

fn last_seq(inst: &Instance) -> u64 {
    inst.json(&["audit", "tail", "-n", "1", "--json"])[0]["seq"]
        .as_u64()
        .unwrap()
}

fn uuid_of(slapd: &Slapd, dn: &str) -> String {
    let found = slapd.search(dn, "(objectClass=*)");
    one(&found[0].1, "entryUUID")
}

#[test]
fn an_import_follows_renames_removals_returns_and_group_changes() {
    let boss_dn = format!("cn=Boss One,{VENDORS}");
    let amy_dn = format!("cn=Amy Adams,{VENDORS}");
    let slapd = directory(
        "size.prtotal=unlimited",
        &[
            ("Amy Adams", "amy", Some(&boss_dn)),
            ("Boss One", "boss", None),
            ("Bob Builder", "bob", Some(&amy_dn)),
        ],
    );
    let bob_dn = format!("cn=Bob Builder,{VENDORS}");
    slapd.ldap(
        "ldapadd",
        &[],
        &format!(
            "dn: cn=vendor-devs,{GROUPS}\nobjectClass: groupOfNames\ncn: vendor-devs\nmember: {amy_dn}\nmember: {bob_dn}\n"
        ),
    );
    // Someone outside the base is not read.
    slapd.ldap(
        "ldapadd",
        &[],
        &person_ldif("Zed Outside", "zed", PEOPLE, None),
    );
    let inst = tenure(&slapd, "max_deprovision_percent = 50");

    let run = sync(&inst, "");
    assert_eq!(run["outcome"], "ok", "{run}");
    assert_eq!(
        (count(&run, "read"), count(&run, "created")),
        (3, 3),
        "{run}"
    );
    let amy = inst.show("amy");
    assert_eq!(amy["sponsor"], "boss");
    assert_eq!(amy["kind"], "vendor");
    assert_eq!(amy["company"], "Acme Ltd");
    assert_eq!(amy["display_name"], "Amy Adams");
    assert_eq!(amy["groups"], serde_json::json!(["developers"]));
    assert_eq!(amy["created_by"], "system:source:corp");
    assert_eq!(amy["source"]["id"], uuid_of(&slapd, &amy_dn));
    assert!(
        amy["end_date"].is_string(),
        "the vendor policy gives an end date: {amy}"
    );
    assert_eq!(inst.show("bob")["sponsor"], "amy");
    assert_eq!(inst.run(&["user", "show", "zed"]).0, 3);

    // Nothing changed in the directory: nothing written.
    let before = last_seq(&inst);
    let run = sync(&inst, "");
    assert_eq!(count(&run, "unchanged"), 3, "{run}");
    assert_eq!(
        last_seq(&inst),
        before,
        "a run with nothing changed writes no audit event"
    );

    // Directory fields are read-only here; tenure's own are not.
    let err = inst.fails(&sh("user update amy --display-name Someone"), 5);
    assert!(
        err.contains("display_name of amy comes from source corp"),
        "{err}"
    );
    inst.sh("user update amy --notes badge-7");

    // Renamed and moved within the scope: the same entryUUID, an update.
    slapd.ldap(
        "ldapadd",
        &[],
        &format!("dn: ou=contract,{VENDORS}\nobjectClass: organizationalUnit\nou: contract\n"),
    );
    let bob_uuid = uuid_of(&slapd, &bob_dn);
    slapd.ldap(
        "ldapmodrdn",
        &["-r", "-s", &format!("ou=contract,{VENDORS}")],
        &format!("{bob_dn}\ncn=Robert Builder\n"),
    );
    let new_bob_dn = format!("cn=Robert Builder,ou=contract,{VENDORS}");
    // The group lists the new DN (as AD does by itself).
    slapd.ldap(
        "ldapmodify",
        &[],
        &format!(
            "dn: cn=vendor-devs,{GROUPS}\nchangetype: modify\ndelete: member\nmember: {bob_dn}\n-\nadd: member\nmember: {new_bob_dn}\n"
        ),
    );
    let run = sync(&inst, "");
    assert_eq!(
        (
            count(&run, "updated"),
            count(&run, "created"),
            count(&run, "disabled")
        ),
        (1, 0, 0),
        "{run}"
    );
    let bob = inst.show("bob");
    assert_eq!(bob["display_name"], "Robert Builder");
    assert_eq!(bob["source"]["id"], bob_uuid);
    assert_eq!(bob["source"]["dn"], new_bob_dn);
    assert_eq!(bob["groups"], serde_json::json!(["developers"]));
    assert_eq!(bob["status"], "active");

    // Group membership follows: bob leaves vendor-devs.
    slapd.ldap(
        "ldapmodify",
        &[],
        &format!("dn: cn=vendor-devs,{GROUPS}\nchangetype: modify\ndelete: member\nmember: {new_bob_dn}\n"),
    );
    let run = sync(&inst, "");
    assert_eq!(count(&run, "updated"), 1, "{run}");
    assert_eq!(inst.show("bob")["groups"], serde_json::json!([]));

    // Deleted from the directory: disabled, source_removed (1 of 3 ≤ 50 %).
    slapd.ldap("ldapdelete", &[], &format!("{new_bob_dn}\n"));
    let run = sync(&inst, "");
    assert_eq!(count(&run, "disabled"), 1, "{run}");
    let bob = inst.show("bob");
    assert_eq!(bob["status"], "disabled");
    assert_eq!(bob["disable_reason"], "source_removed");
    assert_eq!(bob["updated_by"], "system:source:corp");

    // Restored (same entryUUID, as a directory restore keeps it): enabled.
    slapd.ldap(
        "ldapadd",
        &["-e", "relax"],
        &format!(
            "{}entryUUID: {bob_uuid}\n",
            person_ldif(
                "Robert Builder",
                "bob",
                &format!("ou=contract,{VENDORS}"),
                Some(&amy_dn)
            )
        ),
    );
    let run = sync(&inst, "");
    assert_eq!(
        (count(&run, "enabled"), count(&run, "created")),
        (1, 0),
        "{run}"
    );
    assert_eq!(inst.show("bob")["status"], "active");
    // Back into the group: membership follows again.
    slapd.ldap(
        "ldapmodify",
        &[],
        &format!(
            "dn: cn=vendor-devs,{GROUPS}\nchangetype: modify\nadd: member\nmember: {new_bob_dn}\n"
        ),
    );
    sync(&inst, "");
    assert_eq!(
        inst.show("bob")["groups"],
        serde_json::json!(["developers"])
    );

    // Every change by the source, one summary per run.
    let events = inst.json(&["audit", "tail", "-n", "200", "--json"]);
    let events = events.as_array().unwrap();
    let summaries = events
        .iter()
        .filter(|e| e["action"] == "source.sync")
        .count();
    assert_eq!(summaries, 6, "one per run that changed something");
    assert!(events
        .iter()
        .filter(|e| e["action"] == "user.disable" || e["action"] == "user.enable")
        .all(|e| e["actor"] == "system:source:corp"));
}

#[test]
fn a_cut_short_or_unreachable_directory_disables_nobody() {
    let people: Vec<(String, String)> = (0..4)
        .map(|i| (format!("Person {i}"), format!("p{i}")))
        .collect();
    let refs: Vec<(&str, &str, Option<&str>)> = people
        .iter()
        .map(|(cn, uid)| (cn.as_str(), uid.as_str(), None))
        .collect();
    let mut slapd = directory("size.prtotal=unlimited", &refs);
    let inst = tenure(&slapd, "max_deprovision_percent = 100");
    assert_eq!(count(&sync(&inst, ""), "created"), 4);

    // The directory stops answering after 3 entries (the second page of 2
    // is cut short with sizeLimitExceeded): nothing is disabled.
    slapd.stop();
    let conf = slapd.dir.path().join("slapd.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace("size.prtotal=unlimited", "size.prtotal=3"),
    )
    .unwrap();
    slapd.run(None);
    let before = last_seq(&inst);
    let err = inst.fails(&sh("source sync corp --force"), 1);
    assert!(
        err.contains("entries") && err.contains("nothing was changed"),
        "{err}"
    );
    for i in 0..4 {
        assert_eq!(inst.show(&format!("p{i}"))["status"], "active");
    }
    let status = inst.json(&sh("source status corp --json"));
    assert_eq!(status["last_run"]["outcome"], "failed", "{status}");
    let why = status["last_run"]["error"].as_str().unwrap();
    assert!(why.contains("after") && why.contains("entries"), "{why}");
    let events = inst.json(&sh(&format!("audit tail --since {before} --json")));
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["source.failed"]);

    // Frozen (it accepts connections but never answers): the run times out.
    slapd.stop();
    std::fs::write(&conf, text.clone()).unwrap();
    slapd.run(None);
    slapd.signal("STOP");
    let started = std::time::Instant::now();
    let err = inst.fails(&sh("source sync corp --force"), 1);
    slapd.signal("CONT");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "bounded by timeout_seconds"
    );
    for i in 0..4 {
        assert_eq!(inst.show(&format!("p{i}"))["status"], "active");
    }

    // Stopped: the same, and the status says why.
    slapd.stop();
    let err = inst.fails(&sh("source sync corp --force"), 1);
    assert!(err.contains("cannot reach"), "{err}");
    let text = inst.sh("source status corp");
    assert!(
        text.contains("failed") && text.contains("cannot reach"),
        "{text}"
    );
    for i in 0..4 {
        assert_eq!(inst.show(&format!("p{i}"))["status"], "active");
    }
}

#[test]
fn removing_half_is_refused_and_alerted_until_forced() {
    let people: Vec<(String, String)> = (0..4)
        .map(|i| (format!("Person {i}"), format!("p{i}")))
        .collect();
    let refs: Vec<(&str, &str, Option<&str>)> = people
        .iter()
        .map(|(cn, uid)| (cn.as_str(), uid.as_str(), None))
        .collect();
    let slapd = directory("size.prtotal=unlimited", &refs);
    let inst = tenure(&slapd, "");
    assert_eq!(count(&sync(&inst, ""), "created"), 4);
    for i in [2, 3] {
        slapd.ldap("ldapdelete", &[], &format!("cn=Person {i},{VENDORS}\n"));
    }
    let err = inst.fails(&sh("source sync corp"), 5);
    assert!(
        err.contains("disable 2 of the 4") && err.contains("max_deprovision_percent 10%"),
        "{err}"
    );
    assert_eq!(inst.show("p2")["status"], "active");
    let queue = inst.json(&sh("notify queue --json"));
    let alerts: Vec<&Value> = queue
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "source_alert")
        .collect();
    assert_eq!(alerts.len(), 1, "{queue}");
    let refused = inst.json(&sh("audit tail --action source.refused --json"));
    assert_eq!(refused.as_array().unwrap().len(), 1);

    // The dry run prints every change it would make.
    let (code, out, _) = inst.run(&sh("source sync corp --dry-run"));
    assert_eq!(code, 0);
    assert!(
        out.contains("would disable p2: gone from source corp"),
        "{out}"
    );
    assert!(
        out.contains("would disable p3: gone from source corp"),
        "{out}"
    );
    assert!(out.contains("would be refused"), "{out}");

    let run = sync(&inst, "--force");
    assert_eq!(count(&run, "disabled"), 2, "{run}");
    assert_eq!(inst.show("p3")["disable_reason"], "source_removed");
}

#[test]
fn the_server_syncs_on_its_schedule_and_answers_over_ssh() {
    let slapd = directory(
        "size.prtotal=unlimited",
        &[("Amy Adams", "amy", None), ("Boss One", "boss", None)],
    );
    let inst = tenure(&slapd, "");
    let mut server = inst.serve();
    let key = inst.path("alice");
    eventually("the first scheduled sync", || {
        let (code, out, _) = server.exec("alice", &key, "source status corp --json", None);
        code == 0
            && serde_json::from_str::<Value>(&out)
                .is_ok_and(|v| v["last_run"]["by"] == "system:source:corp")
    });
    let (code, out, err) = server.exec("alice", &key, "source status corp --json", None);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["last_run"]["created"], 2, "{status}");
    let (code, out, _) = server.exec("alice", &key, "source list", None);
    assert_eq!(code, 0);
    assert!(out.contains("corp") && out.contains("15 min"), "{out}");
    let (code, out, _) = server.exec("alice", &key, "source sync corp", None);
    assert_eq!(code, 0);
    assert!(out.contains("unchanged 2"), "{out}");
    server.terminate(Duration::from_secs(10));
}
