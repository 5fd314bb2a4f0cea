//! A real slapd on loopback for the LDAP tests (the connector, `ldap.rs`,
//! and directory sources, `sources.rs`): Debian's slapd with ppolicy
//! (`pwdLockout: TRUE`), memberof, argon2 and the shipped openssh-lpk
//! schema, started from a slapd.conf in a temp dir.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

pub const BASE: &str = "dc=example,dc=com";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=com";
pub const ADMIN_PW: &str = "ldap-admin-secret";
pub const PEOPLE: &str = "ou=people,dc=example,dc=com";
pub const GROUPS: &str = "ou=groups,dc=example,dc=com";

const SEED: &str = "dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=com
objectClass: organizationalUnit
ou: groups

dn: ou=policies,dc=example,dc=com
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,dc=example,dc=com
objectClass: pwdPolicy
objectClass: device
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
";

/// A free loopback port (bound, then released for the peer to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` until it holds, for at most 30 s.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An entry as ldapsearch prints it: lower-cased attribute → values.
pub type Entry = BTreeMap<String, Vec<String>>;

pub struct Slapd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    proc: Option<Proc>,
}

impl Slapd {
    pub fn start() -> Slapd {
        Slapd::start_with("")
    }

    /// `start`, with `extra` lines at the end of slapd.conf (the database
    /// section: `limits …`, more overlays).
    pub fn start_with(extra: &str) -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ldap/openssh-lpk.schema");
        let d = dir.path().display();
        let conf = format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include {schema}
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
moduleload memberof
moduleload argon2
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
database mdb
suffix \"{BASE}\"
rootdn \"{ADMIN_DN}\"
rootpw {ADMIN_PW}
directory {d}/db
maxsize 1073741824
overlay ppolicy
ppolicy_default \"cn=default,ou=policies,{BASE}\"
overlay memberof
{extra}",
            schema = schema.display()
        );
        std::fs::write(dir.path().join("slapd.conf"), conf).unwrap();
        let mut slapd = Slapd {
            dir,
            port: free_port(),
            proc: None,
        };
        slapd.run(None);
        slapd.ldap("ldapadd", &[], SEED);
        slapd
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Starts slapd (again), its clock shifted by `faketime` if given.
    pub fn run(&mut self, faketime: Option<&str>) {
        assert!(self.proc.is_none());
        let mut cmd = Command::new("/usr/sbin/slapd");
        cmd.args(["-h", &format!("ldap://127.0.0.1:{}/", self.port)])
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .args(["-d", "0"]);
        if let Some(offset) = faketime {
            cmd.env("LD_PRELOAD", libfaketime()).env("FAKETIME", offset);
        }
        let mut proc = Proc::spawn(&mut cmd);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let up = Command::new("ldapsearch")
                .args(["-x", "-H", &self.url(), "-b", "", "-s", "base"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            if up {
                break;
            }
            assert!(
                proc.running() && Instant::now() < deadline,
                "slapd did not start: {}",
                proc.stderr.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.proc = Some(proc);
    }

    /// Sends `sig` (STOP, CONT…) to the running slapd.
    pub fn signal(&self, sig: &str) {
        if let Some(p) = &self.proc {
            p.signal(sig);
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("TERM");
            if p.wait_exit(Duration::from_secs(10)).is_none() {
                p.signal("KILL");
            }
        }
    }

    /// Runs an ldap-utils client as the rootdn; panics unless it succeeds.
    pub fn ldap(&self, tool: &str, args: &[&str], stdin: &str) -> String {
        let mut cmd = Command::new(tool);
        cmd.args(["-x", "-H", &self.url(), "-D", ADMIN_DN, "-w", ADMIN_PW])
            .args(args);
        let (code, out, err) = run_bounded(&mut cmd, Some(stdin), Duration::from_secs(20));
        assert_eq!(code, 0, "{tool} {args:?}: {out}{err}");
        out
    }

    /// `ldapmodify -e relax` (the ppolicy attributes need it).
    pub fn modify(&self, ldif: &str) {
        self.ldap("ldapmodify", &["-e", "relax"], ldif);
    }

    /// Entries under `base` matching `filter`, with operational attributes.
    pub fn search(&self, base: &str, filter: &str) -> Vec<(String, Entry)> {
        let out = self.ldap(
            "ldapsearch",
            &["-LLL", "-o", "ldif-wrap=no", "-b", base, filter, "*", "+"],
            "",
        );
        let mut entries = Vec::new();
        for block in out.split("\n\n") {
            let mut dn = None;
            let mut entry = Entry::new();
            for line in block.lines() {
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                let v = match v.strip_prefix(':') {
                    // `attr:: base64` for values ldapsearch will not print raw.
                    Some(b64) => {
                        use base64::Engine;
                        let raw = base64::engine::general_purpose::STANDARD
                            .decode(b64.trim())
                            .unwrap();
                        String::from_utf8_lossy(&raw).into_owned()
                    }
                    None => v.trim().to_string(),
                };
                if k == "dn" {
                    dn = Some(v);
                } else {
                    entry.entry(k.to_ascii_lowercase()).or_default().push(v);
                }
            }
            if let Some(dn) = dn {
                entries.push((dn, entry));
            }
        }
        entries
    }

    pub fn person(&self, uid: &str) -> Option<Entry> {
        self.search(PEOPLE, &format!("(uid={uid})"))
            .into_iter()
            .next()
            .map(|(_, e)| e)
    }

    pub fn members(&self, group: &str) -> Vec<String> {
        self.search(GROUPS, &format!("(cn={group})"))
            .into_iter()
            .next()
            .map(|(_, e)| e.get("member").cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Whether a simple bind as `dn` with `password` succeeds.
    pub fn binds(&self, dn: &str, password: &str) -> bool {
        Command::new("ldapwhoami")
            .args(["-x", "-H", &self.url(), "-D", dn, "-w", password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn one(entry: &Entry, attr: &str) -> String {
    entry
        .get(&attr.to_ascii_lowercase())
        .map(|v| v.join("|"))
        .unwrap_or_default()
}
