#!/usr/bin/env python3
"""Case 11, outage and recovery: IAM is gone (nothing listens) for longer
than a token lives. The old token is served while it is servable, then
clients get 503 and health turns 503; when IAM is back, a token is served
within one backoff period, without a restart."""

import time
import unittest

from harness import IntegrationTest
from iam_faults import Poller, wait_until

TOKEN_LIFE_S = 6
MIN_VALID_S = 1
BACKOFF_MAX_S = 2
OUTAGE_S = TOKEN_LIFE_S + 2
# A recovery may take a backoff period, then a refused refresh token (the
# restarted fake does not know it) and the login that follows.
RECOVERY_S = BACKOFF_MAX_S + 1.5
PAST_EDGE_S = 0.3


class OutageRecoveryTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.earlier_secrets = []

    def secrets_in_use(self):
        """Also the tokens of the fake that was stopped."""
        return super().secrets_in_use() + self.earlier_secrets

    def test_outage_longer_than_a_token_life(self):
        self.start_fake(token_life=TOKEN_LIFE_S)
        self.start_daemon(profile={"refresh": {"min_valid_s": MIN_VALID_S,
                                               "backoff_max_s": BACKOFF_MAX_S}})
        first = self.get_token()
        issued_at = self.fake.issued()["access_token_details"][0]["issued_at"]
        edge = issued_at + TOKEN_LIFE_S - MIN_VALID_S
        port = self.fake.port
        self.earlier_secrets = [(name, value) for name, value in self.secrets_in_use()
                                if name != "API key"]
        self.fake.stop()

        with Poller(self.daemon, "/v1/token?format=raw&wait=0") as poller:
            time.sleep(max(0.0, issued_at + OUTAGE_S - time.time()))
            health = self.daemon.get("/v1/health")
            state = self.daemon.profile_status()["state"]

        for sent, status, body in poller.replies:
            if status == 200:
                self.assertEqual(body, first)
                self.assertLess(sent, edge)
            if sent > edge + PAST_EDGE_S:
                self.assertEqual(status, 503, f"{sent - edge:.2f} s past the edge")
        self.assertIn(200, poller.statuses())
        self.assertEqual(health.status, 503)
        self.assertEqual(state, "expired")
        self.assertEqual(self.daemon.profile_status()["last_error"]["kind"], "network")

        self.start_fake(token_life=TOKEN_LIFE_S, port=port)
        back = time.monotonic()
        token = wait_until(lambda: self.served_token(), RECOVERY_S, "a token after the outage")
        self.assertLess(time.monotonic() - back, RECOVERY_S)
        self.assert_issued(token)
        self.assertEqual(self.daemon.get("/v1/health").status, 200)
        self.assertIsNone(self.daemon.proc.poll())

    def served_token(self):
        reply = self.daemon.get("/v1/token?format=raw&wait=0")
        return reply.text if reply.status == 200 else None


if __name__ == "__main__":
    unittest.main()
