"""Pieces shared by the tests of IAM faults (test_iam_*.py): many clients at
once over the Unix socket, a client that polls in the background, and
short ways to read the fake IAM's request log and the daemon's log.

It builds on harness.py and is not a test itself.
"""

import asyncio
import hashlib
import re
import threading
import time

from harness import POLL_INTERVAL_S, wait_until

# How long one of many concurrent clients may take in all.
CONCURRENT_CLIENT_TIMEOUT_S = 20.0


def sha256(text):
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def refresh_token_id(token):
    """What the fake records for a refresh token it was sent."""
    return sha256(token)[:16]


# --- many clients at once -----------------------------------------------------


class RawReply:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    def __repr__(self):
        return f"<RawReply {self.status} after {self.elapsed:.2f} s {self.body[:120]!r}>"


async def _one_get(socket_path, target, timeout):
    started = time.monotonic()
    reader, writer = await asyncio.open_unix_connection(socket_path)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n"
                     "Connection: close\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    elapsed = time.monotonic() - started
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawReply(int(lines[0].split(" ")[1]), headers, body, elapsed)


async def _many_gets(socket_path, target, count, timeout):
    return await asyncio.gather(*(_one_get(socket_path, target, timeout)
                                  for _ in range(count)))


def concurrent_gets(socket_path, target, count, timeout=CONCURRENT_CLIENT_TIMEOUT_S):
    """`count` clients, each on its own connection, all sent at once from one
    thread; returns their replies in order."""
    return asyncio.run(_many_gets(socket_path, target, count, timeout))


# --- a client polling in the background ---------------------------------------


class Poller:
    """Asks for the token every `interval` seconds on a thread and keeps
    (time sent, status, body) of every reply, and how long each took; use as
    a context manager."""

    def __init__(self, daemon, target="/v1/token?format=raw&wait=1",
                 interval=POLL_INTERVAL_S * 2):
        self.daemon = daemon
        self.target = target
        self.interval = interval
        self.replies = []
        self.durations = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            sent = time.time()
            try:
                reply = self.daemon.get(self.target)
                self.durations.append(time.time() - sent)
                self.replies.append((sent, reply.status, reply.text))
            except OSError as error:
                self.errors.append((sent, repr(error)))
            self._stop.wait(self.interval)

    def statuses(self):
        return [status for _, status, _ in self.replies]


# --- the fake's request log -----------------------------------------------------


def requests_after(fake, moment, grant_type=None):
    """Token requests the fake received after `moment` (its clock)."""
    found = [r for r in fake.token_requests() if r["time"] > moment]
    if grant_type is not None:
        found = [r for r in found if r["grant_type"] == grant_type]
    return found


def wait_for_request(fake, moment, what, timeout=10.0, grant_type=None, status=None):
    """The first token request after `moment` (with that grant and status)."""
    def found():
        for request in requests_after(fake, moment, grant_type):
            if status is None or request["status"] == status:
                return request
        return None

    return wait_until(found, timeout, what)


def gaps(requests):
    times = [r["time"] for r in requests]
    return [b - a for a, b in zip(times, times[1:])]


# --- the daemon's log -------------------------------------------------------------


def log_lines(daemon, pattern):
    """Lines of the daemon's log that match the regular expression."""
    return [line for line in daemon.read_log().splitlines() if re.search(pattern, line)]


def wait_for_log(daemon, pattern, timeout=10.0):
    return wait_until(lambda: log_lines(daemon, pattern), timeout,
                      f"a log line matching {pattern!r}")


def wait_for_error_message(test, text, timeout=10.0):
    """The default profile's last_error once its message contains `text`."""
    def matching():
        error = test.daemon.profile_status()["last_error"]
        return error if error and text in error["message"] else None

    return wait_until(matching, timeout, f"a last_error saying {text!r}")
