"""A hostile SSH client for tenure's end-to-end tests and benchmarks (asyncssh).

Each subcommand does one thing an attacker (or a careless script) does, on
loopback, bounded in count and time, and prints one JSON line of what it saw.

    hostile.py kbdint PORT USER ROUNDS            # one connection, wrong passwords each round
    hostile.py channels PORT USER KEY N           # N session channels on one connection
    hostile.py sessions PORT USER KEY N           # N connections held at once
    hostile.py consoles PORT USER KEY N COLS ROWS SECONDS   # N consoles that never read
    hostile.py userflood PORT N LENGTH            # N connections, unique LENGTH-byte usernames
    hostile.py hold PORT N BIND SECONDS           # N raw TCP connections from BIND that send nothing
    hostile.py bigexec PORT USER KEY LENGTH N     # N times `user show x<LENGTH a's>`, 8 at a time
    hostile.py consolecap PORT USER KEY N         # N consoles on one connection: which are refused, why
    hostile.py ptysize PORT USER KEY COLS ROWS    # one console: the furthest row and column it draws to
"""

import asyncio
import json
import socket
import sys
import time

import asyncssh

OPTS = dict(known_hosts=None, server_host_key_algs=["ssh-ed25519"])

# An attacker's client sends any username: asyncssh's SASLprep check (which
# refuses control characters) is not the server's protection, so it is off.
asyncssh.connection.saslprep = lambda text: text


def out(**kw):
    print(json.dumps(kw), flush=True)


class WrongAnswers(asyncssh.SSHClient):
    """Answers every keyboard-interactive round with a wrong password."""

    def __init__(self, rounds):
        self.rounds = rounds
        self.answered = 0

    def kbdint_auth_requested(self):
        return ""

    def kbdint_challenge_received(self, name, instructions, lang, prompts):
        if self.answered >= self.rounds:
            return None
        self.answered += 1
        return ["wrong password %d" % self.answered for _ in prompts]


async def wrong_answers(port, user, client, limit):
    """One keyboard-interactive connection answered by `client`; why it ended."""
    try:
        conn, _ = await asyncio.wait_for(
            asyncssh.create_connection(
                lambda: client,
                "127.0.0.1",
                int(port),
                username=user,
                client_keys=None,
                password=None,
                preferred_auth=["keyboard-interactive"],
                **OPTS,
            ),
            limit,
        )
        conn.close()
        return ""
    except Exception as e:  # noqa: BLE001 - we report whatever ended it
        return "%s: %s" % (type(e).__name__, e)


async def kbdint(port, user, rounds):
    client = WrongAnswers(int(rounds))
    start = time.monotonic()
    err = await wrong_answers(port, user, client, 30)
    out(answered=client.answered, error=err, seconds=round(time.monotonic() - start, 2))


async def channels(port, user, key, n):
    async with asyncssh.connect(
        "127.0.0.1", int(port), username=user, client_keys=[key], **OPTS
    ) as conn:
        opened, errors, held = 0, [], []
        for _ in range(int(n)):
            try:
                chan, _session = await conn.create_session(asyncssh.SSHClientSession)
                held.append(chan)
                opened += 1
            except asyncssh.ChannelOpenError as e:
                errors.append(e.reason)
        out(opened=opened, errors=errors)


async def sessions(port, user, key, n):
    conns, errors = [], []
    for _ in range(int(n)):
        try:
            conn = await asyncssh.connect(
                "127.0.0.1", int(port), username=user, client_keys=[key], **OPTS
            )
            # The server may accept the login and then say why it closes.
            result = await asyncio.wait_for(conn.run("whoami", check=False), 15)
            if result.exit_status == 0:
                conns.append(conn)
            else:
                errors.append("exit %s: %s" % (result.exit_status, result.stderr))
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as e:
            errors.append(str(getattr(e, "reason", e)))
    out(opened=len(conns), errors=errors)
    for c in conns:
        c.close()


async def consoles(port, user, key, n, cols, rows, seconds):
    conn = await asyncssh.connect(
        "127.0.0.1", int(port), username=user, client_keys=[key], **OPTS
    )
    opened = 0
    for _ in range(int(n)):
        try:
            # A session that never reads: its window shuts after the first frames.
            chan, _ = await conn.create_session(
                asyncssh.SSHClientSession,
                term_type="xterm-256color",
                term_size=(int(cols), int(rows)),
            )
            chan.pause_reading()
            opened += 1
        except asyncssh.ChannelOpenError:
            pass
    out(opened=opened)
    await asyncio.sleep(float(seconds))
    conn.close()


async def userflood(port, n, length):
    failed = 0
    for i in range(int(n)):
        name = ("u%06d" % i) + "a" * (int(length) - 7)
        if await wrong_answers(port, name, WrongAnswers(1), 15):
            failed += 1
    out(failed=failed)


async def bigexec(port, user, key, length, n):
    line = "user show x" + "a" * int(length)
    codes = []
    async with asyncssh.connect(
        "127.0.0.1", int(port), username=user, client_keys=[key], **OPTS
    ) as conn:
        for start in range(0, int(n), 8):
            batch = [
                conn.run(line, check=False)
                for _ in range(min(8, int(n) - start))
            ]
            for result in await asyncio.gather(*batch, return_exceptions=True):
                codes.append(getattr(result, "exit_status", str(result)))
    out(codes=codes)


async def consolecap(port, user, key, n):
    async with asyncssh.connect(
        "127.0.0.1", int(port), username=user, client_keys=[key], **OPTS
    ) as conn:
        procs = []
        for _ in range(int(n)):
            procs.append(
                await conn.create_process(term_type="xterm-256color", term_size=(80, 24))
            )
        await asyncio.sleep(1.5)
        refused = []
        for p in procs:
            if p.exit_status is not None:
                refused.append(await p.stderr.read())
        out(opened=len(procs) - len(refused), refused=refused)


async def ptysize(port, user, key, cols, rows):
    async with asyncssh.connect(
        "127.0.0.1", int(port), username=user, client_keys=[key], **OPTS
    ) as conn:
        proc = await conn.create_process(
            term_type="xterm-256color", term_size=(int(cols), int(rows)), encoding=None
        )
        seen = b""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                seen += await asyncio.wait_for(proc.stdout.read(1 << 16), 0.5)
            except asyncio.TimeoutError:
                if seen:
                    break
        import re

        spots = [(int(r), int(c)) for r, c in re.findall(rb"\x1b\[(\d+);(\d+)H", seen)]
        out(
            bytes=len(seen),
            max_row=max((r for r, _ in spots), default=0),
            max_col=max((c for _, c in spots), default=0),
        )
        proc.stdin.write(b"q")
        await asyncio.sleep(0.3)


def hold(port, n, bind, seconds):
    socks = []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind((bind, 0))
        try:
            s.connect(("127.0.0.1", int(port)))
            socks.append(s)
        except OSError:
            s.close()
    out(connected=len(socks))
    time.sleep(float(seconds))
    for s in socks:
        s.close()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "hold":
        hold(*args)
        return
    fn = {
        "kbdint": kbdint,
        "channels": channels,
        "sessions": sessions,
        "consoles": consoles,
        "userflood": userflood,
        "bigexec": bigexec,
        "consolecap": consolecap,
        "ptysize": ptysize,
    }[cmd]
    asyncio.run(fn(*args))


if __name__ == "__main__":
    main()
