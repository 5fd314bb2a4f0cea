#!/usr/bin/env python3
"""The LDAP connector's figures, against Debian's slapd on loopback.

    apt-get install slapd ldap-utils; cargo build --release
    python3 benches/connect_bench.py [--accounts 100000] [--disables 200]

1. Initial provisioning: N contractors imported offline (each import queues
   its create job), then `tenure serve` starts and pushes them; timed from
   the server's start to the last link in sync (accounts/s). Beside it, the
   ceiling: slapd's own `ldapadd` of the same person entries (one
   connection, one add after another) into a fresh directory.
2. Disable -> entry locked: `user disable` over ssh, then ldapsearch polled
   until the entry has pwdAccountLockedTime; p50/p99 measured from the
   command's return (the change committed) and from its start.
3. Reconcile of N entries with nothing drifted (seconds).
4. The server's RSS with N links.

slapd runs from its own slapd.conf in a temp dir (ppolicy, memberof,
argon2, the tests' openssh-lpk schema, eq indexes on uid, member and
objectClass as a directory of that size would have) and `dbnosync`: the
directory does not fsync each write, so its disk is not the ceiling and
the figures show tenure's own rate (both slapds, tenure's and ldapadd's).
"""
import argparse, json, os, shutil, signal, socket, statistics, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TENURE = os.path.join(ROOT, "target", "release", "tenure")
BASE = "dc=example,dc=com"
ADMIN = "cn=admin,dc=example,dc=com"
PW = "bench-secret"
PEOPLE = "ou=people," + BASE

SEED = f"""dn: {BASE}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,{BASE}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{BASE}
objectClass: organizationalUnit
ou: groups

dn: ou=policies,{BASE}
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,{BASE}
objectClass: pwdPolicy
objectClass: device
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
"""


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


class Slapd:
    def __init__(self, work, name):
        self.dir = os.path.join(work, name)
        os.makedirs(os.path.join(self.dir, "db"))
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        schema = os.path.join(ROOT, "tests", "ldap", "openssh-lpk.schema")
        with open(os.path.join(self.dir, "slapd.conf"), "w") as f:
            f.write(f"""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include {schema}
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
moduleload memberof
moduleload argon2
pidfile {self.dir}/slapd.pid
sizelimit unlimited
database mdb
suffix "{BASE}"
rootdn "{ADMIN}"
rootpw {PW}
directory {self.dir}/db
maxsize 4294967296
dbnosync
index objectClass eq
index uid eq
index member eq
index memberUid eq
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{BASE}"
overlay memberof
""")
        self.proc = subprocess.Popen(["/usr/sbin/slapd", "-h", self.url + "/", "-f",
                                      os.path.join(self.dir, "slapd.conf"), "-d", "0"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if subprocess.run(["ldapsearch", "-x", "-H", self.url, "-b", "", "-s", "base"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.05)
        self.ldap("ldapadd", [], SEED)

    def ldap(self, tool, args, stdin=""):
        r = subprocess.run([tool, "-x", "-H", self.url, "-D", ADMIN, "-w", PW] + args,
                           input=stdin.encode(), capture_output=True)
        if r.returncode != 0:
            raise SystemExit(f"{tool} {args}: {r.stderr.decode()}")
        return r.stdout.decode()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=100000)
    ap.add_argument("--disables", type=int, default=200)
    args = ap.parse_args()
    n = args.accounts
    work = tempfile.mkdtemp(prefix="tenure-connect-")
    server = None
    slapd = baseline = None
    try:
        slapd = Slapd(work, "slapd")
        inst = os.path.join(work, "tenure")
        os.makedirs(inst)
        shutil.copy(os.path.join(ROOT, "config.example.toml"), inst)
        cfg = os.path.join(inst, "config.example.toml")
        with open(os.path.join(inst, "ldap_password"), "w") as f:
            f.write(PW + "\n")
        with open(cfg, "a") as f:
            f.write(f"""
[[connectors]]
name = "directory"
type = "ldap"
url = "{slapd.url}"
bind_dn = "{ADMIN}"
bind_password_file = "ldap_password"
people_dn = "{PEOPLE}"
groups_dn = "ou=groups,{BASE}"
""")
        key = os.path.join(inst, "alice")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        subprocess.run([TENURE, "--config", cfg, "init", "--admin", "alice", "--key", key + ".pub"],
                       check=True, stdout=subprocess.DEVNULL)
        rows = ["username,display_name,email,kind,end_date,sponsor"] + [
            f"u{i:06},User {i},u{i}@example.com,contractor,+200d,alice" for i in range(n)]
        t = time.perf_counter()
        subprocess.run([TENURE, "--config", cfg, "import"], input="\n".join(rows).encode(),
                       check=True, stdout=subprocess.DEVNULL)
        print(f"import of {n} accounts (queues {n} jobs): {time.perf_counter() - t:.1f} s")

        port = free_port()
        t0 = time.perf_counter()
        server = subprocess.Popen([TENURE, "--config", cfg, "serve", "--listen", f"127.0.0.1:{port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ssh = ["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-i", key, "-p", str(port), "alice@127.0.0.1"]

        def exec_(line):
            r = subprocess.run(ssh + [line], capture_output=True)
            if r.returncode != 0:
                raise SystemExit(f"{line}: {r.stderr.decode()}")
            return r.stdout.decode()

        deadline = time.time() + 3600
        while time.time() < deadline:
            try:
                c = json.loads(exec_("connector list --json"))[0]
                if c["in_sync"] == n and c["jobs_queued"] == 0:
                    break
            except (SystemExit, json.JSONDecodeError, IndexError):
                pass
            time.sleep(1)
        took = time.perf_counter() - t0
        count = slapd.ldap("ldapsearch", ["-LLL", "-b", PEOPLE, "(objectClass=posixAccount)", "1.1"]).count("dn: ")
        print(f"provisioning: {n} accounts in {took:.1f} s = {n / took:.0f} accounts/s "
              f"(from the server's start, warm-up included; {count} entries in the directory)")
        rss = int(next(l.split()[1] for l in open(f"/proc/{server.pid}/status") if l.startswith("VmRSS")))
        print(f"server RSS with {n} links: {rss / 1024:.0f} MiB")

        # The ceiling: slapd's own ldapadd of the same person entries.
        dump = slapd.ldap("ldapsearch", ["-LLL", "-o", "ldif-wrap=no", "-b", PEOPLE,
                                         "(objectClass=posixAccount)", "*"])
        dump = "\n\n".join(b for b in dump.split("\n\n") if b.strip())
        baseline = Slapd(work, "baseline")
        t = time.perf_counter()
        baseline.ldap("ldapadd", [], dump + "\n")
        added = time.perf_counter() - t
        print(f"slapd's own ldapadd of the same {count} entries: {added:.1f} s = {count / added:.0f} entries/s")
        baseline.stop(); baseline = None

        # Reconcile, nothing drifted.
        t = time.perf_counter()
        report = json.loads(exec_("connector reconcile directory --json"))
        took = time.perf_counter() - t
        print(f"reconcile of {report['objects']} entries: {took:.1f} s "
              f"(in sync {report['in_sync']}, not {len(report['rows'])}, unmatched {len(report['unmatched'])})")

        # Disable -> entry locked.
        after, total = [], []
        for i in range(args.disables):
            name = f"u{i:06}"
            dn = f"uid={name},{PEOPLE}"
            start = time.perf_counter()
            exec_(f"user disable {name} --reason bench")
            returned = time.perf_counter()
            while True:
                out = subprocess.run(["ldapsearch", "-x", "-H", slapd.url, "-D", ADMIN, "-w", PW, "-LLL",
                                      "-b", dn, "-s", "base", "(pwdAccountLockedTime=*)", "1.1"],
                                     capture_output=True).stdout
                if b"dn:" in out:
                    break
                if time.perf_counter() - start > 30:
                    raise SystemExit(f"{name} not locked after 30 s")
            done = time.perf_counter()
            after.append(done - returned)
            total.append(done - start)
        print(f"disable -> locked over {args.disables}: from the command's return p50 "
              f"{pct(after, 50) * 1000:.0f} ms p99 {pct(after, 99) * 1000:.0f} ms; "
              f"from its start (ssh included) p50 {pct(total, 50) * 1000:.0f} ms p99 {pct(total, 99) * 1000:.0f} ms")
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        for s in (slapd, baseline):
            if s:
                s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
