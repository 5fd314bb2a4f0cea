//! The SCIM connector against a real SCIM 2.0 service provider: PyPI's
//! `scim2-server` on loopback (scripts/test.sh installs it). Two targets:
//! `app` changes group members by PATCH and deletes users; `legacy` is
//! told to PUT whole groups and only deactivates on delete.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;
use crate::ldap::{eventually, free_port};

const TOKEN: &str = "scim-test-token";

struct ScimServer {
    _proc: Proc,
    base: String,
}

fn scim2_server() -> PathBuf {
    let python = std::env::var("TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/python")
        });
    python.with_file_name("scim2-server")
}

impl ScimServer {
    fn start() -> ScimServer {
        let port = free_port();
        let mut cmd = Command::new(scim2_server());
        cmd.args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
            .args(["--bearer-token", TOKEN, "--tenant", "scim"]);
        let mut proc = Proc::spawn(&mut cmd);
        let base = format!("http://127.0.0.1:{port}/scim/v2");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                proc.running() && Instant::now() < deadline,
                "scim2-server did not start: {}",
                proc.stderr.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ScimServer { _proc: proc, base }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into()
    }

    fn get(&self, path: &str, filter: Option<&str>) -> Value {
        let mut req = Self::agent()
            .get(format!("{}/{path}", self.base))
            .header("Authorization", &format!("Bearer {TOKEN}"));
        if let Some(f) = filter {
            req = req.query("filter", f);
        }
        let mut resp = req.call().unwrap();
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null)
    }

    fn send(&self, method: &str, path: &str, body: &Value) -> u16 {
        let url = format!("{}/{path}", self.base);
        let a = Self::agent();
        let b = match method {
            "POST" => a.post(&url),
            "PUT" => a.put(&url),
            _ => a.patch(&url),
        };
        b.header("Authorization", &format!("Bearer {TOKEN}"))
            .header("Content-Type", "application/scim+json")
            .send(&body.to_string())
            .unwrap()
            .status()
            .as_u16()
    }

    fn user(&self, name: &str) -> Option<Value> {
        self.get("Users", Some(&format!("userName eq \"{name}\"")))["Resources"]
            .as_array()
            .and_then(|a| a.first().cloned())
    }

    fn members(&self, group: &str) -> Vec<String> {
        self.get("Groups", Some(&format!("displayName eq \"{group}\"")))["Resources"][0]["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

struct Tenure {
    _inst: Instance,
    server: Server,
    key: PathBuf,
}

impl Tenure {
    fn ok(&self, line: &str) -> String {
        let (code, out, err) = self.server.exec("alice", &self.key, line, None);
        assert!(code == 0, "`{line}` exited {code}\n{out}\n{err}");
        out
    }

    fn json(&self, line: &str) -> Value {
        serde_json::from_str(&self.ok(line)).unwrap()
    }

    fn in_sync(&self, connector: &str, user: &str) -> bool {
        let status = self.json(&format!("connector status {connector} --json"));
        status["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["account"] == user && l["status"] == "in_sync")
            && status["jobs"].as_array().unwrap().is_empty()
    }
}

#[test]
fn scim_targets_follow_tenure_users_groups_active_and_delete_and_reconcile() {
    let app = ScimServer::start();
    let legacy = ScimServer::start();
    let inst = Instance::initialised();
    std::fs::write(inst.path("scim_token"), format!("{TOKEN}\n")).unwrap();
    let mut config = std::fs::read_to_string(&inst.config).unwrap();
    config.push_str(&format!(
        "\n[[connectors]]\nname = \"app\"\ntype = \"scim\"\nurl = \"{}\"\nbearer_token_file = \"scim_token\"\non_delete = \"delete\"\ntimeout_seconds = 5\n\n[[connectors]]\nname = \"legacy\"\ntype = \"scim\"\nurl = \"{}\"\nbearer_token_file = \"scim_token\"\non_delete = \"disable\"\npatch = false\ntimeout_seconds = 5\n",
        app.base, legacy.base
    ));
    std::fs::write(&inst.config, config).unwrap();
    let server = inst.serve();
    let t = Tenure {
        key: inst.path("alice"),
        _inst: inst,
        server,
    };
    t.ok("group create devs");
    t.ok("user create vera --email vera@x.io --display-name 'Vera Lint' --kind vendor --end +30d --sponsor alice --group devs");
    eventually("vera in both", || {
        t.in_sync("app", "vera") && t.in_sync("legacy", "vera")
    });
    for target in [&app, &legacy] {
        let u = target.user("vera").expect("vera's user");
        assert_eq!(u["externalId"], "vera");
        assert_eq!(u["active"], true);
        assert_eq!(u["emails"][0]["value"], "vera@x.io");
        assert_eq!(u["name"]["familyName"], "Lint");
        assert_eq!(target.members("devs"), [u["id"].as_str().unwrap()]);
    }
    let vera_id = app.user("vera").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = t.json("user show vera --json");
    let links: Vec<&Value> = shown["links"].as_array().unwrap().iter().collect();
    assert!(links
        .iter()
        .any(|l| l["connector"] == "app" && l["target_id"] == vera_id.as_str()));

    // active follows tenure.
    t.ok("user disable vera --reason paused");
    eventually("vera inactive", || {
        [&app, &legacy]
            .iter()
            .all(|s| s.user("vera").is_some_and(|u| u["active"] == false))
    });
    t.ok("user enable vera");
    eventually("vera active", || {
        [&app, &legacy]
            .iter()
            .all(|s| s.user("vera").is_some_and(|u| u["active"] == true))
    });
    // Group membership out: PATCH on app, PUT of the group on legacy.
    t.ok("group remove devs vera");
    eventually("vera out of devs", || {
        app.members("devs").is_empty() && legacy.members("devs").is_empty()
    });
    t.ok("group add devs vera");
    eventually("vera back in devs", || {
        app.members("devs").len() == 1 && legacy.members("devs").len() == 1
    });

    // Delete follows each connector's setting.
    t.ok("user delete vera");
    eventually("vera deleted in app, deactivated in legacy", || {
        app.user("vera").is_none() && legacy.user("vera").is_some_and(|u| u["active"] == false)
    });

    // Reconcile: a hand edit is drift, a hand-made user is an orphan.
    t.ok("user create walt --email walt@x.io --display-name Walt --kind contractor --end +30d --sponsor alice");
    eventually("walt in app", || t.in_sync("app", "walt"));
    let walt = app.user("walt").unwrap();
    let mut edited = walt.clone();
    edited["displayName"] = json!("Walter the Great");
    edited.as_object_mut().unwrap().remove("meta");
    assert_eq!(
        app.send(
            "PUT",
            &format!("Users/{}", walt["id"].as_str().unwrap()),
            &edited
        ),
        200
    );
    assert_eq!(
        app.send(
            "POST",
            "Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ghost", "active": true})
        ),
        201
    );
    let dry = t.json("connector reconcile app --dry-run --json");
    let walt_row = dry["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["account"] == "walt")
        .cloned()
        .unwrap_or_else(|| panic!("{dry}"));
    assert_eq!(walt_row["class"], "drifted");
    assert_eq!(walt_row["drift"][0]["field"], "displayName");
    assert_eq!(walt_row["drift"][0]["target"], "Walter the Great");
    assert_eq!(dry["unmatched"][0]["username"], "ghost", "{dry}");
    assert_eq!(dry["unmatched"][0]["why"], "no account 'ghost' in tenure");
    let text = t.ok("connector reconcile app --disable-unmatched");
    assert!(
        text.contains("1 drifted") && text.contains("1 unmatched disabled"),
        "{text}"
    );
    eventually("walt fixed", || {
        app.user("walt").is_some_and(|u| u["displayName"] == "Walt")
    });
    assert_eq!(app.user("ghost").unwrap()["active"], false);
}

#[test]
fn a_scim_target_gets_the_password_when_set_and_a_user_with_another_external_id_is_disputed() {
    let app = ScimServer::start();
    let inst = Instance::initialised();
    std::fs::write(inst.path("scim_token"), format!("{TOKEN}\n")).unwrap();
    let mut config = std::fs::read_to_string(&inst.config).unwrap();
    config.push_str(&format!(
        "\n[[connectors]]\nname = \"app\"\ntype = \"scim\"\nurl = \"{}\"\nbearer_token_file = \"scim_token\"\npasswords = true\ntimeout_seconds = 5\n",
        app.base
    ));
    std::fs::write(&inst.config, config).unwrap();
    let server = inst.serve();
    let t = Tenure {
        key: inst.path("alice"),
        _inst: inst,
        server,
    };
    // scim2-server keeps the password (never returns it) and filters on it:
    // `password eq "..."` finds the user only with the right one.
    let with_password = |pw: &str| -> u64 {
        app.get("Users", Some(&format!("password eq \"{pw}\"")))["totalResults"]
            .as_u64()
            .unwrap_or(0)
    };
    t.ok("user create vera --email vera@x.io --display-name Vera --kind vendor --end +30d --sponsor alice");
    eventually("vera there", || t.in_sync("app", "vera"));
    let set = |pw: &str| {
        let (code, out, err) = t.server.exec(
            "alice",
            &t.key,
            "password set vera",
            Some(&format!("{pw}\n")),
        );
        assert_eq!(code, 0, "{out}{err}");
    };
    // Changed with nothing else: PATCH replace password.
    set("Granite-Willow-Ember-62");
    eventually("the password in the target", || {
        with_password("Granite-Willow-Ember-62") == 1
    });
    // Changed again: the old one no longer matches.
    set("Cobalt-Thistle-Raven-18");
    eventually("the new password in the target", || {
        with_password("Cobalt-Thistle-Raven-18") == 1
    });
    assert_eq!(with_password("Granite-Willow-Ember-62"), 0);
    assert!(t.in_sync("app", "vera"));

    // A user someone else made under a tenure account's name, with their
    // own externalId: disputed, left alone until adopted.
    let made = app.send(
        "POST",
        "Users",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "zed", "externalId": "hr-4711", "displayName": "Zed Other"}),
    );
    assert_eq!(made, 201);
    t.ok("user create zed --email zed@x.io --display-name Zed --kind vendor --end +30d --sponsor alice");
    eventually("zed disputed", || {
        t.json("connector status app --json")["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["account"] == "zed" && l["status"] == "disputed")
    });
    assert_eq!(app.user("zed").unwrap()["externalId"], "hr-4711");
    assert_eq!(t.json("connector list --json")[0]["disputed"], 1);
    t.ok("connector retry app --user zed --adopt");
    eventually("zed adopted", || {
        t.in_sync("app", "zed")
            && app
                .user("zed")
                .is_some_and(|u| u["externalId"] == "zed" && u["displayName"] == "Zed")
    });
}
