#!/usr/bin/env python3
"""What the daemon finds at its socket path at start-up (issue case 15).

A socket left behind by a daemon killed with SIGKILL, that nobody listens
on any more, is replaced. A socket a live process serves on is left alone:
the second daemon exits 1 and says so, having asked with a real request. A
regular file, a directory or a symbolic link at the path is refused with an
error that names the path and what is there, and nothing is deleted.
"""

import os
import signal
import socket
import unittest

from harness import Daemon, IntegrationTest, wait_until

EXIT_TIMEOUT_S = 10
RUNTIME_FAILURE = 1


class SocketFileTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.start_fake()
        self.prepare_daemon()
        self.path = self.daemon.socket_path

    def second_daemon(self):
        """Another daemon with the same config (and socket path), own log."""
        second = Daemon(self.tmp)
        second.log_path = os.path.join(self.tmp, "second-daemon.log")
        self.addCleanup(second.stop)
        return second

    def assert_refused_to_start(self, daemon, *fragments):
        daemon.start(wait_for_socket=False)
        code = daemon.proc.wait(EXIT_TIMEOUT_S)
        log = daemon.read_log()
        self.assertEqual(code, RUNTIME_FAILURE, log)
        for fragment in (self.path, *fragments):
            self.assertIn(fragment, log)
        self.check_no_sanitizer_report(log, daemon.log_path)
        return log

    def test_a_stale_socket_after_kill_9_is_replaced(self):
        self.daemon.start()
        self.assert_issued(self.get_token())
        self.daemon.proc.send_signal(signal.SIGKILL)
        self.daemon.proc.wait(EXIT_TIMEOUT_S)
        self.assertTrue(os.path.exists(self.path), "SIGKILL should leave the socket file")

        self.daemon.start()
        self.assert_issued(self.get_token())
        self.assertIn(f"removing stale socket {self.path}", self.daemon.read_log())

    def test_a_live_daemon_is_left_alone(self):
        self.daemon.start()
        token = self.get_token()
        inode = os.stat(self.path).st_ino

        self.assert_refused_to_start(self.second_daemon(), "GET /v1/health: HTTP 200",
                                     "probably another iam-tokend", "not taking it over")
        self.assertEqual(os.stat(self.path).st_ino, inode, "the live socket was replaced")
        self.assertEqual(self.get_token(), token, "the running daemon stopped serving")

    def test_a_live_listener_that_is_not_iam_tokend_is_left_alone(self):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(listener.close)
        listener.bind(self.path)
        listener.listen(8)
        inode = os.stat(self.path).st_ino

        self.assert_refused_to_start(self.daemon, "did not answer GET /v1/health",
                                     "not taking it over")
        self.assertEqual(os.stat(self.path).st_ino, inode)

    def test_a_regular_file_is_refused_and_kept(self):
        with open(self.path, "w", encoding="ascii") as f:
            f.write("keep me\n")
        self.assert_refused_to_start(self.daemon, "there is a regular file at this path")
        with open(self.path, encoding="ascii") as f:
            self.assertEqual(f.read(), "keep me\n")

    def test_a_directory_is_refused_and_kept(self):
        os.mkdir(self.path)
        inside = os.path.join(self.path, "inside")
        open(inside, "w", encoding="ascii").close()
        self.assert_refused_to_start(self.daemon, "there is a directory at this path")
        self.assertTrue(os.path.isfile(inside))

    def test_a_symbolic_link_is_refused_and_kept(self):
        for target in (os.path.join(self.tmp, "elsewhere"), "/nonexistent/target.sock"):
            with self.subTest(target):
                os.symlink(target, self.path)
                self.assert_refused_to_start(self.daemon,
                                             f"there is a symbolic link to {target}")
                self.assertEqual(os.readlink(self.path), target)
                os.remove(self.path)

    def test_a_symbolic_link_to_a_live_socket_is_refused(self):
        self.daemon.start()
        self.get_token()
        second = self.second_daemon()
        moved = os.path.join(self.tmp, "other.sock")
        second.write_config(self.fake.token_url, self.pki["ca"], self.api_key_file,
                            top={"socket": {"path": moved}})
        os.symlink(self.path, moved)
        second.start(wait_for_socket=False)
        self.assertEqual(second.proc.wait(EXIT_TIMEOUT_S), RUNTIME_FAILURE)
        self.assertIn(f"socket {moved}: there is a symbolic link to {self.path}",
                      second.read_log())
        self.assertEqual(os.readlink(moved), self.path)
        wait_until(lambda: self.daemon.get("/v1/health").status == 200, 2, "the first daemon")


if __name__ == "__main__":
    unittest.main()
