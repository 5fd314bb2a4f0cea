#!/usr/bin/env python3
"""Directory sync (issue 14): figures against a real slapd on loopback.

    apt-get install -y slapd ldap-utils
    cargo build --release
    python3 benches/sources_bench.py [--entries 100000] [--page-size 500]

Loads --entries inetOrgPerson entries into a fresh slapd (slapadd, offline),
then measures:
  1. the ceiling: slapd's own `ldapsearch` of the same scope, paged
     (RFC 2696, the same page size and attributes), in entries/s;
  2. a full first sync (`tenure source sync corp`, the release binary,
     offline CLI): seconds and entries/s, accounts created;
  3. a second run with nothing changed: seconds, and what it wrote (audit
     events, the stored run status, the database's size on disk).
Figures are printed as text and as JSON on the last line. Only loopback is
used; every wait is bounded; the temp directory is removed at the end.
"""
import argparse, json, os, shutil, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TENURE = os.path.join(ROOT, "target", "release", "tenure")
BASE = "dc=example,dc=com"
VENDORS = "ou=vendors," + BASE
ADMIN_DN = "cn=admin," + BASE
ADMIN_PW = "bench-secret"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def must(cmd, timeout=3600, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        sys.exit(f"{cmd[:4]}: exit {r.returncode}: {r.stderr.strip()[:500]}")
    return r.stdout


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(d, f))
            except OSError:
                pass
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--page-size", type=int, default=500)
    args = ap.parse_args()
    if not os.path.exists(TENURE):
        sys.exit("build first: cargo build --release")
    tmp = tempfile.mkdtemp(prefix="sources-bench-")
    slapd = None
    try:
        db = os.path.join(tmp, "db")
        os.mkdir(db)
        conf = os.path.join(tmp, "slapd.conf")
        with open(conf, "w") as f:
            f.write(f"""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {tmp}/slapd.pid
sizelimit unlimited
database mdb
suffix "{BASE}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PW}
directory {db}
maxsize 4294967296
dbnosync
index objectClass eq
""")
        ldif = os.path.join(tmp, "load.ldif")
        with open(ldif, "w") as f:
            f.write(f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n")
            f.write(f"dn: {VENDORS}\nobjectClass: organizationalUnit\nou: vendors\n\n")
            for i in range(args.entries):
                f.write(
                    f"dn: uid=v{i:06d},{VENDORS}\nobjectClass: inetOrgPerson\nuid: v{i:06d}\n"
                    f"cn: Vendor Person {i}\nsn: Person{i}\nmail: v{i:06d}@vendor.example\no: Vendor {i % 97}\n\n"
                )
        t = time.monotonic()
        must(["/usr/sbin/slapadd", "-q", "-f", conf, "-l", ldif])
        load_s = time.monotonic() - t
        print(f"slapadd of {args.entries} entries: {load_s:.1f} s")
        port = free_port()
        url = f"ldap://127.0.0.1:{port}"
        slapd = subprocess.Popen(["/usr/sbin/slapd", "-h", url + "/", "-f", conf, "-d", "0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if subprocess.run(["ldapsearch", "-x", "-H", url, "-b", "", "-s", "base"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        else:
            sys.exit("slapd did not start")

        # 1. The ceiling: ldapsearch of the same scope, paged, same attributes.
        attrs = ["entryUUID", "uid", "cn", "mail", "o", "userAccountControl"]
        t = time.monotonic()
        out = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-H", url, "-D", ADMIN_DN, "-w", ADMIN_PW, "-b", VENDORS,
             "-E", f"pr={args.page_size}/noprompt", "(objectClass=inetOrgPerson)"] + attrs,
            capture_output=True, text=True, timeout=3600)
        search_s = time.monotonic() - t
        found = out.stdout.count("\ndn: ") + (1 if out.stdout.startswith("dn: ") else 0)
        if found != args.entries:
            sys.exit(f"ldapsearch found {found} entries, expected {args.entries}")
        print(f"ldapsearch (paged {args.page_size}): {search_s:.2f} s, {found / search_s:,.0f} entries/s")

        # tenure: an instance with source corp.
        inst = os.path.join(tmp, "tenure")
        os.mkdir(inst)
        with open(os.path.join(ROOT, "config.example.toml")) as f:
            config = f.read()
        config += f"""
[[sources]]
name = "corp"
type = "ldap"
url = "{url}"
bind_dn = "{ADMIN_DN}"
bind_password_file = "ldap_password"
base_dn = "{VENDORS}"
filter = "(objectClass=inetOrgPerson)"
page_size = {args.page_size}
kind = "vendor"
timeout_seconds = 120
map = {{ username = "uid", display_name = "cn", email = "mail", company = "o" }}
"""
        cfg = os.path.join(inst, "config.toml")
        with open(cfg, "w") as f:
            f.write(config)
        with open(os.path.join(inst, "ldap_password"), "w") as f:
            f.write(ADMIN_PW + "\n")
        must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(inst, "admin")])
        env = dict(os.environ, USER="bench")
        env.pop("TENURE_CONFIG", None)

        def tenure(*a, timeout=7200):
            return must([TENURE, "--config", cfg, *a], timeout=timeout, cwd=inst, env=env)

        tenure("init", "--admin", "admin", "--key", os.path.join(inst, "admin.pub"))

        def last_seq():
            return json.loads(tenure("audit", "tail", "-n", "1", "--json"))[0]["seq"]

        # 2. The first, full sync.
        t = time.monotonic()
        first = json.loads(tenure("source", "sync", "corp", "--json"))
        full_s = time.monotonic() - t
        print(f"first sync: {full_s:.1f} s ({first['read'] / full_s:,.0f} entries/s): "
              f"read {first['read']}, created {first['created']}, problems {len(first['problems'])}")
        if first["created"] != args.entries:
            sys.exit(f"created {first['created']}, expected {args.entries}: {first['problems'][:3]}")

        # 3. Nothing changed: what does a run write?
        data = os.path.join(inst, "data")
        seq_before = last_seq()
        status_before = json.loads(tenure("source", "status", "corp", "--json"))["last_change"]
        size_before = du(data)
        t = time.monotonic()
        again = json.loads(tenure("source", "sync", "corp", "--json"))
        again_s = time.monotonic() - t
        seq_after = last_seq()
        status_after = json.loads(tenure("source", "status", "corp", "--json"))["last_change"]
        size_after = du(data)
        events = seq_after - seq_before
        print(f"no-change sync: {again_s:.1f} s: unchanged {again['unchanged']}, changes "
              f"{again['created'] + again['updated'] + again['disabled'] + again['enabled']}; "
              f"audit events written {events}; stored status {'unchanged' if status_before == status_after else 'CHANGED'}; "
              f"data dir {size_before / 2**20:.1f} -> {size_after / 2**20:.1f} MiB")
        print(json.dumps({
            "entries": args.entries,
            "page_size": args.page_size,
            "slapadd_seconds": round(load_s, 1),
            "ldapsearch_seconds": round(search_s, 2),
            "ldapsearch_entries_per_second": round(found / search_s),
            "first_sync_seconds": round(full_s, 1),
            "first_sync_entries_per_second": round(first["read"] / full_s),
            "no_change_seconds": round(again_s, 1),
            "no_change_audit_events": events,
            "no_change_status_rewritten": status_before != status_after,
            "data_bytes_before": size_before,
            "data_bytes_after": size_after,
        }))
    finally:
        if slapd is not None:
            slapd.terminate()
            try:
                slapd.wait(timeout=20)
            except subprocess.TimeoutExpired:
                slapd.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
