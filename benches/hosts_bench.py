#!/usr/bin/env python3
"""Hosts obey tenure (issue 12): figures against a real OpenSSH sshd on loopback.

    apt-get install -y openssh-server
    cargo build --release
    python3 benches/hosts_bench.py [--runs 300] [--logins 40] [--disables 20] [--certs 200]
                                   [--bin target/release/tenure] [--before OLD_BINARY]

Run as root (it makes an OS user with useradd and a directory under /opt,
both removed at the end). Figures, printed as text and as JSON on the last line:
  1. `tenure authorized-keys USER` as sshd runs it (as `nobody`, the release
     binary, host.toml + pinned server key, one SSH handshake + exec against
     `tenure serve` on loopback): process start to exit, p50/p99;
  2. an OpenSSH login (`ssh USER@127.0.0.1 true`, curve25519) to sshd with a
     plain authorized_keys file, and with tenure as AuthorizedKeysCommand;
  3. disable -> refused: from `user disable` returning to (a) the first
     `authorized-keys` answer that prints nothing and (b) the first refused
     login on the target sshd; p50/p99 over --disables rounds;
  4. certificates issued per second (`cert NAME --valid 1h`, key on stdin,
     over ssh, 4 clients at once).

With `--before OLD_BINARY` every figure is taken for both binaries in the
same run, turn about (new, old, old, new, ...: who goes first changes every
round, as it matters under load): each binary has its own
`tenure serve`, its own host.toml and its own sshd, and the runs of the two
alternate, so a machine that gets busier or quieter mid-run moves both. The
ratio new/old is printed beside each figure (the median of the pair-by-pair
ratios for the per-run figures).
Every loop is bounded; only loopback addresses are used.
"""
import argparse, json, os, pwd, shutil, socket, statistics, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER = "tbench"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def must(cmd, **kw):
    r = run(cmd, **kw)
    if r.returncode != 0:
        sys.exit(f"{cmd}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def ms(v):
    return round(v * 1000, 1)


def summary(values):
    return {"p50_ms": ms(pct(values, 50)), "p99_ms": ms(pct(values, 99)), "runs": len(values)}


SSH = ["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
       "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
       "-o", "KexAlgorithms=curve25519-sha256", "-o", "PreferredAuthentications=publickey"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--logins", type=int, default=40)
    ap.add_argument("--disables", type=int, default=20)
    ap.add_argument("--certs", type=int, default=200)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "tenure"))
    ap.add_argument("--before", default=None, help="an earlier binary, measured turn about with --bin")
    args = ap.parse_args()
    for b in [args.bin] + ([args.before] if args.before else []):
        if not os.path.exists(b):
            sys.exit(f"no binary at {b} (build first: cargo build --release)")
    work = tempfile.mkdtemp(prefix="tenure-hosts-bench.")
    target = must(["mktemp", "-d", "/opt/tenure-bench.XXXXXX"]).strip()
    os.chmod(target, 0o755)
    procs = []
    try:
        return bench(args, work, target, procs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        run(["userdel", USER])
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)


class Side:
    """One binary: its database, `tenure serve`, host.toml and (later) sshd."""

    def __init__(self, label, tenure, work, target, procs):
        self.label = label
        work = os.path.join(work, label)
        target = os.path.join(target, label)
        os.makedirs(work)
        os.makedirs(target)
        os.chmod(target, 0o755)
        self.work = work
        cfg = os.path.join(work, "config.toml")
        shutil.copy(os.path.join(ROOT, "config.example.toml"), cfg)
        for name in ["alice", USER]:
            must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(work, name)])
        env = dict(os.environ, USER="bench")
        t = lambda *a, **kw: must([tenure, "--config", cfg, *a], cwd=work, env=env, **kw)
        t("init", "--admin", "alice", "--key", os.path.join(work, "alice.pub"))
        t("group", "create", "web")
        t("user", "create", USER, "--email", f"{USER}@example.com", "--display-name", "Bench", "--kind",
          "contractor", "--sponsor", "alice", "--end", "+90d", "--group", "web")
        self.key_line = open(os.path.join(work, USER + ".pub")).read()
        t("key", "add", USER, input=self.key_line)
        self.port = free_port()
        server = subprocess.Popen([tenure, "--config", cfg, "serve", "--listen", f"127.0.0.1:{self.port}"],
                                  cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(server)
        deadline = time.time() + 60
        while "listening" not in (server.stdout.readline() or ""):
            if time.time() > deadline or server.poll() is not None:
                sys.exit("tenure serve did not start")
        self.binary = os.path.join(target, "tenure")
        shutil.copy(tenure, self.binary)
        os.chmod(self.binary, 0o755)
        etc = os.path.join(target, "etc")
        must([self.binary, "host", "init", "--server", f"127.0.0.1:{self.port}", "--name", "web1", "--out", etc])
        os.chmod(etc, 0o755)
        os.makedirs(os.path.join(etc, "cache"))
        for p in ["host_key", "cache"]:
            must(["chown", "nobody", os.path.join(etc, p)])
        self.admin("host add web1 --group web", open(os.path.join(etc, "host_key.pub")).read())
        self.host_toml = os.path.join(etc, "host.toml")
        self.sshd_port = None

    def admin(self, line, stdin=None):
        return must(SSH + ["-i", os.path.join(self.work, "alice"), "-p", str(self.port), "alice@127.0.0.1", line],
                    input=stdin)

    def enable(self):
        # exit 5 (already enabled) is fine
        run(SSH + ["-i", os.path.join(self.work, "alice"), "-p", str(self.port), "alice@127.0.0.1",
                   f"user enable {USER}"])

    def authorized_keys(self):
        nobody = pwd.getpwnam("nobody")
        t0 = time.perf_counter()
        r = subprocess.run([self.binary, "authorized-keys", "--config", self.host_toml, USER], capture_output=True,
                           text=True, user=nobody.pw_uid, group=nobody.pw_gid, timeout=30)
        return time.perf_counter() - t0, r.stdout

    def login(self, port=None):
        t0 = time.perf_counter()
        r = run(SSH + ["-i", os.path.join(self.work, USER), "-p", str(port or self.sshd_port), f"{USER}@127.0.0.1",
                       "true"])
        return time.perf_counter() - t0, r.returncode == 0


def turn(seq, i):
    """`seq` rotated by `i`: who goes first changes from one round to the next."""
    i %= len(seq)
    return seq[i:] + seq[:i]


def paired_ratio(a, b):
    """Median of the run-by-run ratios a[i]/b[i]."""
    return round(statistics.median(x / y for x, y in zip(a, b)), 3)


def bench(args, work, target, procs):
    sides = [Side("now", os.path.abspath(args.bin), work, target, procs)]
    if args.before:
        sides.append(Side("before", os.path.abspath(args.before), work, target, procs))
    results = {s.label: {} for s in sides}
    ratios = {}

    def show(label, what, fig, extra=""):
        print(f"[{label}] {what}: p50 {fig['p50_ms']} ms, p99 {fig['p99_ms']} ms over {fig['runs']}{extra}")

    # 1. authorized-keys, process start to exit, the two binaries turn about.
    for _ in range(5):
        for s in sides:
            s.authorized_keys()
    times = {s.label: [] for s in sides}
    for i in range(args.runs):
        for s in turn(sides, i):
            dt, out = s.authorized_keys()
            if not out.startswith("expiry-time="):
                sys.exit(f"[{s.label}] authorized-keys printed {out!r}")
            times[s.label].append(dt)
    for s in sides:
        results[s.label]["authorized_keys"] = summary(times[s.label])
        show(s.label, "authorized-keys (start->exit, as nobody)", results[s.label]["authorized_keys"])
    if args.before:
        ratios["authorized_keys"] = paired_ratio(times["now"], times["before"])
        print(f"authorized-keys now/before, median of paired ratios: {ratios['authorized_keys']}")

    # 2. sshd logins: plain authorized_keys vs AuthorizedKeysCommand (each binary).
    run(["userdel", USER])
    must(["useradd", "-M", "-N", "-s", "/bin/sh", "-d", "/", USER])
    must(["usermod", "-p", "*", USER])
    os.makedirs("/run/sshd", exist_ok=True)
    hostkey = os.path.join(target, "ssh_host_ed25519_key")
    must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostkey])
    plain = os.path.join(target, "authorized_keys")
    with open(plain, "w") as f:
        f.write(sides[0].key_line)

    def sshd(extra):
        p = free_port()
        conf = os.path.join(target, f"sshd_{p}")
        with open(conf, "w") as f:
            f.write(f"ListenAddress 127.0.0.1:{p}\nHostKey {hostkey}\nPidFile {target}/sshd_{p}.pid\n"
                    "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\n"
                    f"MaxStartups 200:30:300\n{extra}\n")
        proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", conf], stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        deadline = time.time() + 30
        while "Server listening" not in (proc.stderr.readline() or ""):
            if time.time() > deadline:
                sys.exit("sshd did not start")
        return p

    plain_port = sshd(f"AuthorizedKeysFile {plain}")
    for s in sides:
        s.sshd_port = sshd(f"AuthorizedKeysFile none\nAuthorizedKeysCommand {s.binary} authorized-keys "
                           f"--config {s.host_toml} %u\nAuthorizedKeysCommandUser nobody")
    # (the plain file holds the "now" side's key)
    rounds = [("authorized_keys file", sides[0], plain_port)] + \
             [(f"tenure AuthorizedKeysCommand [{s.label}]", s, s.sshd_port) for s in sides]
    lt = {label: [] for label, _, _ in rounds}
    for label, s, p in rounds:
        if not s.login(p)[1]:
            sys.exit(f"login via {label} failed")
    for i in range(args.logins):
        for label, s, p in turn(rounds, i):
            dt, ok = s.login(p)
            if not ok:
                sys.exit(f"login via {label} failed")
            lt[label].append(dt)
    logins = {}
    for label, _, _ in rounds:
        logins[label] = summary(lt[label])
        print(f"sshd login, {label}: p50 {logins[label]['p50_ms']} ms, p99 {logins[label]['p99_ms']} ms "
              f"over {args.logins}")
    for s in sides:
        results[s.label]["sshd_login_tenure_over_file"] = paired_ratio(
            lt[f"tenure AuthorizedKeysCommand [{s.label}]"], lt["authorized_keys file"])
        print(f"[{s.label}] sshd login with tenure / with the file, median of paired ratios: "
              f"{results[s.label]['sshd_login_tenure_over_file']}")

    # 3. disable -> refused, rounds turn about.
    to_empty = {s.label: [] for s in sides}
    to_refused = {s.label: [] for s in sides}
    for i in range(args.disables):
        for s in turn(sides, i):
            s.enable()
            if not s.login()[1]:
                sys.exit(f"[{s.label}] enabled account could not log in")
            s.admin(f"user disable {USER} --reason bench")
            t0 = time.perf_counter()
            for _ in range(100):
                _, out = s.authorized_keys()
                if out == "":
                    break
            to_empty[s.label].append(time.perf_counter() - t0)
            s.enable()
            s.login()
            s.admin(f"user disable {USER} --reason bench")
            t0 = time.perf_counter()
            for _ in range(100):
                if not s.login()[1]:
                    break
            to_refused[s.label].append(time.perf_counter() - t0)
    for s in sides:
        e, r = summary(to_empty[s.label]), summary(to_refused[s.label])
        results[s.label]["disable"] = {"to_empty_answer": e, "to_refused_login": r}
        show(s.label, "disable -> authorized-keys prints nothing", e)
        show(s.label, "disable -> login refused on sshd", r)
        s.enable()

    # 4. certificates per second (halves turn about).
    for s in sides:
        results[s.label]["certs_seconds"] = 0.0
        results[s.label]["certs"] = 0
    for half in range(2):
        for s in turn(sides, half):
            def cert(_):
                out = s.admin(f"cert {USER} --valid 1h", s.key_line)
                return out.startswith("ssh-ed25519-cert-v01@openssh.com ")
            n = args.certs // 2
            t0 = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                results[s.label]["certs"] += sum(pool.map(cert, range(n)))
            results[s.label]["certs_seconds"] += time.perf_counter() - t0
    for s in sides:
        r = results[s.label]
        r["certs_per_second"] = round(r["certs"] / r["certs_seconds"], 1)
        print(f"[{s.label}] certificates issued: {r['certs']} in 4 parallel ssh clients, "
              f"{r['certs_per_second']}/s (each an ssh login + exec + one durable write)")

    print(f"load average at the end: {os.getloadavg()}")
    print(json.dumps({"results": results, "sshd_login": logins, "ratios_now_over_before": ratios,
                      "load": os.getloadavg()}))


if __name__ == "__main__":
    main()
