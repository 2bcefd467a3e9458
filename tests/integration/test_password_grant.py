#!/usr/bin/env python3
"""The password grant with a UAA token: the login IAM expects (user name,
password, the `cf` UAA client), both tokens kept and served (`kind=uaa`),
renewed together by the refresh, and a refused password handled."""

import os
import unittest

from harness import BASIC_BX, IntegrationTest

USERNAME = "ops@example.test"
PASSWORD = "pw-" + os.urandom(9).hex()
CLIENT_WAIT_S = 2
UAA = "cloud_iam,uaa"


class PasswordGrantTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.start_fake(extra_args=["--user", f"{USERNAME}:{PASSWORD}"])

    def secrets_in_use(self):
        return super().secrets_in_use() + [("password", PASSWORD)]

    def start_password_daemon(self, password=PASSWORD, response_type=UAA):
        password_file = self.write_secret_file("password", password)
        self.start_daemon(profile={"api_key_file": None, "grant": "password",
                                   "username": USERNAME, "password_file": password_file,
                                   "response_type": response_type})

    def uaa_token(self, query=""):
        reply = self.daemon.get(f"/v1/token?kind=uaa{query}")
        self.assertEqual(reply.status, 200, reply)
        return reply

    def test_login_is_the_password_grant_with_the_cf_uaa_client(self):
        self.start_password_daemon()
        self.assert_issued(self.get_token())

        [login] = self.fake.token_requests()
        self.assertEqual(login["grant_type"], "password")
        self.assertTrue(login["has_password"])
        self.assertFalse(login["has_apikey"])
        self.assertEqual(login["authorization"], BASIC_BX)
        self.assertEqual(login["response_type"], UAA)
        self.assertEqual(login["uaa_client_id"], "cf")
        self.assertTrue(login["has_uaa_client_secret"])
        self.assertEqual(login["status"], 200)

    def test_both_tokens_are_served(self):
        self.start_password_daemon()
        access = self.get_token()

        reply = self.uaa_token()
        body = reply.json()
        self.assertEqual(body["kind"], "uaa")
        self.assertEqual(body["profile"], "default")
        self.assertEqual(reply.headers["Cache-Control"], "no-store")
        uaa = body["access_token"]
        self.assertIn(uaa, self.fake.issued()["uaa_tokens"])
        self.assertNotEqual(uaa, access)

        self.assertEqual(self.uaa_token("&format=raw").text.rstrip("\r\n"), uaa)
        self.assertEqual(self.uaa_token("&format=header").text.rstrip("\r\n"), f"Bearer {uaa}")
        self.assertEqual(self.daemon.get("/v1/token?kind=iam&format=raw").text.rstrip("\r\n"),
                         access)

        cli = self.daemon.cli("token", "--socket", self.daemon.socket_path, "--kind", "uaa")
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertEqual(cli.stdout, uaa + "\n")

        status = self.daemon.profile_status()
        self.assertEqual(len(status["uaa_token_fingerprint"]), 4)
        self.assertNotIn(uaa, self.daemon.get("/v1/status").text)

    def test_a_refresh_renews_the_uaa_token_too(self):
        self.start_password_daemon()
        first = self.uaa_token().json()["access_token"]

        reply = self.daemon.request("POST", "/v1/refresh")
        self.assertEqual(reply.status, 200, reply)

        [refresh] = self.fake.grants("refresh_token")
        self.assertEqual(refresh["response_type"], UAA)
        self.assertEqual(refresh["uaa_client_id"], "cf")
        self.assertEqual(refresh["status"], 200)
        second = self.uaa_token().json()["access_token"]
        self.assertNotEqual(second, first)
        self.assertEqual(self.fake.issued()["uaa_tokens"][-2], second)

    def test_a_reply_without_the_uaa_token_is_not_served(self):
        self.fake.set(omit_uaa=True)
        self.start_password_daemon()

        error = self.wait_for_last_error()
        self.assertEqual(error["kind"], "bad_response", error)
        self.assertIn("uaa_token", error["message"])
        self.assertEqual(self.daemon.get(f"/v1/token?wait={CLIENT_WAIT_S}").status, 503)

        self.fake.set(omit_uaa=False)
        self.assertIn(self.uaa_token(f"&wait={CLIENT_WAIT_S + 3}").json()["access_token"],
                      self.fake.issued()["uaa_tokens"])

    def test_a_wrong_password_is_a_credential_error(self):
        self.start_password_daemon(password="not-" + PASSWORD)

        error = self.wait_for_last_error()
        self.assertEqual(error["error_code"], "BXNIM0602E", error)
        self.assertEqual(error["http_status"], 400)
        self.assertEqual(self.daemon.get(f"/v1/token?wait={CLIENT_WAIT_S}").status, 503)
        self.assertIsNone(self.daemon.proc.poll(), "the daemon exited")
        self.assertNotIn("not-" + PASSWORD, self.daemon.read_log())

    def test_password_grant_without_uaa(self):
        self.start_password_daemon(response_type="cloud_iam")
        self.assert_issued(self.get_token())

        [login] = self.fake.token_requests()
        self.assertEqual(login["grant_type"], "password")
        self.assertEqual(login["response_type"], "cloud_iam")
        self.assertIsNone(login["uaa_client_id"])

        reply = self.daemon.get("/v1/token?kind=uaa")
        self.assertEqual(reply.status, 400, reply)
        self.assertEqual(reply.json()["error"], "uaa_not_configured")

    def test_unknown_kind_is_a_bad_request(self):
        self.start_password_daemon()
        reply = self.daemon.get("/v1/token?kind=refresh")
        self.assertEqual(reply.status, 400, reply)
        self.assertEqual(reply.json()["error"], "bad_request")


if __name__ == "__main__":
    unittest.main()
