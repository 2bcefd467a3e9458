#!/usr/bin/env python3
"""Silent and slow local clients (issue case 14).

Thousands of connections that send nothing, hundreds of kept-alive ones
that go quiet, a client that drips its header a byte at a time, one that
never reads its replies, and half-closed sockets: the request and idle
timeouts close them all (the daemon's open descriptors come back to where
they were), the connection cap holds, and a well-behaved client is answered
promptly throughout.
"""

import select
import socket
import time
import unittest

from harness import (IntegrationTest, open_fds, raise_own_fd_limit, raw_connect,
                     raw_exchange, read_until_closed, split_responses, wait_until)

REQUEST_TIMEOUT_S = 2.0
IDLE_TIMEOUT_S = 5.0
# The daemon's cap on open connections (daemon/local_server.hpp).
MAX_CONNECTIONS = 1024
SILENT_CLIENTS = 2000
IDLE_CLIENTS = 500
# A well-behaved client must be answered within this, whatever else goes on.
PROMPT_S = 1.5
# Time for the daemon to close what it should, beyond the timeout itself.
SLACK_S = 3.0

GET_HEALTH = b"GET /v1/health HTTP/1.1\r\n\r\n"


def is_closed_by_peer(sock, wait=0.0):
    """True when the daemon has closed this connection (EOF or reset)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    if not poller.poll(wait * 1000):
        return False
    try:
        return sock.recv(65536, socket.MSG_DONTWAIT) == b""
    except ConnectionResetError:
        return True
    except BlockingIOError:
        return False


class SlowClientsTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        raise_own_fd_limit()
        self.start_fake()
        self.start_daemon(top={"socket": {"request_timeout_s": REQUEST_TIMEOUT_S,
                                          "idle_timeout_s": IDLE_TIMEOUT_S}})
        self.token = self.get_token()
        self.pid = self.daemon.proc.pid
        self.baseline = self.settled_fds()
        self.clients = []
        self.addCleanup(self.close_clients)

    def close_clients(self):
        for sock in self.clients:
            sock.close()

    def settled_fds(self):
        """The daemon's descriptor count once it has stopped changing."""
        previous = -1
        for _ in range(20):
            count = open_fds(self.pid)
            if count == previous:
                return count
            previous = count
            time.sleep(0.1)
        return previous

    def assert_prompt(self, why):
        started = time.monotonic()
        reply = self.daemon.get("/v1/token?format=raw", timeout=PROMPT_S + SLACK_S)
        elapsed = time.monotonic() - started
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(reply.text, self.token)
        self.assertLess(elapsed, PROMPT_S, f"a good client waited {elapsed:.2f} s {why}")

    def wait_for_baseline(self, timeout, why):
        wait_until(lambda: open_fds(self.pid) <= self.baseline, timeout,
                   f"the daemon's descriptors back to {self.baseline} {why} "
                   f"(now {open_fds(self.pid)})")

    def test_silent_connections_are_capped_and_time_out(self):
        for _ in range(SILENT_CLIENTS):
            self.clients.append(raw_connect(self.daemon.socket_path))
        self.assert_prompt("behind 2,000 silent connections")

        peak = 0
        deadline = time.monotonic() + REQUEST_TIMEOUT_S + SLACK_S
        while time.monotonic() < deadline and open_fds(self.pid) > self.baseline:
            peak = max(peak, open_fds(self.pid))
            time.sleep(0.05)
        self.assertGreater(peak, self.baseline + MAX_CONNECTIONS // 2,
                           "the silent connections were never accepted")
        self.assertLessEqual(peak, self.baseline + MAX_CONNECTIONS,
                             "more connections open than the cap allows")

        self.wait_for_baseline(SLACK_S, "after the silent connections")
        still_open = [s for s in self.clients if not is_closed_by_peer(s, 0.01)]
        self.assertEqual(len(still_open), 0, "silent connections the daemon did not close")
        self.assert_prompt("after the silent connections")

    def test_idle_keep_alive_connections_close_after_the_idle_timeout(self):
        for _ in range(IDLE_CLIENTS):
            sock = raw_connect(self.daemon.socket_path)
            sock.sendall(GET_HEALTH)
            self.clients.append(sock)
        answered = time.monotonic()
        for sock in self.clients:
            head = sock.recv(65536)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:100])
        self.assert_prompt("beside 500 idle connections")

        # Past the request timeout, short of the idle one: all still open.
        time.sleep(max(0.0, answered + REQUEST_TIMEOUT_S + 0.5 - time.monotonic()))
        self.assertGreaterEqual(open_fds(self.pid), self.baseline + IDLE_CLIENTS,
                                "idle connections closed before the idle timeout")

        self.wait_for_baseline(IDLE_TIMEOUT_S + SLACK_S, "after the idle timeout")
        self.assertGreaterEqual(time.monotonic() - answered, IDLE_TIMEOUT_S - 0.5)
        still_open = [s for s in self.clients if not is_closed_by_peer(s, 0.01)]
        self.assertEqual(len(still_open), 0, "idle connections the daemon did not close")

    def test_a_header_dripped_byte_by_byte_is_cut_off(self):
        sock = raw_connect(self.daemon.socket_path)
        self.clients.append(sock)
        sock.sendall(b"GET /v1/token HTTP/1.1\r\n")
        started = time.monotonic()
        sent = 0
        closed = False
        while not closed and time.monotonic() - started < REQUEST_TIMEOUT_S + SLACK_S:
            self.assert_prompt("while a client drips its header")
            try:
                sock.sendall(b"X")
                sent += 1
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            closed = closed or is_closed_by_peer(sock, 0.2)
        elapsed = time.monotonic() - started
        self.assertTrue(closed, f"still open after {elapsed:.1f} s of one byte at a time")
        self.assertGreater(elapsed, REQUEST_TIMEOUT_S - 0.5,
                           "closed before the request timeout")
        self.assertGreater(sent, 3, "the client did not get to drip")
        self.wait_for_baseline(SLACK_S, "after the dripping client")

    def test_a_client_that_never_reads_is_dropped(self):
        sock = raw_connect(self.daemon.socket_path)
        self.clients.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        request = b"GET /v1/token?format=json HTTP/1.1\r\n\r\n"
        queued = 0
        try:
            for _ in range(20000):
                sock.send(request)
                queued += 1
        except BlockingIOError:
            pass
        self.assertGreater(queued, 100)
        wait_until(lambda: open_fds(self.pid) > self.baseline, SLACK_S,
                   "the daemon to accept the client that never reads")

        self.assert_prompt("while a client does not read its replies")
        self.wait_for_baseline(REQUEST_TIMEOUT_S + SLACK_S, "after the client that never reads")
        self.assert_prompt("after the client that never reads")

        # Nothing is left busy: a stop is quick.
        started = time.monotonic()
        self.assertEqual(self.daemon.stop(), 0)
        self.assertLess(time.monotonic() - started, 2.0)

    def test_half_closed_sockets(self):
        replies = split_responses(raw_exchange(self.daemon.socket_path,
                                               b"GET /v1/token?format=raw HTTP/1.1\r\n\r\n"))
        self.assertEqual([r.status for r in replies], [200], "request, then half-close")
        self.assertEqual(replies[0].body.decode(), self.token)

        for why, data in (("nothing sent", b""), ("half a request", b"GET /v1/tok")):
            with self.subTest(why):
                sock = raw_connect(self.daemon.socket_path, timeout=REQUEST_TIMEOUT_S + SLACK_S)
                self.clients.append(sock)
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                started = time.monotonic()
                self.assertEqual(read_until_closed(sock), b"")
                self.assertLess(time.monotonic() - started, 0.5,
                                f"{why}: the daemon waited for more after end of stream")
        self.wait_for_baseline(SLACK_S, "after the half-closed sockets")


if __name__ == "__main__":
    unittest.main()
