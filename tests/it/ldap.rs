//! The LDAP connector against real peers: Debian's slapd (ppolicy with
//! `pwdLockout: TRUE`, memberof, argon2, the shipped openssh-lpk schema),
//! started on loopback from a slapd.conf in a temp dir, and Dovecot IMAP
//! checking passwords by binding to it (passdb ldap, auth_bind) — what a
//! contractor experiences when tenure disables, expires or deletes them.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

pub use crate::slapd::*;

/// Dovecot IMAP in the foreground from its own config and base_dir,
/// checking passwords by binding to the directory as the user.
pub struct Dovecot {
    _dir: tempfile::TempDir,
    pub port: u16,
    _proc: Proc,
}

impl Dovecot {
    pub fn start(ldap_url: &str) -> Dovecot {
        // Dovecot's unprivileged processes must reach the sockets and mail dirs.
        let dir = tempfile::Builder::new()
            .prefix("dovecot")
            .tempdir()
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path().display().to_string();
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let chown = Command::new("chown")
            .args(["dovecot:dovecot", &format!("{d}/mail")])
            .status()
            .unwrap();
        assert!(chown.success());
        let port = free_port();
        std::fs::write(
            dir.path().join("ldap.conf.ext"),
            format!(
                "uris = {ldap_url}\nauth_bind = yes\nauth_bind_userdn = uid=%u,{PEOPLE}\nbase = {PEOPLE}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("dovecot.conf"),
            format!(
                "base_dir = {d}/run
state_dir = {d}/state
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_failure_delay = 0
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
log_path = {d}/dovecot.log
mail_location = maildir:{d}/mail/%u
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
passdb {{
  driver = ldap
  args = {d}/ldap.conf.ext
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={d}/mail/%u
}}
"
            ),
        )
        .unwrap();
        let mut cmd = Command::new("/usr/sbin/dovecot");
        cmd.args(["-F", "-c", &format!("{d}/dovecot.conf")]);
        let mut proc = Proc::spawn(&mut cmd);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                proc.running() && Instant::now() < deadline,
                "dovecot did not start: {}{}\n{}",
                proc.stdout.text(),
                proc.stderr.text(),
                std::fs::read_to_string(format!("{d}/dovecot.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Dovecot {
            _dir: dir,
            port,
            _proc: proc,
        }
    }

    /// An IMAP LOGIN as a mail client sends it: true when the server says OK.
    pub fn login(&self, user: &str, password: &str) -> bool {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("* OK"), "greeting: {line}");
        let mut writer = stream;
        write!(writer, "a1 LOGIN \"{user}\" \"{password}\"\r\n").unwrap();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).unwrap();
            assert!(n > 0, "dovecot closed the connection");
            if let Some(rest) = line.strip_prefix("a1 ") {
                let ok = rest.starts_with("OK");
                let _ = write!(writer, "a2 LOGOUT\r\n");
                return ok;
            }
        }
    }
}

/// A tenure server with one LDAP connector named `directory`.
pub struct Tenure {
    pub inst: Instance,
    server: Option<Server>,
    pub key: PathBuf,
}

pub fn connector_block(url: &str, extra: &str) -> String {
    format!(
        "\n[[connectors]]\nname = \"directory\"\ntype = \"ldap\"\nurl = \"{url}\"\nbind_dn = \"{ADMIN_DN}\"\nbind_password_file = \"ldap_password\"\npeople_dn = \"{PEOPLE}\"\ngroups_dn = \"{GROUPS}\"\nscope = {{ kinds = [\"contractor\", \"intern\", \"vendor\", \"volunteer\", \"partner\"] }}\non_disable = \"disable\"\non_delete = \"delete\"\ntimeout_seconds = 5\nattributes = {{ title = \"{{project}}\" }}\n{extra}"
    )
}

impl Tenure {
    pub fn start(url: &str, extra: &str) -> Tenure {
        Tenure::start_block(&connector_block(url, extra))
    }

    /// A tenure server with this `[[connectors]]` block.
    pub fn start_block(block: &str) -> Tenure {
        let inst = Instance::initialised();
        std::fs::write(inst.path("ldap_password"), format!("{ADMIN_PW}\n")).unwrap();
        let mut config = std::fs::read_to_string(&inst.config).unwrap();
        config.push_str(block);
        std::fs::write(&inst.config, config).unwrap();
        let server = Some(inst.serve());
        let key = inst.path("alice");
        Tenure { inst, server, key }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("tenure is running")
    }

    pub fn ok(&self, line: &str) -> String {
        self.ok_in(line, None)
    }

    pub fn ok_in(&self, line: &str, stdin: Option<&str>) -> String {
        let (code, out, err) = self.server().exec("alice", &self.key, line, stdin);
        assert!(code == 0, "`{line}` exited {code}\n{out}\n{err}");
        out
    }

    pub fn json(&self, line: &str) -> Value {
        let out = self.ok(line);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("`{line}`: {e}: {out}"))
    }

    pub fn link(&self, user: &str) -> Option<Value> {
        self.json("connector status directory --json")["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["account"] == user)
            .cloned()
    }

    pub fn in_sync(&self, user: &str) -> bool {
        self.link(user).is_some_and(|l| l["status"] == "in_sync")
            && self.json("connector status directory --json")["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|j| j["account"] != user)
    }

    pub fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.terminate(Duration::from_secs(10));
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.server = Some(self.inst.serve());
    }
}

const PASSWORD: &str = "Correct-Horse-Battery-9";

#[test]
fn a_contractor_reads_mail_with_the_tenure_password_until_disabled_expired_or_deleted() {
    let mut slapd = Slapd::start();
    let dovecot = Dovecot::start(&slapd.url());
    let mut t = Tenure::start(&slapd.url(), "");
    t.ok("group create devs");
    t.ok("user create carl --email carl@x.io --display-name 'Carl de Vries' --kind contractor --end +30d --sponsor alice --group devs --project apollo");
    t.ok_in("password set carl", Some(&format!("{PASSWORD}\n")));
    t.inst.keygen("carl", "ed25519", None);
    let carl_key = t.inst.pubkey("carl");
    t.ok_in("key add carl", Some(&carl_key));
    t.ok("user create erin --email erin@x.io --display-name Erin --kind employee");

    // The entry: posix, keys, tenure's argon2 hash, dates, group.
    let carl_dn = format!("uid=carl,{PEOPLE}");
    eventually("carl in the directory", || {
        t.in_sync("carl")
            && slapd
                .person("carl")
                .is_some_and(|e| one(&e, "sshPublicKey").starts_with("ssh-ed25519 "))
    });
    let e = slapd.person("carl").unwrap();
    let classes = one(&e, "objectClass");
    for class in ["inetOrgPerson", "posixAccount", "ldapPublicKey"] {
        assert!(classes.contains(class), "{classes}");
    }
    assert_eq!(one(&e, "cn"), "Carl de Vries");
    assert_eq!(one(&e, "sn"), "Vries");
    assert_eq!(one(&e, "mail"), "carl@x.io");
    assert_eq!(one(&e, "title"), "apollo");
    assert_eq!(one(&e, "uidNumber"), "10000");
    assert_eq!(one(&e, "gidNumber"), "10000");
    assert_eq!(one(&e, "homeDirectory"), "/home/carl");
    assert!(one(&e, "userPassword").starts_with("{ARGON2}$argon2id$"));
    let end = (chrono::Utc::now().date_naive() + chrono::Duration::days(31))
        .format("%Y%m%d000000Z")
        .to_string();
    assert_eq!(one(&e, "pwdEndTime"), end, "the day after the end date");
    assert_eq!(one(&e, "pwdAccountLockedTime"), "");
    assert_eq!(
        carl_key.split_whitespace().take(2).collect::<Vec<_>>(),
        one(&e, "sshPublicKey")
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
    );
    assert_eq!(slapd.members("devs"), [carl_dn.clone()]);
    assert_eq!(one(&e, "memberOf"), format!("cn=devs,{GROUPS}"));
    assert!(slapd.person("erin").is_none(), "employees are out of scope");
    let link = t.link("carl").unwrap();
    assert_eq!(link["target_id"], carl_dn.as_str());
    assert!(t
        .ok("user show carl")
        .contains(&format!("directory in_sync id {carl_dn}")));

    // The contractor logs in to mail with the password set in tenure.
    assert!(dovecot.login("carl", PASSWORD));
    assert!(!dovecot.login("carl", "not-the-password"));

    // Disabled in tenure: the directory locks the entry, mail refuses.
    t.ok("user disable carl --reason 'contract paused'");
    eventually("carl locked", || {
        slapd
            .person("carl")
            .is_some_and(|e| one(&e, "pwdAccountLockedTime") == "000001010000Z")
    });
    assert!(!dovecot.login("carl", PASSWORD));
    // Enabled again: back in.
    t.ok("user enable carl");
    eventually("carl unlocked", || {
        slapd
            .person("carl")
            .is_some_and(|e| one(&e, "pwdAccountLockedTime").is_empty())
    });
    assert!(dovecot.login("carl", PASSWORD));

    // The end date is the directory's own: with tenure stopped, a directory
    // whose clock is past the end date refuses the login by itself.
    t.stop();
    slapd.stop();
    slapd.run(Some("+35d"));
    assert!(!dovecot.login("carl", PASSWORD), "pwdEndTime is enforced");
    slapd.stop();
    slapd.run(None);
    assert!(dovecot.login("carl", PASSWORD));

    // And tenure's own sweep after the end date (its clock moved on) locks
    // the entry as soon as tenure runs again.
    t.inst.set_faketime(Some("+35d"));
    let swept = t.inst.ok(&["lifecycle", "run"]);
    assert!(swept.contains("carl"), "{swept}");
    t.inst.set_faketime(None);
    t.restart();
    eventually("carl locked after expiry", || {
        t.in_sync("carl")
            && slapd
                .person("carl")
                .is_some_and(|e| one(&e, "pwdAccountLockedTime") == "000001010000Z")
    });
    assert!(!dovecot.login("carl", PASSWORD));

    // Deleted: the entry and its membership go (on_delete = "delete").
    t.ok("user extend carl --end +60d");
    t.ok("user enable carl");
    eventually("carl back", || {
        slapd
            .person("carl")
            .is_some_and(|e| one(&e, "pwdAccountLockedTime").is_empty())
    });
    assert!(dovecot.login("carl", PASSWORD));
    t.ok("user delete carl");
    eventually("carl's entry removed", || slapd.person("carl").is_none());
    assert!(!dovecot.login("carl", PASSWORD));
    assert!(slapd.members("devs").is_empty());

    // Restored and enabled: re-created with the same uidNumber and password.
    t.ok("user restore carl");
    t.ok("user enable carl");
    eventually("carl re-created", || {
        t.in_sync("carl")
            && slapd
                .person("carl")
                .is_some_and(|e| one(&e, "pwdAccountLockedTime").is_empty())
    });
    assert_eq!(one(&slapd.person("carl").unwrap(), "uidNumber"), "10000");
    assert!(dovecot.login("carl", PASSWORD));

    // Purged: gone for good, and so is the link.
    t.ok("user delete carl");
    t.ok("user purge carl --yes");
    eventually("carl purged", || {
        slapd.person("carl").is_none() && t.link("carl").is_none()
    });
    assert!(!dovecot.login("carl", PASSWORD));

    let trail = t.ok("audit tail -n 500 --action connector.apply --json");
    assert!(trail.contains("system:connector") && trail.contains("directory disable"));
}

#[test]
fn a_down_directory_loses_nothing_and_a_wrong_bind_password_is_a_clear_status() {
    let mut slapd = Slapd::start();
    let t = Tenure::start(&slapd.url(), "");
    t.ok("user create dora --email dora@x.io --display-name Dora --kind vendor --end +90d --sponsor alice");
    eventually("dora in sync", || t.in_sync("dora"));

    // The directory goes down while 100 changes are made.
    slapd.stop();
    for i in 1..=100 {
        t.ok(&format!("user update dora --project p{i:03}"));
    }
    eventually("dora failed", || {
        t.link("dora").is_some_and(|l| {
            l["status"] == "failed"
                && l["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("cannot reach ldap://127.0.0.1"))
        })
    });
    let status = t.json("connector status directory --json");
    let queued = status["jobs"].as_array().unwrap().len();
    assert_eq!(queued, 100, "nothing lost: {status}");

    // Back up: every change goes through, in order.
    slapd.run(None);
    t.ok("connector retry directory");
    eventually("dora in sync again", || t.in_sync("dora"));
    assert_eq!(one(&slapd.person("dora").unwrap(), "title"), "p100");
    let trail: Value = t.json("audit tail -n 1000 --action connector.apply --target dora --json");
    let ids: Vec<u64> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let detail = e["detail"].as_str()?;
            detail
                .strip_prefix("directory update #")
                .and_then(|n| n.parse().ok())
        })
        .collect();
    assert_eq!(ids.len(), 100, "{trail}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");

    // A wrong bind password: a clear status, the server keeps serving.
    std::fs::write(t.inst.path("ldap_password"), "wrong\n").unwrap();
    slapd.stop();
    slapd.run(None);
    t.ok("user update dora --project p101");
    eventually("the bind refusal in the status", || {
        t.link("dora").is_some_and(|l| {
            l["status"] == "failed"
                && l["last_error"].as_str().is_some_and(|e| {
                    e.contains(&format!("bind as {ADMIN_DN} refused"))
                        && e.contains("invalidCredentials")
                })
        })
    });
    let text = t.ok("connector status directory");
    assert!(text.contains("invalidCredentials"), "{text}");
    let list = t.json("connector list --json");
    assert!(list[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("invalidCredentials"));
    // Fixed: the waiting change goes through.
    std::fs::write(t.inst.path("ldap_password"), format!("{ADMIN_PW}\n")).unwrap();
    t.ok("connector retry directory");
    eventually("p101 applied", || {
        t.in_sync("dora") && one(&slapd.person("dora").unwrap(), "title") == "p101"
    });
}

#[test]
fn reconcile_reports_drift_and_orphans_fixes_what_tenure_owns_and_disables_orphans_only_when_asked()
{
    let slapd = Slapd::start();
    let t = Tenure::start(&slapd.url(), "");
    t.ok("group create devs");
    for (name, extra) in [("carl", "--group devs"), ("gus", ""), ("hal", "")] {
        t.ok(&format!(
            "user create {name} --email {name}@x.io --display-name {name} --kind contractor --end +30d --sponsor alice {extra}"
        ));
    }
    t.ok("user create dan --email dan@x.io --display-name Dan --kind employee");
    t.ok("user disable gus --reason 'on leave'");
    eventually("all three in sync", || {
        ["carl", "gus", "hal"].iter().all(|u| t.in_sync(u))
            && slapd
                .person("gus")
                .is_some_and(|e| !one(&e, "pwdAccountLockedTime").is_empty())
    });

    // Changes made by hand in the directory.
    slapd.modify(&format!(
        "dn: uid=carl,{PEOPLE}\nchangetype: modify\nreplace: mail\nmail: evil@x.io\n\ndn: cn=devs,{GROUPS}\nchangetype: modify\nadd: member\nmember: cn=admin,{BASE}\n-\ndelete: member\nmember: uid=carl,{PEOPLE}\n\ndn: uid=gus,{PEOPLE}\nchangetype: modify\ndelete: pwdAccountLockedTime\n"
    ));
    slapd.ldap("ldapdelete", &[&format!("uid=hal,{PEOPLE}")], "");
    for name in ["mallory", "dan"] {
        slapd.ldap(
            "ldapadd",
            &[],
            &format!("dn: uid={name},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: {name}\nsn: {name}\n"),
        );
    }

    // The dry run reports and changes nothing.
    let dry = t.json("connector reconcile directory --dry-run --json");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["objects"], 4, "{dry}");
    let row = |report: &Value, who: &str| -> Value {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["account"] == who)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let carl = row(&dry, "carl");
    assert_eq!(carl["class"], "drifted", "{dry}");
    let fields: Vec<&str> = carl["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["mail", "groups"], "{carl}");
    assert_eq!(carl["drift"][0]["tenure"], "carl@x.io");
    assert_eq!(carl["drift"][0]["target"], "evil@x.io");
    assert_eq!(row(&dry, "gus")["class"], "enabled_in_target");
    assert_eq!(row(&dry, "hal")["class"], "missing");
    assert!(dry["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["fixing"] == false));
    let unmatched: Vec<(String, String)> = dry["unmatched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["object"].as_str().unwrap().to_string(),
                u["why"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut unmatched = unmatched;
    unmatched.sort();
    assert_eq!(
        unmatched,
        [
            (
                format!("uid=dan,{PEOPLE}"),
                "account 'dan' is not in this connector's scope".to_string()
            ),
            (
                format!("uid=mallory,{PEOPLE}"),
                "no account 'mallory' in tenure".to_string()
            ),
        ]
    );
    assert_eq!(one(&slapd.person("carl").unwrap(), "mail"), "evil@x.io");
    assert!(slapd.person("hal").is_none());

    // The real run fixes what tenure owns and only reports the orphans.
    let text = t.ok("connector reconcile directory");
    assert!(
        text.contains("1 drifted, 1 missing, 1 enabled in target")
            && text.contains("2 unmatched; 3 jobs queued"),
        "{text}"
    );
    assert!(text.contains("no account 'mallory' in tenure"), "{text}");
    eventually("the directory fixed", || {
        ["carl", "gus", "hal"].iter().all(|u| t.in_sync(u))
            && slapd
                .person("carl")
                .is_some_and(|e| one(&e, "mail") == "carl@x.io")
            && slapd
                .members("devs")
                .contains(&format!("uid=carl,{PEOPLE}"))
            && slapd
                .person("gus")
                .is_some_and(|e| one(&e, "pwdAccountLockedTime") == "000001010000Z")
            && slapd.person("hal").is_some()
    });
    assert!(one(&slapd.person("mallory").unwrap(), "pwdAccountLockedTime").is_empty());
    let orphans = t.json("report orphans --json");
    let mallory = orphans
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["problem"] == "target_orphan" && o["username"] == "mallory")
        .unwrap_or_else(|| panic!("{orphans}"));
    assert_eq!(mallory["connector"], "directory");
    assert!(mallory["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("uid=mallory,{PEOPLE}")));

    // Nothing left to fix; with --disable-unmatched the orphans are locked.
    let again = t.json("connector reconcile directory --disable-unmatched --json");
    assert_eq!(again["in_sync"], 3, "{again}");
    assert!(again["rows"].as_array().unwrap().is_empty());
    assert!(again["unmatched"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["disabled"] == true));
    assert_eq!(
        one(&slapd.person("mallory").unwrap(), "pwdAccountLockedTime"),
        "000001010000Z"
    );
    let trail = t.ok("audit tail -n 50 --action connector.reconcile");
    assert!(trail.contains("2 unmatched disabled"), "{trail}");

    let (code, _, err) = t
        .server()
        .exec("alice", &t.key, "connector reconcile nosuch", None);
    assert_eq!(
        (code, err.trim()),
        (3, "error: no connector named 'nosuch'")
    );
}

#[test]
fn on_delete_move_parks_the_entry_restore_brings_it_back_and_a_foreign_entry_is_disputed_until_adopted(
) {
    let slapd = Slapd::start();
    let deleted = format!("ou=deleted,{BASE}");
    slapd.ldap(
        "ldapadd",
        &[],
        &format!("dn: {deleted}\nobjectClass: organizationalUnit\nou: deleted\n"),
    );
    let block = connector_block(&slapd.url(), &format!("deleted_dn = \"{deleted}\"\n"))
        .replace("on_delete = \"delete\"", "on_delete = \"move\"");
    let t = Tenure::start_block(&block);
    t.ok("group create devs");
    t.ok("user create carl --email carl@x.io --display-name Carl --kind contractor --end +30d --sponsor alice --group devs");
    t.ok_in("password set carl", Some(&format!("{PASSWORD}\n")));
    let (live, parked) = (format!("uid=carl,{PEOPLE}"), format!("uid=carl,{deleted}"));
    eventually("carl in the directory", || {
        t.in_sync("carl") && slapd.binds(&live, PASSWORD)
    });
    let uid_number = one(&slapd.person("carl").unwrap(), "uidNumber");

    // Deleted: moved under deleted_dn, locked, out of its groups.
    t.ok("user delete carl");
    eventually("carl moved", || {
        t.in_sync("carl") && slapd.person("carl").is_none()
    });
    let moved = slapd.search(&deleted, "(uid=carl)");
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].0, parked);
    assert_eq!(one(&moved[0].1, "pwdAccountLockedTime"), "000001010000Z");
    assert_eq!(one(&moved[0].1, "uidNumber"), uid_number);
    assert!(slapd.members("devs").is_empty());
    assert!(!slapd.binds(&parked, PASSWORD));
    assert_eq!(t.link("carl").unwrap()["target_id"], parked.as_str());
    // A reconcile finds it where it belongs: in sync, not an orphan.
    let dry = t.json("connector reconcile directory --dry-run --json");
    assert_eq!(
        (dry["in_sync"].as_u64(), dry["objects"].as_u64()),
        (Some(1), Some(1)),
        "{dry}"
    );
    assert!(dry["unmatched"].as_array().unwrap().is_empty(), "{dry}");

    // Restored and enabled: moved back, unlocked, in its group, same password.
    t.ok("user restore carl");
    t.ok("user enable carl");
    eventually("carl back", || {
        t.in_sync("carl")
            && slapd
                .person("carl")
                .is_some_and(|e| one(&e, "pwdAccountLockedTime").is_empty())
    });
    assert!(slapd.search(&deleted, "(uid=carl)").is_empty());
    assert_eq!(one(&slapd.person("carl").unwrap(), "uidNumber"), uid_number);
    assert_eq!(slapd.members("devs"), [live.clone()]);
    assert!(slapd.binds(&live, PASSWORD));

    // An entry made by hand under a new account's name, with another
    // uidNumber: someone else's. tenure leaves it alone and says so.
    slapd.ldap(
        "ldapadd",
        &[],
        &format!("dn: uid=dora,{PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: dora\ncn: Dora Other\nsn: Other\nmail: dora.other@elsewhere.io\nuidNumber: 5001\ngidNumber: 5001\nhomeDirectory: /home/dora\n"),
    );
    t.ok("user create dora --email dora@x.io --display-name Dora --kind contractor --end +30d --sponsor alice");
    eventually("dora disputed", || {
        t.link("dora").is_some_and(|l| l["status"] == "disputed")
    });
    let e = slapd.person("dora").unwrap();
    assert_eq!(
        (one(&e, "mail"), one(&e, "uidNumber")),
        ("dora.other@elsewhere.io".into(), "5001".into())
    );
    let why = t.link("dora").unwrap()["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        why.contains("uidNumber 5001") && why.contains("someone else's"),
        "{why}"
    );
    let list = t.json("connector list --json");
    assert_eq!(list[0]["disputed"], 1, "{list}");
    assert!(t.ok("connector status directory").contains("disputed"));
    let dry = t.json("connector reconcile directory --dry-run --json");
    let row = dry["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["account"] == "dora")
        .cloned()
        .unwrap_or_else(|| panic!("{dry}"));
    assert_eq!(row["class"], "disputed");
    // A real reconcile does not overwrite it either.
    let real = t.json("connector reconcile directory --json");
    assert_eq!(real["queued"], 0, "{real}");
    let orphans = t.json("report orphans --json");
    assert!(
        orphans
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["problem"] == "target_disputed" && o["username"] == "dora"),
        "{orphans}"
    );
    assert!(t
        .ok("audit tail -n 50 --action connector.disputed")
        .contains("dora"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        one(&slapd.person("dora").unwrap(), "mail"),
        "dora.other@elsewhere.io"
    );

    // The admin adopts it: tenure takes the entry over.
    let out = t.ok("connector retry directory --user dora --adopt");
    assert!(out.contains("take over"), "{out}");
    eventually("dora adopted", || {
        t.in_sync("dora")
            && slapd
                .person("dora")
                .is_some_and(|e| one(&e, "mail") == "dora@x.io")
    });
    assert_ne!(one(&slapd.person("dora").unwrap(), "uidNumber"), "5001");
    let (code, _, err) =
        t.server()
            .exec("alice", &t.key, "connector retry directory --adopt", None);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_bind_dn_that_may_write_but_not_read_user_password_sets_it_and_reconcile_does_not_call_it_drift(
) {
    let writer = format!("cn=writer,{BASE}");
    let slapd = Slapd::start_with(&format!(
        "access to attrs=userPassword\n  by dn.exact=\"{writer}\" =wxm\n  by anonymous auth\n  by * none\naccess to *\n  by dn.exact=\"{writer}\" manage\n  by * read\n"
    ));
    slapd.ldap(
        "ldapadd",
        &[],
        &format!("dn: {writer}\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole\ncn: writer\nuserPassword: writer-secret\n"),
    );
    let block = connector_block(&slapd.url(), "").replace(ADMIN_DN, &writer);
    let t = Tenure::start_block(&block);
    std::fs::write(t.inst.path("ldap_password"), "writer-secret\n").unwrap();
    t.ok("user create carl --email carl@x.io --display-name Carl --kind contractor --end +30d --sponsor alice");
    t.ok_in("password set carl", Some(&format!("{PASSWORD}\n")));
    let dn = format!("uid=carl,{PEOPLE}");
    eventually("carl can bind", || {
        t.in_sync("carl") && slapd.binds(&dn, PASSWORD)
    });
    // The writer does not see the hash (the rootdn does).
    let seen = Command::new("ldapsearch")
        .args([
            "-x",
            "-H",
            &slapd.url(),
            "-D",
            &writer,
            "-w",
            "writer-secret",
            "-LLL",
            "-b",
            &dn,
            "userPassword",
        ])
        .output()
        .unwrap();
    assert!(seen.status.success());
    assert!(!String::from_utf8_lossy(&seen.stdout).contains("userPassword"));
    assert!(one(&slapd.person("carl").unwrap(), "userPassword").starts_with("{ARGON2}"));

    let report = t.json("connector reconcile directory --json");
    assert_eq!(report["in_sync"], 1, "{report}");
    assert!(report["rows"].as_array().unwrap().is_empty(), "{report}");
    assert!(
        report["notes"][0]
            .as_str()
            .is_some_and(|n| n.contains("userpassword") && n.contains("not compared")),
        "{report}"
    );
    assert!(t
        .ok("connector reconcile directory --dry-run")
        .contains("note: the target does not let tenure read userpassword"));
}
