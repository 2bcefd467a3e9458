#!/usr/bin/env python3
"""Case 4, refresh-token bookkeeping: "not_supported" is not a refresh
token; a refresh reply without a usable one keeps the previous one (and an
empty one is never sent); with an IAM that retires each refresh token once
used, the newest is always the one sent; and refreshes carry the same
client authentication as the login."""

import base64
import time
import unittest

from harness import APIKEY_GRANT, IntegrationTest
from iam_faults import Poller, refresh_token_id, wait_for_request

# Refreshes come about every 1.35 s: at 90 % of the 1.5 s a token is servable.
LIFE_S = 2
MIN_VALID_S = 0.5
ROTATIONS = 5
WATCH_S = 4
CLIENT_ID, CLIENT_SECRET = "tokend-it", "not-bx-secret"


class RefreshTokenBookkeepingTest(IntegrationTest):

    def test_not_supported_means_log_in_again(self):
        self.start_fake(token_life=LIFE_S)
        self.fake.set(refresh_token_in_reply="not_supported")
        self.start_daemon(profile={"refresh": {"min_valid_s": MIN_VALID_S}})

        with Poller(self.daemon) as poller:
            time.sleep(WATCH_S)

        self.assertEqual(set(poller.statuses()), {200})
        grants = [(r["grant_type"], r["status"]) for r in self.fake.token_requests()]
        self.assertGreaterEqual(len(grants), 2, grants)
        self.assertEqual(set(grants), {(APIKEY_GRANT, 200)}, grants)

    def test_reply_without_refresh_token_keeps_the_previous_one(self):
        self.start_fake(token_life=LIFE_S)
        self.start_daemon(profile={"refresh": {"min_valid_s": MIN_VALID_S}})
        self.get_token()
        login_refresh_token = refresh_token_id(self.fake.issued()["refresh_tokens"][0])

        with Poller(self.daemon) as poller:
            for form in ("absent", "empty", "null", None):
                since = time.time()
                self.fake.set(refresh_token_in_reply=form)
                wait_for_request(self.fake, since, f"a refresh answered with {form}",
                                 grant_type="refresh_token")
            # One more: it must still present the login's refresh token.
            wait_for_request(self.fake, time.time(), "the refresh after that",
                             grant_type="refresh_token")

        self.assertEqual(set(poller.statuses()), {200})
        requests = self.fake.token_requests()
        self.assertEqual([r["grant_type"] for r in requests].count(APIKEY_GRANT), 1)
        refreshes = [r for r in requests if r["grant_type"] == "refresh_token"]
        self.assertGreaterEqual(len(refreshes), 5)
        self.assertTrue(all(r["status"] == 200 for r in refreshes), refreshes)
        # The first three replies carried none, so the login's is sent four
        # times; the fourth reply carried a new one, which is sent next.
        self.assertEqual({r["refresh_token_sha256"] for r in refreshes[:4]},
                         {login_refresh_token})
        self.assertNotEqual(refreshes[4]["refresh_token_sha256"], login_refresh_token)

    def test_rotating_refresh_tokens_and_client_auth(self):
        self.start_fake(token_life=LIFE_S,
                        extra_args=["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
        self.fake.set(rotate_refresh=True)
        self.start_daemon(profile={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                   "refresh": {"min_valid_s": MIN_VALID_S}})
        self.get_token()

        for _ in range(ROTATIONS):
            wait_for_request(self.fake, self.fake.token_requests()[-1]["time"],
                             "the next refresh", grant_type="refresh_token")

        requests = self.fake.token_requests()
        self.assertEqual([r["status"] for r in requests], [200] * len(requests))
        self.assertEqual([r["grant_type"] for r in requests],
                         [APIKEY_GRANT] + ["refresh_token"] * (len(requests) - 1))
        self.assertTrue(all(r["refresh_token_known"] and not r["refresh_token_revoked"]
                            for r in requests[1:]))
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        self.assertEqual({r["authorization"] for r in requests}, {expected})


if __name__ == "__main__":
    unittest.main()
