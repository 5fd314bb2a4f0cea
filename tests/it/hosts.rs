//! Hosts obey tenure (issue 12), proven with a real OpenSSH sshd on
//! loopback: its AuthorizedKeysCommand is the real `tenure authorized-keys`
//! (copied into a root-owned directory, run as `nobody`), logins come from
//! the real OpenSSH client, and OS accounts are made with useradd.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

const STEP: Duration = Duration::from_secs(30);

/// A throwaway directory under /opt (sshd refuses an AuthorizedKeysCommand
/// below /tmp: the directories above it must be root-owned, not writable by
/// others), with the tenure binary copied in; removed on drop, with the OS
/// users made for the test.
pub struct TargetDir {
    pub dir: PathBuf,
    users: Vec<String>,
}

impl TargetDir {
    pub fn new() -> TargetDir {
        let out = Command::new("mktemp")
            .args(["-d", "/opt/tenure-test.XXXXXX"])
            .output()
            .expect("mktemp");
        assert!(out.status.success(), "mktemp -d /opt/...");
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(BIN, dir.join("tenure")).expect("copy the tenure binary");
        std::fs::set_permissions(dir.join("tenure"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        TargetDir { dir, users: vec![] }
    }

    pub fn tenure(&self) -> PathBuf {
        self.dir.join("tenure")
    }

    /// An OS account sshd can log in (unlocked, no password).
    pub fn os_user(&mut self, name: &str) {
        let _ = Command::new("userdel").arg(name).output();
        let ok = Command::new("useradd")
            .args(["-M", "-N", "-s", "/bin/sh", "-d", "/", name])
            .status()
            .expect("useradd");
        assert!(ok.success(), "useradd {name}");
        self.users.push(name.to_string());
        let ok = Command::new("usermod")
            .args(["-p", "*", name])
            .status()
            .expect("usermod");
        assert!(ok.success(), "usermod -p '*' {name}");
    }

    /// `tenure host init` for host `name` against the server on `port`,
    /// into DIR/etc, with the key and cache made the property of `nobody`
    /// (sshd's AuthorizedKeysCommandUser here).
    pub fn host_init(&self, port: u16, name: &str) -> PathBuf {
        let etc = self.dir.join("etc");
        let (code, out, err) = run_bounded(
            Command::new(self.tenure()).args([
                "host",
                "init",
                "--server",
                &format!("127.0.0.1:{port}"),
                "--name",
                name,
                "--out",
                etc.to_str().unwrap(),
            ]),
            None,
            STEP,
        );
        assert_eq!(code, 0, "host init: {err}");
        assert!(
            out.contains("pinned the tenure server's host key SHA256:"),
            "{out}"
        );
        assert!(out.contains(&format!("host add {name}")), "{out}");
        std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(etc.join("cache")).unwrap();
        for p in [etc.join("host_key"), etc.join("cache")] {
            let ok = Command::new("chown")
                .arg("nobody")
                .arg(&p)
                .status()
                .unwrap();
            assert!(ok.success());
        }
        etc.join("host.toml")
    }
}

impl Drop for TargetDir {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = Command::new("userdel").arg(u).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real sshd on loopback with `extra` config lines.
pub struct Sshd {
    pub proc: Proc,
    pub port: u16,
}

impl Sshd {
    pub fn start(target: &TargetDir, extra: &str) -> Sshd {
        std::fs::create_dir_all("/run/sshd").unwrap();
        let key = target.dir.join("ssh_host_ed25519_key");
        if !key.exists() {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key)
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let port = free_port();
        let conf = target.dir.join("sshd_config");
        std::fs::write(
            &conf,
            format!(
                "ListenAddress 127.0.0.1:{port}\nHostKey {key}\nPidFile {pid}\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\n\
                 LogLevel VERBOSE\n{extra}\n",
                key = key.display(),
                pid = target.dir.join("sshd.pid").display(),
            ),
        )
        .unwrap();
        let check = Command::new("/usr/sbin/sshd")
            .args(["-t", "-f"])
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "sshd -t: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let proc = Proc::spawn(
            Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&conf),
        );
        proc.stderr
            .wait_for("sshd listening", STEP, |t| t.contains("Server listening"));
        Sshd { proc, port }
    }

    /// Logs in as `user` with `key` and runs `echo in`: true if it worked.
    pub fn login(&self, user: &str, key: &Path) -> bool {
        let mut cmd = ssh_key(self.port, user, key);
        cmd.arg("127.0.0.1").arg("echo in");
        let (code, out, _) = run_bounded(&mut cmd, None, STEP);
        code == 0 && out.trim() == "in"
    }
}

fn authorized_keys_sshd_lines(target: &TargetDir, host_toml: &Path) -> String {
    format!(
        "AuthorizedKeysFile none\nAuthorizedKeysCommand {} authorized-keys --config {} %u\nAuthorizedKeysCommandUser nobody\n",
        target.tenure().display(),
        host_toml.display()
    )
}

/// `tenure serve` on a given loopback port (a restarted server keeps the
/// address the host pinned).
fn serve_on(inst: &Instance, port: u16) -> Server {
    let mut cmd = inst.command();
    cmd.arg("--config")
        .arg(&inst.config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(inst.dir.path())
        .env("USER", "tester")
        .env_remove("TENURE_CONFIG")
        .env_remove("TENURE_LOG");
    Server::start(&mut cmd)
}

/// Registers the host over ssh as alice (its key line on stdin).
fn host_add(inst: &Instance, server: &Server, host_toml: &Path, name: &str, group: &str) {
    let pubkey = std::fs::read_to_string(host_toml.with_file_name("host_key.pub")).unwrap();
    let (code, out, err) = server.exec(
        "alice",
        &inst.path("alice"),
        &format!("host add {name} --group {group}"),
        Some(&pubkey),
    );
    assert_eq!(code, 0, "host add: {err}");
    assert!(out.contains(&format!("added host {name}")), "{out}");
}

/// A contractor in `groups` with a fresh key (named like the account).
fn contractor(inst: &Instance, name: &str, flags: &str) -> PathBuf {
    inst.create(
        name,
        &format!("--kind contractor --sponsor alice --end +90d {flags}"),
    );
    let key = inst.keygen(name, "ed25519", None);
    inst.ok_stdin(
        &["key", "add", name],
        &std::fs::read_to_string(&key).unwrap(),
    );
    inst.path(name)
}

#[test]
fn sshd_asks_tenure_disable_refuses_the_next_login_and_the_cache_never_outlives_what_it_heard() {
    let inst = Instance::initialised();
    let tag = std::process::id() % 100_000;
    let (bob, carl) = (format!("hb{tag}"), format!("hc{tag}"));
    inst.ok(&["group", "create", "web"]);
    let bob_key = contractor(&inst, &bob, "--group web");
    let carl_key = contractor(&inst, &carl, "");
    // A second key of bob's that expires tomorrow.
    let bob_short = inst.keygen(&format!("{bob}s"), "ed25519", None);
    inst.ok_stdin(
        &["key", "add", &bob, "--expires", "+1d"],
        &std::fs::read_to_string(&bob_short).unwrap(),
    );
    let bob_short = inst.path(&format!("{bob}s"));

    let mut server = inst.serve();
    let mut target = TargetDir::new();
    target.os_user(&bob);
    target.os_user(&carl);
    let host_toml = target.host_init(server.port, "web1");
    host_add(&inst, &server, &host_toml, "web1", "web");
    let sshd = Sshd::start(&target, &authorized_keys_sshd_lines(&target, &host_toml));

    // Who may log in: bob through web; carl shares no group.
    let shown = inst.show_over(&server, &bob);
    assert_eq!(shown["hosts"], serde_json::json!(["web1"]), "{shown}");
    let (_, host, _) = server.exec("alice", &inst.path("alice"), "host show web1", None);
    assert!(host.contains(&bob) && !host.contains(&carl), "{host}");

    assert!(
        sshd.login(&bob, &bob_key),
        "bob logs in with his key: {}",
        sshd.proc.stderr.text()
    );
    assert!(
        sshd.login(&bob, &bob_short),
        "and with his key that expires tomorrow"
    );
    assert!(
        !sshd.login(&carl, &carl_key),
        "carl shares no group with web1"
    );

    // Disable → the next login is refused; timed from the command's return.
    let (code, _, err) = server.exec(
        "alice",
        &inst.path("alice"),
        &format!("user disable {bob} --reason contract ended"),
        None,
    );
    assert_eq!(code, 0, "{err}");
    let disabled = Instant::now();
    let refused_first_time = !sshd.login(&bob, &bob_key);
    eprintln!(
        "disable -> first refused login on the target sshd: {:?} (first attempt refused: {refused_first_time})",
        disabled.elapsed()
    );
    assert!(
        refused_first_time,
        "the first login after the disable is refused"
    );

    // The host has heard of the disable: with tenure down, the cache refuses too.
    assert_eq!(server.terminate(STEP).map(|s| s.success()), Some(true));
    assert!(
        !sshd.login(&bob, &bob_key),
        "a disable the host heard of is never undone by the cache"
    );

    // Enabled again (offline, server down), then served and cached.
    inst.ok(&["user", "enable", &bob]);
    let port = server.port;
    let mut server = serve_on(&inst, port);
    assert!(sshd.login(&bob, &bob_key), "enabled again");

    // tenure stopped: the cache serves while fresh, then nothing.
    assert_eq!(server.terminate(STEP).map(|s| s.success()), Some(true));
    assert!(
        sshd.login(&bob, &bob_key),
        "the cache answers while tenure is down"
    );
    let cache_file = host_toml.with_file_name("cache").join(&bob);
    let mode = std::fs::metadata(&cache_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the cache file is 0600");
    let mut entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cache_file).unwrap()).unwrap();
    entry["fetched"] = serde_json::json!(entry["fetched"].as_u64().unwrap() - 3601);
    std::fs::write(&cache_file, entry.to_string()).unwrap();
    // An unchanged answer only touches the file: its time counts too.
    std::fs::File::open(&cache_file)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3601))
        .unwrap();
    assert!(
        !sshd.login(&bob, &bob_key),
        "past max_staleness_seconds the cache is not used"
    );
    // --fail-closed never reads the cache.
    let (code, out, _) = run_bounded(
        Command::new(target.tenure()).args([
            "authorized-keys",
            "--fail-closed",
            "--config",
            host_toml.to_str().unwrap(),
            &bob,
        ]),
        None,
        STEP,
    );
    assert_eq!((code, out.as_str()), (0, ""));

    // Three days on, bob's short key has expired: refused; his other key works.
    inst.set_faketime(Some("+3d"));
    server = serve_on(&inst, port);
    assert!(!sshd.login(&bob, &bob_short), "an expired key is refused");
    assert!(sshd.login(&bob, &bob_key), "an unexpired key still works");
    drop(server);
}

#[test]
fn a_wrong_host_key_a_wrong_server_key_and_hostile_usernames_get_nothing() {
    let inst = Instance::initialised();
    inst.ok(&["group", "create", "web"]);
    contractor(&inst, "dora", "--group web");
    let server = inst.serve();
    let target = TargetDir::new();
    let host_toml = target.host_init(server.port, "web2");
    host_add(&inst, &server, &host_toml, "web2", "web");
    let ak = |config: &Path, user: &str| {
        run_bounded(
            Command::new(target.tenure()).args([
                "authorized-keys",
                "--config",
                config.to_str().unwrap(),
                user,
            ]),
            None,
            STEP,
        )
    };
    let (code, out, err) = ak(&host_toml, "dora");
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("expiry-time=\""), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");

    // Usernames sshd could pass that must never reach the output.
    for user in [
        "dora%u",
        "dora,x",
        "dora\"",
        "dora\nssh-ed25519 AAAA",
        "-dora",
        "",
    ] {
        let (code, out, _) = ak(&host_toml, user);
        assert_eq!((code, out.as_str()), (0, ""), "{user:?}");
    }

    // Another key claiming to be web2: refused, and the trail says why.
    let other = target.dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(other.join("host_key"))
        .status()
        .unwrap();
    assert!(ok.success());
    let toml = std::fs::read_to_string(&host_toml).unwrap();
    std::fs::write(
        other.join("host.toml"),
        toml.replace("cache_dir = \"cache\"", "cache_dir = \"cache2\""),
    )
    .unwrap();
    let (code, out, err) = ak(&other.join("host.toml"), "dora");
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(err.contains("did not accept"), "{err}");
    let deadline = Instant::now() + STEP;
    loop {
        let (_, trail, _) = server.exec(
            "alice",
            &inst.path("alice"),
            "audit tail -n 20 --action auth.fail --json",
            None,
        );
        if trail.contains("unknown host key") && trail.contains("web2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no auth.fail naming the unknown host key: {trail}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A server whose host key is not the pinned one: refused, nothing printed.
    let pinned = toml
        .lines()
        .find(|l| l.starts_with("server_key"))
        .unwrap()
        .to_string();
    let impostor = std::fs::read_to_string(other.join("host_key.pub")).unwrap();
    std::fs::write(
        other.join("host.toml"),
        toml.replace(&pinned, &format!("server_key = \"{}\"", impostor.trim()))
            .replace(
                "host_key = \"host_key\"",
                &format!(
                    "host_key = \"{}\"",
                    host_toml.with_file_name("host_key").display()
                ),
            ),
    )
    .unwrap();
    let (code, out, err) = ak(&other.join("host.toml"), "dora");
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(err.contains("not the one pinned"), "{err}");

    // A host asks for keys and nothing else.
    let key = host_toml.with_file_name("host_key");
    let (code, _, err) = ssh_exec(server.port, "web2", &key, "user list", None);
    assert_eq!(code, 4, "{err}");
    let (code, _, err) = ssh_exec(server.port, "web2", &key, "whoami", None);
    assert_eq!(code, 4, "{err}");
}

#[test]
fn sshd_obeys_from_the_allowlist_and_host_add_reads_a_key_file_offline() {
    let inst = Instance::initialised();
    let tag = std::process::id() % 100_000;
    let erin = format!("he{tag}");
    inst.ok(&["group", "create", "web"]);
    let erin_key = contractor(&inst, &erin, "--group web");
    inst.ok(&["allow", "add", &erin, "127.0.0.1/32"]);
    let mut server = inst.serve();
    let port = server.port;
    let mut target = TargetDir::new();
    target.os_user(&erin);
    let host_toml = target.host_init(port, "web3");
    let pubkey = host_toml.with_file_name("host_key.pub");

    // Over ssh, --key would name a file on the tenure server: refused (stdin it is).
    let (code, _, err) = server.exec(
        "alice",
        &inst.path("alice"),
        &format!("host add web3 --group web --key {}", pubkey.display()),
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("stdin"), "{err}");
    assert_eq!(server.terminate(STEP).map(|s| s.success()), Some(true));
    // Offline, on the tenure server's machine, --key FILE reads the file.
    let out = inst.ok(&[
        "host",
        "add",
        "web3",
        "--group",
        "web",
        "--key",
        pubkey.to_str().unwrap(),
    ]);
    assert!(out.contains("added host web3"), "{out}");
    let server = serve_on(&inst, port);

    let (code, out, err) = run_bounded(
        Command::new(target.tenure()).args([
            "authorized-keys",
            "--config",
            host_toml.to_str().unwrap(),
            &erin,
        ]),
        None,
        STEP,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("from=\"127.0.0.1/32\""), "{out}");

    let sshd = Sshd::start(&target, &authorized_keys_sshd_lines(&target, &host_toml));
    // The client's source address on loopback: 127.0.0.1 or 127.0.0.2.
    let from = |addr: &str| {
        let mut cmd = ssh_key(sshd.port, &erin, &erin_key);
        cmd.args(["-o", &format!("BindAddress={addr}")])
            .arg("127.0.0.1")
            .arg("echo in");
        let (code, out, _) = run_bounded(&mut cmd, None, STEP);
        code == 0 && out.trim() == "in"
    };
    assert!(
        from("127.0.0.1"),
        "inside the allowlist: {}",
        sshd.proc.stderr.text()
    );
    assert!(!from("127.0.0.2"), "outside the allowlist: refused");
    // sshd says why: the key was right, the address was not (from=).
    sshd.proc
        .stderr
        .wait_for("sshd refusing because of from=", STEP, |t| {
            t.contains("with correct key but not from a permitted host")
                && t.contains("ip=127.0.0.2")
        });
    assert!(from("127.0.0.1"), "and from inside again");

    // A hardened server offers only the post-quantum exchange: still answered.
    let mut server = server;
    assert_eq!(server.terminate(STEP).map(|s| s.success()), Some(true));
    inst.edit_config("hardened = false", "hardened = true");
    let server = serve_on(&inst, port);
    assert!(from("127.0.0.1"), "against a hardened tenure server");
    drop(server);
}

/// `ssh-keygen -Q -f KRL CERT`: OpenSSH's own reading of our KRL.
fn krl_says_revoked(krl: &Path, cert: &Path) -> bool {
    let out = Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(krl)
        .arg(cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("REVOKED") || text.contains(": ok"),
        "ssh-keygen -Q: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.contains("REVOKED")
}

#[test]
fn certificates_log_in_until_they_expire_or_the_krl_revokes_them() {
    let inst = Instance::initialised();
    let tag = std::process::id() % 100_000;
    let eve = format!("he{tag}");
    inst.ok(&["group", "create", "web"]);
    let eve_key = contractor(&inst, &eve, "--group web");
    inst.create("fin", "--kind contractor --sponsor alice --end today");
    let fin_pub = inst.keygen("fin", "ed25519", None);

    let server = inst.serve();
    let mut target = TargetDir::new();
    target.os_user(&eve);
    let host_toml = target.host_init(server.port, "web3");
    host_add(&inst, &server, &host_toml, "web3", "web");
    let (code, ca, err) = server.exec("alice", &inst.path("alice"), "host ca", None);
    assert_eq!(code, 0, "{err}");
    assert!(ca.starts_with("ssh-ed25519 "), "{ca}");
    std::fs::write(target.dir.join("ca.pub"), &ca).unwrap();
    let krl = target.dir.join("revoked.krl");
    let fetch_krl = || {
        let (code, out, err) = run_bounded(
            Command::new(target.tenure()).args([
                "revoked-keys",
                "--config",
                host_toml.to_str().unwrap(),
                "--out",
                krl.to_str().unwrap(),
            ]),
            None,
            STEP,
        );
        assert_eq!(code, 0, "revoked-keys: {out} {err}");
    };
    fetch_krl();
    let sshd = Sshd::start(
        &target,
        &format!(
            "AuthorizedKeysFile none\nTrustedUserCAKeys {}\nRevokedKeys {}\n",
            target.dir.join("ca.pub").display(),
            krl.display()
        ),
    );

    // Without a certificate the key alone gets nowhere.
    assert!(!sshd.login(&eve, &eve_key), "a bare key is refused");

    // eve asks for a certificate for the key she logs in with.
    let (code, cert, err) = server.exec(&eve, &eve_key, "cert", None);
    assert_eq!(code, 0, "{err}");
    assert!(
        cert.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{cert}"
    );
    let cert_file = eve_key.with_file_name(format!("{eve}-cert.pub"));
    std::fs::write(&cert_file, &cert).unwrap();
    assert!(
        sshd.login(&eve, &eve_key),
        "certificate login: {}",
        sshd.proc.stderr.text()
    );
    assert!(!krl_says_revoked(&krl, &cert_file));

    // A certificate past its validity is refused.
    let (code, short, err) = server.exec(&eve, &eve_key, "cert --valid 2s", None);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&cert_file, &short).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !sshd.login(&eve, &eve_key),
        "an expired certificate is refused"
    );

    // Disabled → revoked: the KRL the host fetches refuses the certificate.
    std::fs::write(&cert_file, &cert).unwrap();
    let (code, _, err) = server.exec(
        "alice",
        &inst.path("alice"),
        &format!("user disable {eve} --reason contract ended"),
        None,
    );
    assert_eq!(code, 0, "{err}");
    fetch_krl();
    assert!(
        krl_says_revoked(&krl, &cert_file),
        "ssh-keygen -Q agrees: revoked"
    );
    assert!(
        !sshd.login(&eve, &eve_key),
        "a revoked certificate is refused"
    );
    let (_, trail, _) = server.exec(
        "alice",
        &inst.path("alice"),
        "audit tail -n 50 --action cert. --json",
        None,
    );
    assert!(
        trail.contains("cert.issue") && trail.contains("cert.revoke"),
        "{trail}"
    );

    // An account whose last day is today: even 48 h asked ends at midnight.
    let (code, _, err) = server.exec(
        "alice",
        &inst.path("alice"),
        "key add fin",
        Some(&std::fs::read_to_string(&fin_pub).unwrap()),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = server.exec(
        "alice",
        &inst.path("alice"),
        "cert fin --valid 48h --json",
        Some(&std::fs::read_to_string(&fin_pub).unwrap()),
    );
    assert_eq!(code, 0, "{err}");
    let issued: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Duration::days(1))
        .format("%Y-%m-%dT00:00:00Z")
        .to_string();
    assert_eq!(issued["valid_before"], serde_json::json!(tomorrow), "{out}");
}
