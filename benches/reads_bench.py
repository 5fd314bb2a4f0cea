"""Large reads over ssh exec against a served database (issue 16).

Builds nothing itself: point it at a data directory made by
`BENCH_ACCOUNTS=1000000 BENCH_KEEP=DIR cargo bench --bench store`. It adds a
key to `root` once (offline), starts `serve` on the data, and runs each
command of the issue's table through the real OpenSSH client, reading the
output as fast as it comes. For each: seconds, bytes out, and the server's
peak RSS above its idle RSS (VmHWM, reset through /proc/PID/clear_refs).

    python3 benches/reads_bench.py --dir /tmp/bench1m [--bin target/release/tenure]
"""

import argparse
import os
import re
import subprocess
import time

COMMANDS = [
    "user list --json",
    "export --format csv",
    "audit tail -n 200000 --json",
    "audit verify",
    "lifecycle preview --until +365d --json",
    "report orphans",
]


def status(pid):
    text = open("/proc/%d/status" % pid).read()
    get = lambda k: int(re.search(k + r":\s+(\d+) kB", text).group(1)) / 1024
    return get("VmRSS"), get("VmHWM")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--bin", default="target/release/tenure")
    ap.add_argument("--only", default=None, help="run only commands containing this")
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
    start = time.monotonic()
    server = subprocess.Popen(
        [binary, "--config", cfg, "serve", "--listen", "127.0.0.1:0"],
        cwd=d, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    line = server.stdout.readline()
    port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
    print("serve listening after %.1f s" % (time.monotonic() - start))
    time.sleep(2)
    ssh = [
        "ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-i", key,
        "-p", str(port), "root@127.0.0.1",
    ]
    print("%-42s %9s %10s %12s %14s" % ("command", "seconds", "MB out", "lines/s", "server +MB peak"))
    try:
        for command in COMMANDS:
            if args.only and args.only not in command:
                continue
            idle, _ = status(server.pid)
            with open("/proc/%d/clear_refs" % server.pid, "w") as f:
                f.write("5")
            t0 = time.monotonic()
            proc = subprocess.Popen(ssh + [command], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            nbytes = lines = 0
            while True:
                chunk = proc.stdout.read(1 << 20)
                if not chunk:
                    break
                nbytes += len(chunk)
                lines += chunk.count(b"\n")
            proc.wait()
            secs = time.monotonic() - t0
            _, peak = status(server.pid)
            err = proc.stderr.read().decode(errors="replace").strip()
            print("%-42s %9.1f %10.1f %12.0f %14.0f%s" % (
                command, secs, nbytes / 1e6, lines / secs if secs else 0, peak - idle,
                ("  (exit %d: %s)" % (proc.returncode, err[:80])) if proc.returncode else ""))
    finally:
        server.terminate()
        server.wait(30)


main()
