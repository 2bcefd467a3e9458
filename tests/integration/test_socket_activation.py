#!/usr/bin/env python3
"""Socket activation with the real systemd-socket-activate: the daemon
serves on the socket it is passed, leaves the file alone on exit, and
refuses a socket that is not a listening Unix stream socket."""

import os
import shutil
import signal
import socket
import unittest

from harness import (IntegrationTest, STARTUP_TIMEOUT_S, start_process, unix_request,
                     wait_until)

EXIT_TIMEOUT_S = 5


def socket_activate():
    path = shutil.which("systemd-socket-activate")
    if path is None:
        raise AssertionError("systemd-socket-activate not found: install Debian's "
                             "systemd package (scripts/lib.sh lists it)")
    return path


class SocketActivationTest(IntegrationTest):

    def start_activated(self, *listen_args):
        """The daemon under systemd-socket-activate, which binds the socket
        itself and execs the daemon on the first connection or datagram."""
        argv = [socket_activate(), *listen_args, self.daemon.binary, "run",
                "-c", self.daemon.config_path]
        self.daemon.proc = start_process(argv, self.daemon.log_path)

    def wait_for_log(self, text):
        wait_until(lambda: text in self.daemon.read_log(), STARTUP_TIMEOUT_S,
                   f"{text!r} in the daemon's log")

    def test_serves_on_the_passed_socket_and_leaves_it_on_exit(self):
        self.start_fake()
        self.prepare_daemon()
        path = self.daemon.socket_path
        self.start_activated("--listen", path)
        self.wait_for_log(f"Listening on {path}")
        before = os.stat(path)

        # The first connection starts the daemon, which answers it.
        reply = unix_request(path, "GET", "/v1/token")
        self.assertEqual(reply.status, 200, reply)
        self.assert_issued(reply.json()["access_token"])
        self.assertIn(f"listening on {path} (passed by systemd)", self.daemon.read_log())
        self.assertNotIn("removing stale socket", self.daemon.read_log())
        self.assertEqual(os.stat(path).st_ino, before.st_ino, "the socket file was replaced")

        self.daemon.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.daemon.proc.wait(EXIT_TIMEOUT_S), 0)
        self.assertTrue(os.path.exists(path), "the daemon removed the socket unit's file")
        self.assertEqual(os.stat(path).st_ino, before.st_ino)

    def test_a_datagram_socket_is_refused(self):
        self.start_fake()
        self.prepare_daemon()
        path = os.path.join(self.tmp, "datagram.sock")
        self.start_activated("--datagram", "--listen", path)
        self.wait_for_log(f"Listening on {path}")

        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"wake up", path)
        code = self.daemon.proc.wait(EXIT_TIMEOUT_S)
        self.assertEqual(code, 1)
        self.assertIn("the socket systemd passed is not a listening Unix stream socket",
                      self.daemon.read_log())
        self.assertTrue(os.path.exists(path))

    def test_without_a_passed_socket_it_makes_its_own(self):
        self.start_fake()
        self.start_daemon()
        self.assert_issued(self.get_token())
        self.assertNotIn("passed by systemd", self.daemon.read_log())
        self.assertEqual(self.daemon.stop(), 0)
        self.assertFalse(os.path.exists(self.daemon.socket_path))

    def test_two_passed_sockets_are_refused(self):
        self.start_fake()
        self.prepare_daemon()
        first = self.daemon.socket_path
        second = os.path.join(self.tmp, "second.sock")
        self.start_activated("--listen", first, "--listen", second)
        self.wait_for_log(f"Listening on {second}")

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(first)
            code = self.daemon.proc.wait(EXIT_TIMEOUT_S)
        self.assertEqual(code, 1)
        self.assertIn("systemd passed 2 sockets", self.daemon.read_log())


if __name__ == "__main__":
    unittest.main()
