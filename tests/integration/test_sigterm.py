#!/usr/bin/env python3
"""SIGTERM and SIGINT stop the daemon cleanly: exit 0, socket file removed."""

import os
import signal
import subprocess
import time
import unittest

from harness import IntegrationTest

EXIT_TIMEOUT_S = 5


class SigtermTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.start_fake()
        self.start_daemon()
        self.assert_issued(self.get_token())

    def test_sigterm_exits_zero_and_removes_socket(self):
        self.assert_clean_exit(signal.SIGTERM)

    def test_sigint_exits_zero_and_removes_socket(self):
        self.assert_clean_exit(signal.SIGINT)

    def assert_clean_exit(self, sig):
        self.assertTrue(os.path.exists(self.daemon.socket_path))
        started = time.monotonic()
        self.daemon.proc.send_signal(sig)
        try:
            code = self.daemon.proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.fail(f"the daemon did not exit within {EXIT_TIMEOUT_S} s of {sig.name}")
        self.assertEqual(code, 0, f"exit code after {sig.name}")
        self.assertLess(time.monotonic() - started, EXIT_TIMEOUT_S)
        self.assertFalse(os.path.exists(self.daemon.socket_path),
                         "the socket file is still there")


if __name__ == "__main__":
    unittest.main()
