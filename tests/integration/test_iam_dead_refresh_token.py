#!/usr/bin/env python3
"""Case 3, a dead refresh token: whether IAM says it is expired
(BXNIM0408E), invalid (BXNIM0407E) or its session is no longer active
(BXNIM0439E), the daemon logs in with the API key at once, drops the dead
token for good, and clients keep getting a token throughout."""

import time
import unittest

from harness import APIKEY_GRANT, IntegrationTest
from iam_faults import Poller, log_lines, wait_for_request

TOKEN_LIFE_S = 3
CODES = ("BXNIM0408E", "BXNIM0407E", "BXNIM0439E")
# "At once": the login follows the rejected refresh this quickly.
LOGIN_AFTER_S = 1.0


class DeadRefreshTokenTest(IntegrationTest):

    def test_every_rejection_code_leads_to_a_login_at_once(self):
        self.start_fake(token_life=TOKEN_LIFE_S)
        self.start_daemon()
        self.assert_issued(self.get_token())

        rejected = []
        with Poller(self.daemon) as poller:
            for code in CODES:
                rejected.append(self.reject_next_refresh(code))
            # One more refresh cycle after the last rejection.
            last_login = rejected[-1][1]
            wait_for_request(self.fake, last_login["time"], "a refresh after the login",
                             grant_type="refresh_token", status=200)

        refused = [(status, body) for _, status, body in poller.replies if status != 200]
        self.assertEqual(refused, [])
        self.assertGreater(len(poller.replies), 20)
        self.assertEqual(poller.errors, [])

        presented = [r["refresh_token_sha256"] for r in self.fake.grants("refresh_token")]
        for refusal, login in rejected:
            self.assertLess(login["time"] - refusal["time"], LOGIN_AFTER_S)
            dead = refusal["refresh_token_sha256"]
            self.assertEqual(presented.count(dead), 1, "a dead refresh token was sent again")

        for code in CODES:
            warned = log_lines(self.daemon, f"rejected the refresh token.*{code}")
            self.assertEqual(len(warned), 1, code)

    def reject_next_refresh(self, code):
        """Makes IAM reject the next refresh with `code`; returns that
        request and the login that followed it."""
        since = time.time()
        self.fake.set(reject_refresh=True, reject_refresh_code=code)
        refusal = wait_for_request(self.fake, since, f"a refresh rejected with {code}",
                                   grant_type="refresh_token", status=400)
        self.fake.set(reject_refresh=False)
        login = wait_for_request(self.fake, refusal["time"], "the login after it",
                                 grant_type=APIKEY_GRANT)
        self.assertEqual(login["status"], 200)
        return refusal, login


if __name__ == "__main__":
    unittest.main()
