"""Server memory with one low-role account hitting every cap (issue 9).

Starts the release server in a temp dir with the shipped config, makes `bob`
(role user, one key), and lets bob do everything that used to exhaust memory:
as many connections as he may, each with as many consoles as it may, each with
a 1000x1000 pty that never reads; 8-at-a-time refused commands of 200 KB;
channels that send megabytes of stdin and no EOF; console pastes. Prints the
server's RSS before, its peak (VmHWM) during, and after.

    .venv-test/bin/python benches/caps_bench.py [--bin target/release/tenure] [--seconds 20]
"""

import argparse
import asyncio
import os
import re
import subprocess
import tempfile
import time

import asyncssh

OPTS = dict(known_hosts=None, server_host_key_algs=["ssh-ed25519"])


def rss(pid):
    text = open("/proc/%d/status" % pid).read()
    get = lambda k: int(re.search(k + r":\s+(\d+) kB", text).group(1)) / 1024
    return get("VmRSS"), get("VmHWM")


def reset_peak(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


async def consoles(port, key, per_conn, conns, tasks):
    opened = 0
    for _ in range(conns + 2):  # two more than the cap allows
        try:
            conn = await asyncssh.connect(
                "127.0.0.1", port, username="bob", client_keys=[key], **OPTS
            )
        except (asyncssh.Error, OSError):
            continue
        tasks.append(conn)
        for _ in range(per_conn + 2):
            try:
                chan, _ = await conn.create_session(
                    asyncssh.SSHClientSession,
                    term_type="xterm-256color",
                    term_size=(1000, 1000),
                )
                chan.pause_reading()
                # A paste the console must not keep burning CPU on.
                if not os.environ.get("NO_PASTE"):
                    chan.write("\x1b[200~" + "x" * 200_000 + "\x1b[201~")
                opened += 1
            except (asyncssh.Error, OSError):
                pass
    return opened


async def stdin_floods(port, key, n, tasks):
    conn = await asyncssh.connect("127.0.0.1", port, username="bob", client_keys=[key], **OPTS)
    tasks.append(conn)
    chunk = "a" * (1 << 20)
    for _ in range(n):
        try:
            chan, _ = await conn.create_session(asyncssh.SSHClientSession, "key add bob")
            for _ in range(64):  # 64 MB, never an EOF
                chan.write(chunk)
        except (asyncssh.Error, OSError):
            pass


async def big_refusals(port, key, n):
    async with asyncssh.connect("127.0.0.1", port, username="bob", client_keys=[key], **OPTS) as conn:
        line = "user show x" + "a" * 200_000
        for start in range(0, n, 8):
            await asyncio.gather(
                *[conn.run(line, check=False) for _ in range(8)], return_exceptions=True
            )


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/tenure")
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "config.toml")
        with open(os.path.join(here, "..", "config.example.toml")) as src, open(cfg, "w") as dst:
            dst.write(src.read())
        for who in ("alice", "bob"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, who)], check=True)
        t = lambda *a, **kw: subprocess.run([binary, "--config", cfg, *a], check=True, cwd=d, capture_output=True, **kw)
        t("init", "--admin", "alice", "--key", os.path.join(d, "alice.pub"))
        t("user", "create", "bob", "--email", "bob@example.com", "--display-name", "Bob", "--kind", "employee", "--role", "user")
        t("key", "add", "bob", input=open(os.path.join(d, "bob.pub"), "rb").read())
        server = subprocess.Popen(
            [binary, "--config", cfg, "serve", "--listen", "127.0.0.1:0"],
            cwd=d, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        line = server.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        key = os.path.join(d, "bob")
        time.sleep(0.5)
        idle, _ = rss(server.pid)
        reset_peak(server.pid)
        tasks = []
        start = time.monotonic()
        opened = await consoles(port, key, 10, 10, tasks)
        await stdin_floods(port, key, 0, tasks)  # the connections are all taken: refused
        await big_refusals(port, key, 0)
        samples = []
        while time.monotonic() - start < args.seconds:
            samples.append(rss(server.pid)[0])
            await asyncio.sleep(0.5)
        during, peak = rss(server.pid)
        for c in tasks:
            c.close()
        # Second round: the same account's stdin floods and big refused commands.
        tasks = []
        reset_peak(server.pid)
        await stdin_floods(port, key, 12, tasks)
        await big_refusals(port, key, 40)
        await asyncio.sleep(2)
        during2, peak2 = rss(server.pid)
        for c in tasks:
            c.close()
        await asyncio.sleep(3)
        after, _ = rss(server.pid)
        server.terminate()
        server.wait(10)
        print("consoles opened by one role-user account: %d (max_consoles_per_account = 4, of 10 sessions x 10 channels tried)" % opened)
        print("RSS idle %.0f MB; consoles never reading: %.0f MB now, peak %.0f MB (+%.0f MB)" % (idle, during, peak, peak - idle))
        print("stdin floods + 200 KB refused commands: %.0f MB now, peak %.0f MB (+%.0f MB)" % (during2, peak2, peak2 - idle))
        print("after the client left: %.0f MB" % after)


asyncio.run(main())
