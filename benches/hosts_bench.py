#!/usr/bin/env python3
"""Hosts obey tenure (issue 12): figures against a real OpenSSH sshd on loopback.

    apt-get install -y openssh-server
    cargo build --release
    python3 benches/hosts_bench.py [--runs 300] [--logins 40] [--disables 20] [--certs 200]

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
Every loop is bounded; only loopback addresses are used.
"""
import argparse, json, os, pwd, shutil, socket, statistics, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TENURE = os.path.join(ROOT, "target", "release", "tenure")
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


SSH = ["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
       "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
       "-o", "KexAlgorithms=curve25519-sha256", "-o", "PreferredAuthentications=publickey"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--logins", type=int, default=40)
    ap.add_argument("--disables", type=int, default=20)
    ap.add_argument("--certs", type=int, default=200)
    args = ap.parse_args()
    if not os.path.exists(TENURE):
        sys.exit("build first: cargo build --release")
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


def bench(args, work, target, procs):
    cfg = os.path.join(work, "config.toml")
    shutil.copy(os.path.join(ROOT, "config.example.toml"), cfg)
    for name in ["alice", USER]:
        must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(work, name)])
    env = dict(os.environ, USER="bench")
    t = lambda *a, **kw: must([TENURE, "--config", cfg, *a], cwd=work, env=env, **kw)
    t("init", "--admin", "alice", "--key", os.path.join(work, "alice.pub"))
    t("group", "create", "web")
    t("user", "create", USER, "--email", f"{USER}@example.com", "--display-name", "Bench", "--kind",
      "contractor", "--sponsor", "alice", "--end", "+90d", "--group", "web")
    key_line = open(os.path.join(work, USER + ".pub")).read()
    t("key", "add", USER, input=key_line)
    port = free_port()
    server = subprocess.Popen([TENURE, "--config", cfg, "serve", "--listen", f"127.0.0.1:{port}"],
                              cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(server)
    deadline = time.time() + 60
    while "listening" not in (server.stdout.readline() or ""):
        if time.time() > deadline or server.poll() is not None:
            sys.exit("tenure serve did not start")

    def admin(line, stdin=None):
        return must(SSH + ["-i", os.path.join(work, "alice"), "-p", str(port), "alice@127.0.0.1", line], input=stdin)

    def enable():
        # exit 5 (already enabled) is fine
        run(SSH + ["-i", os.path.join(work, "alice"), "-p", str(port), "alice@127.0.0.1", f"user enable {USER}"])

    binary = os.path.join(target, "tenure")
    shutil.copy(TENURE, binary)
    os.chmod(binary, 0o755)
    etc = os.path.join(target, "etc")
    must([binary, "host", "init", "--server", f"127.0.0.1:{port}", "--name", "web1", "--out", etc])
    os.chmod(etc, 0o755)
    os.makedirs(os.path.join(etc, "cache"))
    for p in ["host_key", "cache"]:
        must(["chown", "nobody", os.path.join(etc, p)])
    admin("host add web1 --group web", open(os.path.join(etc, "host_key.pub")).read())
    host_toml = os.path.join(etc, "host.toml")
    nobody = pwd.getpwnam("nobody")

    def authorized_keys():
        t0 = time.perf_counter()
        r = subprocess.run([binary, "authorized-keys", "--config", host_toml, USER], capture_output=True,
                           text=True, user=nobody.pw_uid, group=nobody.pw_gid, timeout=30)
        return time.perf_counter() - t0, r.stdout

    # 1. authorized-keys, process start to exit.
    for _ in range(5):
        authorized_keys()
    times = []
    for _ in range(args.runs):
        dt, out = authorized_keys()
        if not out.startswith("expiry-time="):
            sys.exit(f"authorized-keys printed {out!r}")
        times.append(dt)
    ak = {"p50_ms": ms(pct(times, 50)), "p99_ms": ms(pct(times, 99)), "runs": args.runs}
    print(f"authorized-keys (start->exit, as nobody): p50 {ak['p50_ms']} ms, p99 {ak['p99_ms']} ms over {args.runs}")

    # 2. sshd logins: plain authorized_keys vs AuthorizedKeysCommand.
    run(["userdel", USER])
    must(["useradd", "-M", "-N", "-s", "/bin/sh", "-d", "/", USER])
    must(["usermod", "-p", "*", USER])
    os.makedirs("/run/sshd", exist_ok=True)
    hostkey = os.path.join(target, "ssh_host_ed25519_key")
    must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostkey])
    plain = os.path.join(target, "authorized_keys")
    with open(plain, "w") as f:
        f.write(key_line)

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

    def login(p):
        t0 = time.perf_counter()
        r = run(SSH + ["-i", os.path.join(work, USER), "-p", str(p), f"{USER}@127.0.0.1", "true"])
        return time.perf_counter() - t0, r.returncode == 0

    logins = {}
    for label, extra in [("authorized_keys file", f"AuthorizedKeysFile {plain}"),
                         ("tenure AuthorizedKeysCommand",
                          f"AuthorizedKeysFile none\nAuthorizedKeysCommand {binary} authorized-keys --config {host_toml} %u\n"
                          "AuthorizedKeysCommandUser nobody")]:
        p = sshd(extra)
        login(p)
        lt = []
        for _ in range(args.logins):
            dt, ok = login(p)
            if not ok:
                sys.exit(f"login via {label} failed")
            lt.append(dt)
        logins[label] = {"p50_ms": ms(pct(lt, 50)), "p99_ms": ms(pct(lt, 99))}
        print(f"sshd login, {label}: p50 {logins[label]['p50_ms']} ms, p99 {logins[label]['p99_ms']} ms over {args.logins}")
    target_port = p

    # 3. disable -> refused.
    to_empty, to_refused = [], []
    for _ in range(args.disables):
        enable()
        if not login(target_port)[1]:
            sys.exit("enabled account could not log in")
        admin(f"user disable {USER} --reason bench")
        t0 = time.perf_counter()
        for _ in range(100):
            _, out = authorized_keys()
            if out == "":
                break
        to_empty.append(time.perf_counter() - t0)
        enable()
        login(target_port)
        admin(f"user disable {USER} --reason bench")
        t0 = time.perf_counter()
        for _ in range(100):
            if not login(target_port)[1]:
                break
        to_refused.append(time.perf_counter() - t0)
    dis = {"to_empty_answer_p50_ms": ms(pct(to_empty, 50)), "to_empty_answer_p99_ms": ms(pct(to_empty, 99)),
           "to_refused_login_p50_ms": ms(pct(to_refused, 50)), "to_refused_login_p99_ms": ms(pct(to_refused, 99)),
           "rounds": args.disables}
    print(f"disable -> authorized-keys prints nothing: p50 {dis['to_empty_answer_p50_ms']} ms, p99 {dis['to_empty_answer_p99_ms']} ms")
    print(f"disable -> login refused on sshd: p50 {dis['to_refused_login_p50_ms']} ms, p99 {dis['to_refused_login_p99_ms']} ms over {args.disables}")
    enable()

    # 4. certificates per second.
    def cert(_):
        out = admin(f"cert {USER} --valid 1h", key_line)
        return out.startswith("ssh-ed25519-cert-v01@openssh.com ")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        ok = sum(pool.map(cert, range(args.certs)))
    rate = round(ok / (time.perf_counter() - t0), 1)
    print(f"certificates issued: {ok} in 4 parallel ssh clients, {rate}/s (each an ssh login + exec + one durable write)")

    print(json.dumps({"authorized_keys": ak, "sshd_login": logins, "disable": dis,
                      "certs_per_second": rate}))


if __name__ == "__main__":
    main()
