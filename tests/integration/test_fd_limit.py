#!/usr/bin/env python3
"""A low open-file limit (issue case 14, RLIMIT_NOFILE).

Started under a low limit, the daemon caps its connections below it and
still answers a well-behaved client while hundreds of silent ones queue.
When the limit is lowered under a running daemon, accept() fails with
EMFILE: the daemon frees descriptors held by connections that wait for a
request, or pauses, instead of retrying in a tight loop, and recovers once
descriptors are free again.
"""

import resource
import time
import unittest

from harness import (IntegrationTest, cpu_seconds, open_fds, raise_own_fd_limit,
                     raw_connect, wait_until)

REQUEST_TIMEOUT_S = 2.0
LOW_LIMIT = 64
# connection_limit() in daemon/local_server.cpp for a limit of 64.
CONNECTIONS_AT_LOW_LIMIT = 32
SILENT_CLIENTS = 300
PROMPT_S = 1.5
SLACK_S = 3.0
# CPU the daemon may use while clients queue at the limit; a listener that
# retried accept() in a loop would use the whole window.
CPU_WINDOW_S = 2.0
MAX_CPU_S = 0.5


class FdLimitTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        raise_own_fd_limit()
        self.start_fake()
        self.prepare_daemon(top={"socket": {"request_timeout_s": REQUEST_TIMEOUT_S}})
        self.clients = []
        self.addCleanup(self.close_clients)

    def close_clients(self):
        for sock in self.clients:
            sock.close()

    def open_silent_clients(self, count):
        for _ in range(count):
            self.clients.append(raw_connect(self.daemon.socket_path))

    def token_within(self, limit, why):
        started = time.monotonic()
        reply = self.daemon.get("/v1/token?format=raw", timeout=limit + SLACK_S)
        elapsed = time.monotonic() - started
        self.assertEqual(reply.status, 200, reply)
        self.assertLess(elapsed, limit, f"a good client waited {elapsed:.2f} s {why}")

    def assert_not_spinning(self, why):
        pid = self.daemon.proc.pid
        before = cpu_seconds(pid)
        time.sleep(CPU_WINDOW_S)
        used = cpu_seconds(pid) - before
        self.assertLess(used, MAX_CPU_S,
                        f"the daemon used {used:.2f} s of CPU in {CPU_WINDOW_S} s {why}")

    def test_started_under_a_low_limit(self):
        self.daemon.start(prefix=("prlimit", f"--nofile={LOW_LIMIT}:{LOW_LIMIT}"))
        self.get_token()
        pid = self.daemon.proc.pid
        baseline = open_fds(pid)
        self.assertIn(f"allows only {CONNECTIONS_AT_LOW_LIMIT} connections",
                      self.daemon.read_log())

        self.open_silent_clients(SILENT_CLIENTS)
        self.token_within(PROMPT_S, f"behind {SILENT_CLIENTS} silent clients")
        peak = max(open_fds(pid) for _ in range(20))
        self.assertLessEqual(peak, baseline + CONNECTIONS_AT_LOW_LIMIT)
        self.assert_not_spinning("with clients queued at the connection limit")

        wait_until(lambda: open_fds(pid) <= baseline, REQUEST_TIMEOUT_S * 4 + SLACK_S,
                   "the silent connections to be closed")
        self.token_within(PROMPT_S, "after the silent clients")

    def test_accept_pauses_when_out_of_descriptors(self):
        self.daemon.start()
        self.get_token()
        pid = self.daemon.proc.pid
        baseline = open_fds(pid)
        _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        few = baseline + 8
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (few, hard))

        self.open_silent_clients(SILENT_CLIENTS)
        wait_until(lambda: "accept failed: Too many open files" in self.daemon.read_log(),
                   SLACK_S, "the daemon to run out of descriptors")
        self.assertLessEqual(open_fds(pid), few)
        self.assert_not_spinning("while accept() fails with EMFILE")
        # Queued behind hundreds of clients with 8 descriptors to spare:
        # answered, if not at once.
        self.token_within(5.0, "with 8 descriptors to spare")

        resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
        wait_until(lambda: open_fds(pid) <= baseline, REQUEST_TIMEOUT_S * 2 + SLACK_S,
                   "the silent connections to be closed")
        self.assertIn("accepting connections again", self.daemon.read_log())
        self.token_within(PROMPT_S, "once descriptors are free again")


if __name__ == "__main__":
    unittest.main()
