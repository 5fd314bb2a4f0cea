//! Account requests end to end over ssh: a sponsor asks (checked like a
//! creation), an admin approves (created in the decision's transaction) or
//! denies (the requester told by a real SMTP server), an approval after the
//! username was taken fails and leaves the request open, and a CSV asked for
//! as one request is created as one unit.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::notify::{free_port, mails, python, smtp_server, wait_for};

fn as_user(server: &Server, inst: &Instance, who: &str, line: &str, stdin: Option<&str>) -> Run {
    server.exec(who, &inst.path(who), line, stdin)
}

fn requests(server: &Server, inst: &Instance) -> Vec<Value> {
    let (code, out, err) = as_user(server, inst, "alice", "request list --json", None);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn exists(server: &Server, inst: &Instance, name: &str) -> bool {
    as_user(server, inst, "alice", &format!("user show {name}"), None).0 == 0
}

#[test]
fn a_sponsor_asks_an_admin_decides_and_a_name_taken_meanwhile_leaves_the_request_open() {
    let python = python();
    let inst = Instance::initialised();
    let smtp_port = free_port();
    let maildir = inst.path("mail");
    let _smtp = python
        .as_deref()
        .map(|p| smtp_server(p, smtp_port, &maildir));
    if python.is_some() {
        let mut config = std::fs::read_to_string(&inst.config).unwrap();
        config = config.replace("retry_seconds = 30", "retry_seconds = 1");
        config.push_str(&format!(
            "\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nfrom = \"tenure <tenure@example.com>\"\nsecurity = \"plain\"\n"
        ));
        std::fs::write(&inst.config, config).unwrap();
    }
    inst.create("sam", "--kind employee --role sponsor");
    inst.sh("user update sam --email sam@acme.example");
    inst.keygen("sam", "ed25519", None);
    inst.ok_stdin(&["key", "add", "sam"], &inst.pubkey("sam"));
    inst.create("uma", "--kind employee --role user");
    inst.sh("group create crew");
    inst.keygen("uma", "ed25519", None);
    inst.ok_stdin(&["key", "add", "uma"], &inst.pubkey("uma"));
    let server = inst.serve();

    // Checked exactly like a creation: a contractor without an end date is refused.
    let run = as_user(
        &server,
        &inst,
        "sam",
        "request create neo --email neo@x.example --display-name Neo --kind contractor --reason 'new hire'",
        None,
    );
    assert_eq!(run.0, 2, "{run:?}");
    assert_eq!(run.2.lines().count(), 1, "{run:?}");
    // A plain user may not ask.
    let run = as_user(
        &server,
        &inst,
        "uma",
        "request create neo --email neo@x.example --display-name Neo --kind employee --reason x",
        None,
    );
    assert_eq!(run.0, 4, "{run:?}");
    // A taken username or email is a conflict.
    let run = as_user(
        &server,
        &inst,
        "sam",
        "request create uma --email u2@x.example --display-name U --kind employee --reason x",
        None,
    );
    assert_eq!(run.0, 5, "{run:?}");

    let run = as_user(
        &server,
        &inst,
        "sam",
        "request create neo --email neo@x.example --display-name Neo --kind contractor --end +60d --sponsor sam --company Acme --reason 'new hire'",
        None,
    );
    assert_eq!(run.0, 0, "{run:?}");
    assert!(run.1.contains("pending"), "{run:?}");
    assert!(!exists(&server, &inst, "neo"), "nothing reserved");
    // Asked again (same name, or same email): a conflict.
    let run = as_user(
        &server,
        &inst,
        "sam",
        "request create neo --email other@x.example --display-name Neo --kind employee --reason again",
        None,
    );
    assert_eq!(run.0, 5, "{run:?}");
    assert!(run.2.contains("already requested"), "{run:?}");
    let run = as_user(
        &server,
        &inst,
        "sam",
        "request create neo2 --email NEO@x.example --display-name Neo --kind employee --reason again",
        None,
    );
    assert_eq!(run.0, 5, "{run:?}");

    // The list shows who asked, when and why.
    let list = requests(&server, &inst);
    let neo = list.iter().find(|r| r["kind"] == "create").unwrap().clone();
    assert_eq!(neo["account"], "neo");
    assert_eq!(neo["requested_by"], "sam");
    assert_eq!(neo["reason"], "new hire");
    assert_eq!(neo["status"], "pending");
    let id = neo["id"].as_u64().unwrap();
    let (_, table, _) = as_user(&server, &inst, "alice", "request list", None);
    assert!(
        table.contains("create") && table.contains("new hire"),
        "{table}"
    );

    // The name is taken meanwhile: approval fails clearly, the request stays open.
    let run = as_user(
        &server,
        &inst,
        "alice",
        "user create neo --email neo.other@x.example --display-name 'Other Neo' --kind employee",
        None,
    );
    assert_eq!(run.0, 0, "{run:?}");
    let run = as_user(
        &server,
        &inst,
        "alice",
        &format!("request approve {id}"),
        None,
    );
    assert_eq!(run.0, 5, "{run:?}");
    assert!(
        run.2.contains(&format!("request #{id} cannot be approved"))
            && run.2.contains("already exists"),
        "{run:?}"
    );
    let list = requests(&server, &inst);
    assert_eq!(
        list.iter().find(|r| r["id"] == id).unwrap()["status"],
        "pending"
    );
    // Sam only reads their own requests; only an admin decides.
    let run = as_user(
        &server,
        &inst,
        "sam",
        &format!("request approve {id}"),
        None,
    );
    assert_eq!(run.0, 4, "{run:?}");
    // Denied with a reason: the requester is told.
    let run = as_user(
        &server,
        &inst,
        "alice",
        &format!("request deny {id} --reason 'name taken, ask again'"),
        None,
    );
    assert_eq!(run.0, 0, "{run:?}");

    // A fresh request approved: the account as asked, created by the decision.
    let run = as_user(
        &server,
        &inst,
        "sam",
        "request create trin --email trin@x.example --display-name Trinity --kind contractor --end +60d --sponsor sam --group crew --reason 'second hire'",
        None,
    );
    assert_eq!(run.0, 0, "{run:?}");
    let id2 = requests(&server, &inst)
        .iter()
        .find(|r| r["account"] == "trin")
        .unwrap()["id"]
        .as_u64()
        .unwrap();
    let run = as_user(
        &server,
        &inst,
        "alice",
        &format!("request approve {id2}"),
        None,
    );
    assert_eq!(run.0, 0, "{run:?}");
    let (_, shown, _) = as_user(&server, &inst, "alice", "user show trin --json", None);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["sponsor"], "sam");
    assert_eq!(shown["display_name"], "Trinity");
    assert_eq!(shown["kind"], "contractor");
    let run = as_user(
        &server,
        &inst,
        "alice",
        &format!("request approve {id2}"),
        None,
    );
    assert_eq!(run.0, 5, "approved twice: {run:?}");

    if python.is_some() {
        let denied = wait_for("the denial mail", Duration::from_secs(20), || {
            mails(&maildir)
                .into_iter()
                .find(|m| m.contains(&format!("request #{id} denied")))
        });
        assert!(denied.contains("To: sam@acme.example"), "{denied}");
        assert!(denied.contains("name taken, ask again"), "{denied}");
        let approved = wait_for("the approval mail", Duration::from_secs(20), || {
            mails(&maildir)
                .into_iter()
                .find(|m| m.contains(&format!("request #{id2} approved")))
        });
        assert!(approved.contains("To: sam@acme.example"), "{approved}");
        // The sponsor hears of the created account too.
        wait_for("the creation mail", Duration::from_secs(20), || {
            mails(&maildir)
                .into_iter()
                .find(|m| m.contains("account trin created"))
        });
    }
}

#[test]
fn a_csv_asked_for_as_one_request_is_created_as_one_unit() {
    let inst = Instance::initialised();
    inst.create("sam", "--kind employee --role sponsor");
    inst.keygen("sam", "ed25519", None);
    inst.ok_stdin(&["key", "add", "sam"], &inst.pubkey("sam"));
    let server = inst.serve();
    let mut csv = String::from("username,email,display_name,kind,end_date,sponsor\n");
    for i in 0..50 {
        csv.push_str(&format!(
            "temp{i:02},temp{i:02}@x.example,Temp {i},contractor,+30d,sam\n"
        ));
    }
    // A bad row refuses the whole request, naming the row.
    let bad = format!("{csv}temp99,temp00@x.example,Dup,contractor,+30d,sam\n");
    let run = as_user(
        &server,
        &inst,
        "sam",
        "request import --reason 'summer crew'",
        Some(&bad),
    );
    assert_eq!(run.0, 5, "{run:?}");
    assert!(run.2.contains("row 51"), "{run:?}");
    assert!(requests(&server, &inst).is_empty());

    let run = as_user(
        &server,
        &inst,
        "sam",
        "request import --reason 'summer crew'",
        Some(&csv),
    );
    assert_eq!(run.0, 0, "{run:?}");
    assert!(run.1.contains("50 account(s)"), "{run:?}");
    let list = requests(&server, &inst);
    assert_eq!(list.len(), 1, "one request: {list:#?}");
    assert_eq!(list[0]["kind"], "import");
    assert!(!exists(&server, &inst, "temp00"));
    // One of them is taken meanwhile: nothing is created, the request stays.
    let run = as_user(
        &server,
        &inst,
        "alice",
        "user create temp07 --email t7@x.example --display-name T7 --kind employee",
        None,
    );
    assert_eq!(run.0, 0, "{run:?}");
    let id = list[0]["id"].as_u64().unwrap();
    let run = as_user(
        &server,
        &inst,
        "alice",
        &format!("request approve {id}"),
        None,
    );
    assert_eq!(run.0, 5, "{run:?}");
    assert!(run.2.contains("temp07"), "{run:?}");
    assert!(!exists(&server, &inst, "temp00"), "all or nothing");
    as_user(&server, &inst, "alice", "user delete temp07", None);
    let run = as_user(&server, &inst, "alice", "user purge temp07 --yes", None);
    assert_eq!(run.0, 0, "{run:?}");
    let run = as_user(
        &server,
        &inst,
        "alice",
        &format!("request approve {id}"),
        None,
    );
    assert_eq!(run.0, 0, "{run:?}");
    assert!(exists(&server, &inst, "temp00") && exists(&server, &inst, "temp49"));
    let (_, out, _) = as_user(
        &server,
        &inst,
        "alice",
        "user list --sponsor sam --json",
        None,
    );
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 50);
}
