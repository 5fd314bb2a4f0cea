#!/usr/bin/env python3
"""tenure's SSH front door against OpenSSH sshd, on loopback, same run.

    python3 -m venv /tmp/benchenv && /tmp/benchenv/bin/pip install asyncssh
    apt-get install -y openssh-server
    cargo build --release
    /tmp/benchenv/bin/python benches/ssh_bench.py [--logins 40] [--concurrent 50] [--idle 20]

Both servers: ed25519 host keys, the client forced to curve25519-sha256.
Figures (printed as a table and as JSON on the last line):
  1. key login + exec `whoami`, one at a time: median latency;
  2. server CPU per key login with N concurrent clients (sshd: the listener's
     utime+stime+cutime+cstime, which collects its reaped children; tenure:
     its own utime+stime), and the login rate;
  3. PSS per idle authenticated pty session, 5 s after it opened (tenure: PSS
     growth / N, each session a 120x40 console; sshd: the per-session sshd
     processes plus the user's shell);
  4. a 1,000-attempt password flood from 127.0.0.1 while another admin logs in
     with a key from 127.0.0.2: that login's latency.
Every loop is bounded; only loopback addresses are used.
"""
import argparse, asyncio, json, os, re, shutil, signal, statistics, subprocess, sys, tempfile, time

import asyncssh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TENURE = os.path.join(ROOT, "target", "release", "tenure")
CLK = os.sysconf("SC_CLK_TCK")
KEX = ["curve25519-sha256"]


def cpu_seconds(pid, children=False):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ut, st, cut, cst = (int(x) for x in fields[11:15])
    return (ut + st + ((cut + cst) if children else 0)) / CLK


def pss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def descendants(pid):
    out, frontier = [], [pid]
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    while frontier:
        p = frontier.pop()
        for c in kids.get(p, []):
            out.append(c)
            frontier.append(c)
    return out


def wait_port(port, deadline=20):
    end = time.time() + deadline
    while time.time() < end:
        try:
            import socket
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} did not open")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def login_exec(port, user, key, local="127.0.0.1", cmd="whoami"):
    async with asyncssh.connect("127.0.0.1", port, username=user, client_keys=[key], known_hosts=None,
                                kex_algs=KEX, server_host_key_algs=["ssh-ed25519"], local_addr=(local, 0),
                                preferred_auth="publickey") as conn:
        result = await conn.run(cmd, check=True)
        return result.stdout.strip()


async def sequential(port, user, key, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await login_exec(port, user, key)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


async def concurrent(port, user, key, clients, total, pid, children):
    cpu0 = cpu_seconds(pid, children)
    sem = asyncio.Semaphore(clients)
    async def one():
        async with sem:
            await login_exec(port, user, key)
    t = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    wall = time.perf_counter() - t
    await asyncio.sleep(0.3)  # let sshd reap its children
    cpu = cpu_seconds(pid, children) - cpu0
    return cpu / total * 1000, total / wall


async def idle_sessions(port, user, key, n, measure):
    before = measure()
    conns = []
    for _ in range(n):
        conn = await asyncssh.connect("127.0.0.1", port, username=user, client_keys=[key], known_hosts=None,
                                      kex_algs=KEX, server_host_key_algs=["ssh-ed25519"])
        proc = await conn.create_process(term_type="xterm-256color", term_size=(120, 40))
        conns.append((conn, proc))
    # Idle: past the 3 s after which a console gives back its frame buffers.
    await asyncio.sleep(float(os.environ.get("IDLE_WAIT", "5")))
    after = measure()
    for conn, proc in conns:
        conn.close()
    return (after - before) / n / 1024


class Flood(asyncssh.SSHClient):
    def kbdint_auth_requested(self):
        return ""
    def kbdint_challenge_received(self, name, instructions, lang, prompts):
        return ["wrong password %d" % time.monotonic_ns() for _ in prompts]
    def password_auth_requested(self):
        return None


async def flood_attempt(port, user="alice"):
    try:
        conn = await asyncio.wait_for(asyncssh.connect(
            "127.0.0.1", port, username=user, client_keys=None, known_hosts=None, kex_algs=KEX,
            server_host_key_algs=["ssh-ed25519"], client_factory=Flood, preferred_auth="keyboard-interactive",
            agent_path=None), 10)
        conn.close()
    except Exception:
        pass


async def refusal_ms(port, user, n=15):
    """Median time to refuse a wrong password (keyboard-interactive) for `user`."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await flood_attempt(port, user)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def password_flood(port, user, key, attempts, parallel):
    sem = asyncio.Semaphore(parallel)
    async def one():
        async with sem:
            await flood_attempt(port)
    flood = asyncio.ensure_future(asyncio.gather(*(one() for _ in range(attempts))))
    await asyncio.sleep(0.5)
    lat = []
    for _ in range(5):
        t = time.perf_counter()
        await login_exec(port, user, key, local="127.0.0.2")
        lat.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    await flood
    return max(lat), statistics.median(lat), time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--logins", type=int, default=40)
    ap.add_argument("--concurrent", type=int, default=50)
    ap.add_argument("--total", type=int, default=200)
    ap.add_argument("--idle", type=int, default=20)
    ap.add_argument("--flood", type=int, default=1000)
    args = ap.parse_args()
    if not os.path.exists(TENURE):
        raise SystemExit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="tenure-bench-")
    procs = []
    try:
        key_path = os.path.join(work, "client")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key_path, "-C", "bench"], check=True)
        key2 = os.path.join(work, "bob")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key2, "-C", "bob"], check=True)
        key = asyncssh.read_private_key(key_path)
        bobkey = asyncssh.read_private_key(key2)

        # tenure
        shutil.copy(os.path.join(ROOT, "config.example.toml"), work)
        cfg = os.path.join(work, "config.example.toml")
        # The load comes from one address: let it hold every unauthenticated slot.
        text = (open(cfg).read().replace("idle_timeout_minutes = 30", "idle_timeout_minutes = 0")
                .replace("max_unauthenticated = 64", "max_unauthenticated = 256")
                .replace("max_unauthenticated_per_address = 16", "max_unauthenticated_per_address = 256")
                .replace("max_sessions_per_account = 10", "max_sessions_per_account = 512"))
        open(cfg, "w").write(text)
        subprocess.run([TENURE, "--config", cfg, "init", "--admin", "alice", "--key", key_path + ".pub"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([TENURE, "--config", cfg, "user", "create", "bob", "--email", "bob@x.io", "--display-name", "Bob", "--kind", "employee", "--role", "admin"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([TENURE, "--config", cfg, "key", "add", "bob"], stdin=open(key2 + ".pub"), check=True, stdout=subprocess.DEVNULL)
        subprocess.run([TENURE, "--config", cfg, "password", "set", "alice"], input=b"correct horse battery staple\n", check=True, stdout=subprocess.DEVNULL)
        tport = free_port()
        tenure = subprocess.Popen([TENURE, "--config", cfg, "serve", "--listen", f"127.0.0.1:{tport}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(tenure)
        wait_port(tport)

        # sshd baseline
        sport = free_port()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(work, "sshd_host")], check=True)
        auth = os.path.join(work, "authorized_keys")
        shutil.copy(key_path + ".pub", auth)
        os.chmod(auth, 0o600)
        sshd_cfg = os.path.join(work, "sshd_config")
        open(sshd_cfg, "w").write(f"""ListenAddress 127.0.0.1:{sport}
HostKey {work}/sshd_host
PidFile {work}/sshd.pid
AuthorizedKeysFile {auth}
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
KexAlgorithms curve25519-sha256
MaxStartups 200:30:300
MaxSessions 100
""")
        os.makedirs("/run/sshd", exist_ok=True)
        sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", sshd_cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sshd)
        wait_port(sport)
        user = os.environ.get("USER") or "root"

        res = {}
        loop = asyncio.new_event_loop()
        run = loop.run_until_complete
        run(login_exec(tport, "alice", key)); run(login_exec(sport, user, key))  # warm-up
        # Idle sessions first, while the server's allocator is fresh.
        t_pss = run(idle_sessions(tport, "alice", key, args.idle, lambda: pss_kb(tenure.pid)))
        s_pss = run(idle_sessions(sport, user, key, args.idle,
                                  lambda: sum(pss_kb(p) for p in descendants(sshd.pid))))
        res["pss_mb_per_idle_session"] = {"tenure": t_pss, "sshd": s_pss}
        res["latency_ms"] = {"tenure": run(sequential(tport, "alice", key, args.logins)),
                             "sshd": run(sequential(sport, user, key, args.logins))}
        t_cpu, t_rate = run(concurrent(tport, "alice", key, args.concurrent, args.total, tenure.pid, False))
        s_cpu, s_rate = run(concurrent(sport, user, key, args.concurrent, args.total, sshd.pid, True))
        res["cpu_ms_per_login"] = {"tenure": t_cpu, "sshd": s_cpu}
        res["logins_per_s"] = {"tenure": t_rate, "sshd": s_rate}
        worst, median, flood_s = run(password_flood(tport, "bob", bobkey, args.flood, 20))
        res["flood"] = {"attempts": args.flood, "key_login_max_ms": worst, "key_login_median_ms": median, "flood_seconds": flood_s}
        # Again without the lockout, so every attempt costs a real argon2 verification:
        # the semaphore, not the lockout, must keep key logins fast.
        tenure.send_signal(signal.SIGTERM); tenure.wait(10)
        open(cfg, "w").write(text.replace("max_failures = 5", "max_failures = 1000000"))
        tenure = subprocess.Popen([TENURE, "--config", cfg, "serve", "--listen", f"127.0.0.1:{tport}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(tenure)
        wait_port(tport)
        # Known (with a password) and unknown usernames take the same time to refuse.
        res["refusal_ms"] = {"known": run(refusal_ms(tport, "alice")), "unknown": run(refusal_ms(tport, "nobody-here"))}
        worst, median, flood_s = run(password_flood(tport, "bob", bobkey, args.flood, 20))
        res["flood_no_lockout"] = {"attempts": args.flood, "key_login_max_ms": worst, "key_login_median_ms": median, "flood_seconds": flood_s}

        print(f"{'figure':38} {'tenure':>10} {'sshd':>10} {'ratio':>8}")
        for name, unit in [("latency_ms", "ms"), ("cpu_ms_per_login", "ms"), ("logins_per_s", "/s"), ("pss_mb_per_idle_session", "MB")]:
            t, s = res[name]["tenure"], res[name]["sshd"]
            print(f"{name:38} {t:10.2f} {s:10.2f} {t / s if s else float('nan'):8.3f}")
        r = res["refusal_ms"]
        print(f"wrong password refused: known user {r['known']:.1f} ms, unknown user {r['unknown']:.1f} ms (median)")
        for label in ["flood", "flood_no_lockout"]:
            f = res[label]
            print(f"{label}: {f['attempts']} password attempts from 127.0.0.1 ({f['flood_seconds']:.1f} s): key login from 127.0.0.2 max {f['key_login_max_ms']:.0f} ms, median {f['key_login_median_ms']:.0f} ms")
        print(json.dumps(res))
    finally:
        for p in procs:
            if p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
