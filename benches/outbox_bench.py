#!/usr/bin/env python3
"""Outbox throughput: tenure delivering queued mail to a local SMTP server.

    python3 -m venv /tmp/benchenv && /tmp/benchenv/bin/pip install aiosmtpd
    cargo build --release
    /tmp/benchenv/bin/python benches/outbox_bench.py [--mails 2000]

Imports N accounts offline with SMTP configured (each queues its "created"
mail to IT and the sponsor), starts an in-process aiosmtpd that counts
messages on loopback, starts `tenure serve`, and times until all arrived.
"""
import argparse, os, shutil, signal, socket, subprocess, tempfile, time

from aiosmtpd.controller import Controller

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TENURE = os.path.join(ROOT, "target", "release", "tenure")


class Counter:
    def __init__(self):
        self.count = 0
        self.first = None

    async def handle_DATA(self, server, session, envelope):
        if self.first is None:
            self.first = time.perf_counter()
        self.count += 1
        return "250 OK"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mails", type=int, default=2000)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tenure-outbox-")
    server = None
    try:
        smtp_port = free_port()
        shutil.copy(os.path.join(ROOT, "config.example.toml"), work)
        cfg = os.path.join(work, "config.example.toml")
        with open(cfg, "a") as f:
            f.write(f'\n[notify.smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nfrom = "tenure <t@example.com>"\nsecurity = "plain"\n')
        subprocess.run([TENURE, "--config", cfg, "init", "--admin", "alice"], check=True, stdout=subprocess.DEVNULL)
        rows = ["username,display_name,email,kind,end_date"] + [f"u{i:06},User {i},u{i}@example.com,contractor,+90d" for i in range(args.mails)]
        subprocess.run([TENURE, "--config", cfg, "import"], input="\n".join(rows).encode(), check=True, stdout=subprocess.DEVNULL)
        counter = Counter()
        controller = Controller(counter, hostname="127.0.0.1", port=smtp_port)
        controller.start()
        t0 = time.perf_counter()
        server = subprocess.Popen([TENURE, "--config", cfg, "serve", "--listen", f"127.0.0.1:{free_port()}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 600
        while counter.count < args.mails and time.time() < deadline:
            time.sleep(0.05)
        elapsed = time.perf_counter() - (counter.first or t0)
        controller.stop()
        print(f"outbox: {counter.count}/{args.mails} mails delivered in {elapsed:.2f} s = {counter.count / elapsed:.0f} mails/s (after the first; server start included: {time.perf_counter() - t0:.2f} s)")
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
