#!/usr/bin/env python3
"""state_dir: tokens survive restarts. A saved token that is still valid is
served at once with no call to IAM (twenty restarts, one login) and is
refreshed on its schedule; one that any clock calls expired is not served,
and its refresh token spares a login; a corrupt or foreign state file is
set aside with a warning."""

import base64
import json
import os
import stat
import time
import unittest

from harness import APIKEY_GRANT, IntegrationTest, jwt_claims, wait_until

RESTARTS = 20
RESTARTS_WITHIN_S = 60
SAVE_TIMEOUT_S = 5
SHORT_LIFE_S = 6
AT_FRACTION = 0.8
JITTER_FRACTION = 0.05
MIN_VALID_S = 1
# A state file keeps `expiration` in whole seconds, so a restored token's
# remaining life (and with it the refresh time) may be off by up to 1 s,
# on top of process start-up and polling.
SCHEDULE_SLACK_S = 1.7
REFRESH_TIMEOUT_S = 10


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def with_exp(token, exp):
    """The JWT with its exp claim replaced (its signature no longer fits,
    which the daemon does not check)."""
    header, _, signature = token.split(".")
    claims = dict(jwt_claims(token), exp=exp)
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    return ".".join([header, payload, signature])


class StateTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.state_dir = os.path.join(self.tmp, "state")
        self.state_file = os.path.join(self.state_dir, "default.json")

    def start_with_state(self, profile=None):
        return self.start_daemon(profile=profile, top={"state_dir": self.state_dir})

    def restart(self):
        self.assertEqual(self.daemon.stop(), 0)
        self.daemon.start()

    def saved(self):
        with open(self.state_file, encoding="utf-8") as f:
            return json.load(f)

    def wait_for_save(self, token):
        def saved_token():
            try:
                return self.saved()["token"]["access_token"] == token
            except (OSError, ValueError):
                return False
        wait_until(saved_token, SAVE_TIMEOUT_S, "the state file to hold the token")

    def rewrite_state(self, change):
        state = self.saved()
        change(state)
        with open(self.state_file, "w", encoding="utf-8") as f:
            json.dump(state, f)

    def test_restarts_serve_the_saved_token_without_logins(self):
        self.start_fake()
        self.start_with_state()
        token = self.get_token()
        self.wait_for_save(token)
        self.assertEqual(stat.S_IMODE(os.stat(self.state_dir).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(self.state_file).st_mode), 0o600)
        self.assertIsNotNone(self.saved()["refresh_token"])

        started = time.monotonic()
        for _ in range(RESTARTS):
            self.restart()
            self.assertEqual(self.get_token("?wait=0"), token)
            self.assertTrue(self.daemon.profile_status()["state_file"]["restored"])
        took = time.monotonic() - started
        summary = f"{RESTARTS} restarts in {took:.1f} s"
        print(summary)

        self.assertLess(took, RESTARTS_WITHIN_S, summary)
        self.assertEqual(len(self.fake.token_requests()), 1,
                         f"IAM was called again during {summary}")
        self.assertEqual(self.daemon.read_log().count("saved by an earlier run"), RESTARTS)

    def test_a_restored_token_is_refreshed_on_its_schedule(self):
        self.start_fake(token_life=SHORT_LIFE_S)
        self.start_with_state(profile={"refresh": {
            "at_fraction": AT_FRACTION, "jitter_fraction": JITTER_FRACTION,
            "min_valid_s": MIN_VALID_S}})
        token = self.get_token()
        self.wait_for_save(token)
        issued_at = self.fake.issued()["access_token_details"][0]["issued_at"]

        self.restart()
        self.assertEqual(self.get_token("?wait=0"), token)
        self.assertEqual(len(self.fake.token_requests()), 1)

        refreshed = wait_until(lambda: self.fake.grants("refresh_token"),
                               REFRESH_TIMEOUT_S, "the restored token's refresh")[0]
        self.assertEqual(refreshed["status"], 200)
        self.assertTrue(refreshed["refresh_token_known"],
                        "the refresh did not use the saved refresh token")
        after = refreshed["time"] - issued_at
        earliest = SHORT_LIFE_S * (AT_FRACTION - JITTER_FRACTION)
        latest = SHORT_LIFE_S * (AT_FRACTION + JITTER_FRACTION)
        self.assertGreaterEqual(after, earliest - SCHEDULE_SLACK_S)
        self.assertLessEqual(after, latest + SCHEDULE_SLACK_S)
        self.assertEqual(len(self.fake.grants(APIKEY_GRANT)), 1)

    def test_a_token_expired_by_any_clock_is_not_served(self):
        self.start_fake()
        self.start_with_state()
        first = self.get_token()
        self.wait_for_save(first)

        # The JWT says it has expired, though the boot clock says it has not.
        self.daemon.stop()
        self.rewrite_state(lambda s: s["token"].update(
            access_token=with_exp(s["token"]["access_token"], int(time.time()) - 10)))
        self.daemon.start()
        second = self.get_token()
        self.assertNotEqual(second, first)
        self.wait_for_save(second)

        # The saved expiration has passed by the local clock.
        self.daemon.stop()
        self.rewrite_state(lambda s: s["token"].update(expiration=int(time.time()) - 10))
        self.daemon.start()
        third = self.get_token()
        self.assertNotIn(third, (first, second))

        # Both times the saved refresh token was used instead of the API key.
        self.assertEqual(len(self.fake.grants(APIKEY_GRANT)), 1)
        refreshes = self.fake.grants("refresh_token")
        self.assertEqual(len(refreshes), 2)
        self.assertTrue(all(r["refresh_token_known"] and r["status"] == 200
                            for r in refreshes))
        self.assertEqual(self.daemon.read_log().count("not serving the token saved"), 2)

    def test_a_corrupt_state_file_is_set_aside(self):
        self.start_fake()
        os.mkdir(self.state_dir, 0o700)
        garbage = '{"format": "iam-tokend-state", "version": 1, "token": [tru'
        with open(self.state_file, "w", encoding="utf-8") as f:
            f.write(garbage)
        os.chmod(self.state_file, 0o600)

        self.start_with_state()
        token = self.get_token()
        self.wait_for_save(token)
        with open(self.state_file + ".bad", encoding="utf-8") as f:
            self.assertEqual(f.read(), garbage)
        self.assertIn("is not usable (it is not a JSON object)", self.daemon.read_log())
        self.assertEqual(len(self.fake.grants(APIKEY_GRANT)), 1)

    def test_a_state_file_of_other_credentials_is_set_aside(self):
        other_key = self.api_key + "-rotated"
        self.start_fake(api_keys=[self.api_key, other_key])
        self.start_with_state()
        first = self.get_token()
        self.wait_for_save(first)

        # The key is rotated: the token saved for the old one must not be served.
        self.daemon.stop()
        self.api_key = other_key
        self.write_secret_file("apikey", other_key)
        self.daemon.start()
        second = self.get_token()
        self.assertNotEqual(second, first)
        self.assertEqual(len(self.fake.grants(APIKEY_GRANT)), 2)
        self.assertEqual(len(self.fake.grants("refresh_token")), 0)
        self.assertIn("saved for other credentials", self.daemon.read_log())
        self.assertTrue(os.path.exists(self.state_file + ".bad"))
        self.wait_for_save(second)


if __name__ == "__main__":
    unittest.main()
