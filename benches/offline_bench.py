"""The break-glass path at scale (issue 10 §2): single-account offline
commands, and how soon `serve` listens and takes a key login.

Builds nothing itself: point it at a data directory made by
`BENCH_ACCOUNTS=1000000 BENCH_KEEP=DIR cargo bench --bench store` (accounts
u0000000…). The first command run on a database from before the stored
uniqueness indexes writes them once; that run is reported on its own.

    python3 benches/offline_bench.py --dir /tmp/bench1m [--bin target/release/tenure] [--runs 5]
"""

import argparse
import os
import re
import statistics
import subprocess
import time


def timed(cmd, cwd, stdin=None):
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, input=stdin, capture_output=True)
    return time.monotonic() - start, done


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--bin", default="target/release/tenure")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    d = os.path.abspath(args.dir)
    cfg = os.path.join(d, "config.toml")
    tenure = lambda *words: [binary, "--config", cfg, *words]

    first, done = timed(tenure("user", "show", "u0000001"), d)
    print("first open (writes the stored indexes if missing): %.2f s, exit %d" % (first, done.returncode))

    key = os.path.join(d, "offline_bench_key")
    if not os.path.exists(key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    pub = open(key + ".pub", "rb").read()
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", key + ".pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]

    figures = {name: [] for name in ["user show", "user disable", "user enable", "key add", "key remove", "user create"]}
    stamp = int(time.time())
    for run in range(args.runs):
        name = "u%07d" % (1000 + run)
        steps = [
            ("user show", tenure("user", "show", name), None),
            ("user disable", tenure("user", "disable", name, "--reason", "offline bench"), None),
            ("user enable", tenure("user", "enable", name), None),
            ("key add", tenure("key", "add", name), pub),
            ("key remove", tenure("key", "remove", name, fingerprint), None),
            ("user create", tenure("user", "create", "ob%d%d" % (stamp, run),
                                   "--email", "ob%d%d@example.org" % (stamp, run),
                                   "--display-name", "Offline Bench", "--kind", "contractor",
                                   "--end", "2027-06-30"), None),
        ]
        for label, cmd, stdin in steps:
            seconds, done = timed(cmd, d, stdin)
            if done.returncode != 0:
                raise SystemExit("%s failed: %s" % (label, done.stderr.decode(errors="replace")))
            figures[label].append(seconds)
    for label, values in figures.items():
        print("%-13s median %.2f s  (min %.2f, max %.2f, %d runs)"
              % (label, statistics.median(values), min(values), max(values), len(values)))

    # serve: time to the listening line, then to a finished key login.
    subprocess.run(tenure("key", "add", "u0000999"), cwd=d, input=pub, capture_output=True)
    start = time.monotonic()
    server = subprocess.Popen(tenure("serve", "--listen", "127.0.0.1:0"), cwd=d,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        listening = time.monotonic() - start
        port = re.search(r"127\.0\.0\.1:(\d+)", line).group(1)
        login = subprocess.run(
            ["ssh", "-p", port, "-i", key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "u0000999@127.0.0.1", "whoami"],
            capture_output=True, text=True)
        logged_in = time.monotonic() - start
        indexed = server.stdout.readline()
        ready = time.monotonic() - start
        print("serve listening after %.2f s; key login done after %.2f s (exit %d)"
              % (listening, logged_in, login.returncode))
        print("in-memory indexes after %.1f s: %s" % (ready, indexed.strip()))
    finally:
        server.terminate()
        server.wait()
    subprocess.run(tenure("key", "remove", "u0000999", fingerprint), cwd=d, capture_output=True)


if __name__ == "__main__":
    main()
