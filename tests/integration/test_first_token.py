#!/usr/bin/env python3
"""The first token: one API-key login, then the token through every client,
and the local API's routes around it."""

import hashlib
import time
import unittest

from harness import (APIKEY_GRANT, BASIC_BX, FORM_TYPE, IntegrationTest,
                     UnixHTTPConnection, curl_unix, header_value)

TOKEN_LIFE_S = 3600
# Leeway for the seconds that pass between IAM's reply and the check.
CLOCK_LEEWAY_S = 30


class FirstTokenTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.start_fake(token_life=TOKEN_LIFE_S)
        self.start_daemon()

    def test_token_through_curl_matches_one_issued(self):
        status, head, body = curl_unix(self.daemon.socket_path, "/v1/token")
        self.assertEqual(status, 200, body)
        self.assertEqual(header_value(head, "Cache-Control"), "no-store")
        self.assertIn("application/json", header_value(head, "Content-Type") or "")

        reply = self.daemon.get("/v1/token")
        token = reply.json()
        self.assert_issued(token["access_token"])
        self.assertEqual(token["token_type"], "Bearer")
        self.assertEqual(token["profile"], "default")
        self.assertIsInstance(token["expires_in"], int)
        self.assertGreater(token["expires_in"], TOKEN_LIFE_S - CLOCK_LEEWAY_S)
        self.assertLessEqual(token["expires_in"], TOKEN_LIFE_S)
        self.assertAlmostEqual(token["expiration"], time.time() + TOKEN_LIFE_S,
                               delta=CLOCK_LEEWAY_S)
        self.assertIsInstance(token["refresh_in"], int)
        self.assertGreaterEqual(token["refresh_in"], 0)
        self.assertLess(token["refresh_in"], token["expires_in"])

    def test_cli_prints_the_same_token(self):
        served = self.get_token()
        sock = self.daemon.socket_path

        raw = self.daemon.cli("token", "--socket", sock)
        self.assertEqual(raw.returncode, 0, raw.stderr)
        self.assertEqual(raw.stdout, served + "\n")

        header = self.daemon.cli("token", "--socket", sock, "--format", "header")
        self.assertEqual(header.returncode, 0, header.stderr)
        self.assertEqual(header.stdout, f"Bearer {served}\n")

    def test_exactly_one_apikey_grant_with_iam_headers(self):
        self.get_token()
        self.get_token()

        requests = self.fake.token_requests()
        self.assertEqual(len(requests), 1, requests)
        grant = requests[0]
        self.assertEqual(grant["grant_type"], APIKEY_GRANT)
        self.assertTrue(grant["has_apikey"])
        self.assertEqual(grant["content_type"].split(";")[0], FORM_TYPE)
        self.assertEqual(grant["accept"], "application/json")
        self.assertEqual(grant["authorization"], BASIC_BX)
        self.assertEqual(grant["status"], 200)

    def test_header_and_raw_formats(self):
        served = self.get_token()

        header = self.daemon.get("/v1/token?format=header")
        self.assertEqual(header.status, 200, header)
        self.assertEqual(header.text.rstrip("\r\n"), f"Bearer {served}")
        self.assertTrue(header.headers["Content-Type"].startswith("text/plain"))
        self.assertEqual(header.headers["Cache-Control"], "no-store")

        raw = self.daemon.get("/v1/token?format=raw")
        self.assertEqual(raw.status, 200, raw)
        self.assertEqual(raw.text.rstrip("\r\n"), served)
        self.assertEqual(raw.headers["Cache-Control"], "no-store")

        named = self.daemon.get("/v1/token/default?format=raw")
        self.assertEqual(named.status, 200, named)
        self.assertEqual(named.text.rstrip("\r\n"), served)

    def test_routes_and_errors(self):
        unknown_profile = self.daemon.get("/v1/token/no-such-profile")
        self.assertEqual(unknown_profile.status, 404, unknown_profile)
        self.assertEqual(unknown_profile.json()["error"], "unknown_profile")

        self.assertEqual(self.daemon.get("/v1/no-such-route").status, 404)
        self.assertEqual(self.daemon.get("/nothing").status, 404)
        self.assertEqual(self.daemon.request("POST", "/v1/token").status, 405)
        self.assertEqual(self.daemon.request("DELETE", "/v1/status").status, 405)

        bad_format = self.daemon.get("/v1/token?format=yaml")
        self.assertEqual(bad_format.status, 400, bad_format)
        self.assertEqual(bad_format.json()["error"], "bad_request")

        health = self.daemon.get("/v1/health")
        self.assertEqual(health.status, 200, health)
        self.assertEqual(health.json()["status"], "ok")

    def test_keep_alive_serves_several_requests_on_one_connection(self):
        conn = UnixHTTPConnection(self.daemon.socket_path)
        try:
            for target in ("/v1/token", "/v1/health", "/v1/token?format=raw"):
                conn.request("GET", target)
                reply = conn.getresponse()
                reply.read()
                self.assertEqual(reply.status, 200, target)
        finally:
            conn.close()

    def test_status_names_the_token_by_fingerprint_only(self):
        served = self.get_token()

        reply = self.daemon.get("/v1/status")
        self.assertEqual(reply.status, 200, reply)
        self.assertNotIn(served, reply.text)
        profile = reply.json()["profiles"]["default"]
        self.assertEqual(profile["state"], "valid")
        self.assertEqual(profile["token_fingerprint"],
                         hashlib.sha256(served.encode()).hexdigest()[-4:])
        self.assertEqual(profile["last_refresh"]["result"], "ok")
        self.assertEqual(profile["last_refresh"]["grant"], "apikey")
        self.assertEqual(profile["counters"]["logins"], 1)
        self.assertEqual(profile["consecutive_failures"], 0)
        self.assertIsNone(profile["last_error"])


if __name__ == "__main__":
    unittest.main()
