#!/usr/bin/env python3
"""Short-lived tokens are replaced with the refresh token, and every token
served in between is one IAM issued and still alive."""

import time
import unittest

from harness import APIKEY_GRANT, IntegrationTest, jwt_claims

TOKEN_LIFE_S = 4
POLL_INTERVAL_S = 0.1
POLL_DURATION_S = 15
MIN_REFRESH_GRANTS = 2
# The daemon stops serving a token this long before its end, which leaves
# room for the time between its reply and the client's clock reading.
MIN_VALID_S = 1


class RefreshCycleTest(IntegrationTest):

    def test_tokens_are_refreshed_and_never_served_expired(self):
        self.start_fake(token_life=TOKEN_LIFE_S)
        self.start_daemon(profile={"refresh": {"min_valid_s": MIN_VALID_S}})

        served = self.poll_tokens()
        issued = {d["token"]: d for d in self.fake.issued()["access_token_details"]}

        for sent_at, replied_at, token in served:
            self.assertIn(token, issued, f"token ...{token[-8:]} was not issued")
            detail = issued[token]
            self.assertLess(replied_at, detail["expires_at"],
                            f"token ...{token[-8:]} served after its life ended")
            self.assertGreaterEqual(replied_at, detail["issued_at"])
            self.assertLess(sent_at, jwt_claims(token)["exp"],
                            f"token ...{token[-8:]} served after its JWT exp")

        refresh_grants = [r for r in self.fake.grants("refresh_token")
                          if r["status"] == 200]
        self.assertGreaterEqual(len(refresh_grants), MIN_REFRESH_GRANTS)
        self.assertTrue(all(r["refresh_token_known"] for r in refresh_grants))
        self.assertEqual(len(self.fake.grants(APIKEY_GRANT)), 1,
                         "the daemon logged in again although refresh worked")
        self.assertGreater(len({token for _, _, token in served}), 1)

    def poll_tokens(self):
        """(sent, replied, token) for each poll; every reply must be a 200."""
        served = []
        end = time.time() + POLL_DURATION_S
        while time.time() < end:
            sent_at = time.time()
            reply = self.daemon.get("/v1/token")
            replied_at = time.time()
            self.assertEqual(reply.status, 200, reply)
            served.append((sent_at, replied_at, reply.json()["access_token"]))
            time.sleep(POLL_INTERVAL_S)
        return served


if __name__ == "__main__":
    unittest.main()
