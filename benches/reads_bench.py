"""Large reads over ssh exec against a served database (issue 16).

Builds nothing itself: point it at a data directory made by
`BENCH_ACCOUNTS=1000000 BENCH_KEEP=DIR cargo bench --bench store`. It adds a
key to `root` once (offline), starts `serve` on the data, waits until the
server has built its indexes, and runs each command of the issue's table
through the real OpenSSH client, reading the output as fast as it comes. For
each: seconds, bytes out, rows per second, and the server's peak RSS above
its idle RSS (VmHWM, reset through /proc/PID/clear_refs before the command).

With `--together` it also runs two big commands at once and one whose
client reads nothing for its first 5 s (the server must wait for it, not
hold its output), each with the peak RSS above idle over the whole run.

With `--repeat N` each command runs N times in a row; the table keeps the
slowest time and the highest memory (the first run after the start is
usually the highest: later ones start from a higher idle).

With `--before OLD_BINARY` the same table is measured with that binary first
(e.g. a release build of an earlier commit) and both are printed side by
side; the issue's own figures (the buffered output of issue 16's table) are
printed beside them for reference.

    python3 benches/reads_bench.py --dir /tmp/bench1m [--bin target/release/tenure] [--before /tmp/tenure-old] [--only audit] [--repeat 2]

`audit verify --since-checkpoint` runs after the full `audit verify` (which
records the checkpoint) and an untimed import of 1,000 accounts over ssh.
Note: a newer binary seals an older database's audit trail into segment
files when it first opens it, which an older binary cannot read: measure
`--before` on a fresh copy of the database.
"""

import argparse
import os
import re
import subprocess
import sys
import time

COMMANDS = [
    "user list --json",
    "export --format csv",
    "audit tail -n 200000 --json",
    "audit verify",
    # After the full check's checkpoint and ~1,000 new events (an import, not timed).
    "audit verify --since-checkpoint",
    "lifecycle preview --until +365d --json",
    "report orphans",
]

# Issue 16's table (buffered output, release build, this machine): seconds, server +MB.
ISSUE = {
    "user list --json": (38.9, 7180),
    "export --format csv": (13.4, 218),
    "audit tail -n 200000 --json": (6.9, 180),
    "audit verify": (19.2, 380),
    "audit verify --since-checkpoint": (19.2, 380),
    "lifecycle preview --until +365d --json": (21.3, None),
    "report orphans": (15.8, 220),
}


def status(pid):
    text = open("/proc/%d/status" % pid).read()
    get = lambda k: int(re.search(k + r":\s+(\d+) kB", text).group(1)) / 1024
    return get("VmRSS"), get("VmHWM")


# Runs of several commands at once, and one client that reads nothing for
# its first seconds: (label, [(command, seconds the client waits before reading)]).
EXTRA = [
    ("2 x user list --json at once", [("user list --json", 0), ("user list --json", 0)]),
    ("2 x export --format csv at once", [("export --format csv", 0), ("export --format csv", 0)]),
    ("user list --json, client reads after 5 s", [("user list --json", 5)]),
]


def run_together(pid, ssh, runs):
    """Starts every command at once, each read by a thread (after its
    wait); the server's peak RSS above idle over all of them."""
    import threading
    idle, _ = status(pid)
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")
    counts = [[0, 0, ""] for _ in runs]

    def read(i, command, wait):
        proc = subprocess.Popen(ssh + [command], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(wait)
        while True:
            chunk = proc.stdout.read(1 << 20)
            if not chunk:
                break
            counts[i][0] += len(chunk)
            counts[i][1] += rows_in(command, chunk)
        proc.wait()
        if proc.returncode:
            counts[i][2] = "exit %d: %s" % (proc.returncode, proc.stderr.read().decode(errors="replace")[:80])

    t0 = time.monotonic()
    threads = [threading.Thread(target=read, args=(i, c, w)) for i, (c, w) in enumerate(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    _, peak = status(pid)
    nbytes = sum(c[0] for c in counts)
    rows = sum(c[1] for c in counts)
    return (secs, nbytes / 1e6, rows / secs if secs else 0, peak - idle, idle,
            " ".join(c[2] for c in counts if c[2]))


def rows_in(command, chunk):
    """Rows of output in a chunk: elements of a JSON array (`  {` at the
    array's indent), else lines; for `audit verify`, the events it checked."""
    if command.startswith("audit verify"):
        m = re.search(rb"(\d+) events", chunk)
        return int(m.group(1)) if m else 0
    if "--json" in command:
        return chunk.count(b"\n  {")
    return chunk.count(b"\n")


def measure(binary, d, key, only, extra, repeat=1):
    cfg = os.path.join(d, "config.toml")
    start = time.monotonic()
    server = subprocess.Popen(
        [binary, "--config", cfg, "serve", "--listen", "127.0.0.1:0"],
        cwd=d, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    results = {}
    try:
        line = server.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        print("%s: listening after %.1f s" % (binary, time.monotonic() - start), flush=True)
        # The indexes are built in the background: wait for them (bounded).
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line or "indexed" in line:
                break
        print("%s: indexed after %.1f s" % (binary, time.monotonic() - start), flush=True)
        time.sleep(2)
        ssh = [
            "ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-i", key,
            "-p", str(port), "root@127.0.0.1",
        ]
        for command in [c for c in COMMANDS for _ in range(repeat)]:
            if only and only not in command:
                continue
            if command == "audit verify --since-checkpoint":
                # ~1,000 new events after the checkpoint the full check recorded.
                tag = "%06d" % (time.time_ns() // 1000 % 1000000)
                csv_rows = "".join("ck%s%04d,Checkpoint %d,ck%s%04d@bench.example,employee\n" % (tag, i, i, tag, i)
                               for i in range(1000))
                subprocess.run(ssh + ["import"], input=("username,display_name,email,kind\n" + csv_rows).encode(),
                               check=True, stdout=subprocess.DEVNULL)
            idle, _ = status(server.pid)
            with open("/proc/%d/clear_refs" % server.pid, "w") as f:
                f.write("5")
            t0 = time.monotonic()
            proc = subprocess.Popen(ssh + [command], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            nbytes = rows = 0
            while True:
                chunk = proc.stdout.read(1 << 20)
                if not chunk:
                    break
                nbytes += len(chunk)
                rows += rows_in(command, chunk)
            proc.wait()
            secs = time.monotonic() - t0
            _, peak = status(server.pid)
            err = proc.stderr.read().decode(errors="replace").strip()
            result = (secs, nbytes / 1e6, rows / secs if secs else 0, peak - idle, idle,
                      ("exit %d: %s" % (proc.returncode, err[:80])) if proc.returncode else "")
            print("  %-40s %7.1f s %9.1f MB %10.0f rows/s  +%5.0f MB (idle %.0f MB) %s" % (
                (command,) + result), flush=True)
            # Over repeats: the slowest time and the highest memory are kept.
            if command in results:
                old = results[command]
                result = (max(old[0], secs), result[1], min(old[2], result[2]), max(old[3], result[3]),
                          old[4], old[5] or result[5])
            results[command] = result
        if extra:
            for label, runs in EXTRA:
                results[label] = run_together(server.pid, ssh, runs)
                print("  %-40s %7.1f s %9.1f MB %10.0f rows/s  +%5.0f MB (idle %.0f MB) %s" % (
                    (label,) + results[label]), flush=True)
    finally:
        server.terminate()
        server.wait(30)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--bin", default="target/release/tenure")
    ap.add_argument("--before", default=None, help="an earlier binary to measure side by side")
    ap.add_argument("--only", default=None, help="run only commands containing this")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each command this many times in a row; the table keeps the slowest time and the highest memory")
    ap.add_argument("--together", action="store_true",
                    help="also run commands at once and a client that reads late (EXTRA)")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    d = os.path.abspath(args.dir)
    here = os.path.dirname(os.path.abspath(__file__))
    cfg = os.path.join(d, "config.toml")
    if not os.path.exists(cfg):
        with open(os.path.join(here, "..", "config.example.toml")) as src, open(cfg, "w") as dst:
            dst.write(src.read())
    key = os.path.join(d, "root_key")
    if not os.path.exists(key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        with open(key + ".pub", "rb") as pub:
            subprocess.run([binary, "--config", cfg, "key", "add", "root"], input=pub.read(), check=True, cwd=d)
    before = measure(os.path.abspath(args.before), d, key, args.only, args.together, args.repeat) if args.before else {}
    now = measure(binary, d, key, args.only, args.together, args.repeat)

    def cell(r):
        return "%7.1f s %6.0f MB" % (r[0], r[3]) if r else "%16s" % "-"

    print()
    print("%-40s | %-16s | %-16s | %-16s | %9s | %s" % (
        "command", "issue (buffered)", "before", "now", "rows/s", "MB out"))
    for command in COMMANDS + [label for label, _ in EXTRA]:
        if command not in now:
            continue
        t, mb = ISSUE.get(command, (None, None))
        issue = "%16s" % "-" if t is None else "%7.1f s %6s MB" % (t, "-" if mb is None else "%d" % mb)
        r = now[command]
        print("%-40s | %s | %s | %s | %9.0f | %.0f %s" % (
            command, issue, cell(before.get(command)), cell(r), r[2], r[1], r[5]))
    sys.stdout.flush()


main()
