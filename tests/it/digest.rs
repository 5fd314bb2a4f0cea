//! Notification preferences end to end: a sponsor who asked for a digest
//! gets one mail for the 500 accounts an import created for them, not 500
//! (a real SMTP server, aiosmtpd); a sponsor without one gets a mail each.

use std::time::Duration;

use crate::common::*;
use crate::notify::{free_port, mails, python, smtp_server, wait_for};

fn to(mail: &str, address: &str) -> bool {
    mail.lines()
        .any(|l| l.starts_with("To:") && l.contains(address))
}

#[test]
fn a_sponsor_of_500_imported_accounts_gets_one_digest_not_500_mails() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with aiosmtpd (run ./scripts/test.sh, which installs it)");
        return;
    };
    let inst = Instance::initialised();
    let port = free_port();
    let mut config = std::fs::read_to_string(&inst.config).unwrap();
    config = config
        .replace("retry_seconds = 30", "retry_seconds = 1\ndigest_hours = 0")
        .replace(r#"recipients = ["it-ops@example.com"]"#, "recipients = []")
        // The lifecycle pass runs once, at the start: the digest has its own schedule.
        .replace("interval_seconds = 60", "interval_seconds = 3600");
    config.push_str(&format!(
        "\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nfrom = \"tenure <tenure@example.com>\"\nsecurity = \"plain\"\n"
    ));
    std::fs::write(&inst.config, config).unwrap();
    let maildir = inst.path("mail");
    let _smtp = smtp_server(&python, port, &maildir);
    inst.create("sam", "--kind employee --role sponsor");
    inst.create("sid", "--kind employee --role sponsor");
    inst.keygen("sam", "ed25519", None);
    inst.ok_stdin(&["key", "add", "sam"], &inst.pubkey("sam"));
    let server = inst.serve();
    // The holder sets their own preference.
    let (code, out, err) = server.exec("sam", &inst.path("sam"), "prefs set sam --digest on", None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("digest on"), "{out}");
    let (code, _, _) = server.exec("sam", &inst.path("sam"), "prefs set sid --digest on", None);
    assert_eq!(code, 4, "only the holder or an admin");

    let mut csv = String::from("username,email,display_name,kind,end_date,sponsor\n");
    for i in 0..500 {
        csv.push_str(&format!(
            "crew{i:03},crew{i:03}@x.example,Crew {i},contractor,+30d,sam\n"
        ));
    }
    for i in 0..3 {
        csv.push_str(&format!(
            "solo{i},solo{i}@x.example,Solo {i},contractor,+30d,sid\n"
        ));
    }
    let (code, out, err) = server.exec("alice", &inst.path("alice"), "import", Some(&csv));
    assert_eq!(code, 0, "{out}{err}");

    let digest = wait_for("sam's digest", Duration::from_secs(30), || {
        mails(&maildir)
            .into_iter()
            .find(|m| to(m, "sam@example.com"))
    });
    assert!(digest.contains("500 notices for sam"), "{digest}");
    assert!(
        digest.contains("account crew000 created") && digest.contains("account crew499 created")
    );
    wait_for("sid's three mails", Duration::from_secs(30), || {
        (mails(&maildir)
            .iter()
            .filter(|m| to(m, "sid@example.com"))
            .count()
            == 3)
            .then_some(())
    });
    // Rounds go on every two seconds: nothing more for sam.
    std::thread::sleep(Duration::from_secs(3));
    let all = mails(&maildir);
    assert_eq!(
        all.iter().filter(|m| to(m, "sam@example.com")).count(),
        1,
        "one digest, not 500 mails"
    );
    let (code, out, _) = server.exec(
        "alice",
        &inst.path("alice"),
        "audit tail -n 20 --action notify.digest --json",
        None,
    );
    assert_eq!(code, 0);
    assert!(out.contains("500 notices in one mail"), "{out}");
}
