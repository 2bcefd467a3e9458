#!/usr/bin/env python3
"""A ca_file from another CA: TLS fails before any HTTP, and status says so."""

import json
import re
import unittest

from harness import IntegrationTest

CLIENT_WAIT_S = 1
VERIFY_FAILED = re.compile(r"certificate verif", re.IGNORECASE)


class WrongCaTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.start_fake()
        self.start_daemon(ca_file=self.pki["other_ca"])

    def test_tls_error_reported_and_no_request_reaches_iam(self):
        error = self.wait_for_last_error()

        self.assertEqual(error["kind"], "tls", error)
        self.assertRegex(error["message"], VERIFY_FAILED)
        self.assertIsNone(error["http_status"])
        self.assertEqual(self.fake.token_requests(), [])
        self.assertGreaterEqual(len(self.fake.tls_errors()), 1,
                                "the daemon never tried a TLS handshake")

        reply = self.daemon.get(f"/v1/token?wait={CLIENT_WAIT_S}")
        self.assertEqual(reply.status, 503, reply)
        self.assertEqual(self.daemon.get("/v1/health").status, 503)
        self.assertIsNone(self.daemon.proc.poll(), "the daemon exited")

    def test_status_command_shows_the_tls_error(self):
        self.wait_for_last_error()

        result = self.daemon.cli("status", "--socket", self.daemon.socket_path,
                                 "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        profile = json.loads(result.stdout)["profiles"]["default"]
        self.assertEqual(profile["last_error"]["kind"], "tls")
        self.assertRegex(profile["last_error"]["message"], VERIFY_FAILED)
        self.assertGreaterEqual(profile["consecutive_failures"], 1)
        self.assertIn(profile["state"], ("starting", "degraded", "expired"))

        table = self.daemon.cli("status", "--socket", self.daemon.socket_path)
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertIn("default", table.stdout)


if __name__ == "__main__":
    unittest.main()
