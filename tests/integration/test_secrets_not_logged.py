#!/usr/bin/env python3
"""Through logins, refreshes, rejected refreshes and IAM failures at the most
verbose log level, no API key or token reaches the log, status or metrics."""

import hashlib
import os
import time
import unittest

from harness import IntegrationTest

TOKEN_LIFE_S = 3
POLL_INTERVAL_S = 0.2
REFRESH_PHASE_S = 5
REJECT_PHASE_S = 4
FAILURE_PHASE_S = 3
MIN_LOG_LINES = 10
KEY_ENV_VAR = "IT_IAM_TOKEND_API_KEY"


def fingerprint(token):
    return hashlib.sha256(token.encode()).hexdigest()[-4:]


class SecretsNotLoggedTest(IntegrationTest):

    def start_verbose_daemon(self, profile=None, env=None):
        """At trace level when the daemon's config accepts it, else debug."""
        self.start_fake(token_life=TOKEN_LIFE_S)
        daemon = self.prepare_daemon(profile, top={"log": {"level": "trace"}})
        check = daemon.cli("check-config", "-c", daemon.config_path)
        if check.returncode != 0:
            daemon.write_config(self.fake.token_url, self.pki["ca"],
                                self.api_key_file, profile,
                                top={"log": {"level": "debug"}})
        daemon.start(env=env)

    def test_no_secret_in_log_status_or_metrics(self):
        self.start_verbose_daemon()
        self.exercise_every_path()

        log = self.daemon.read_log()
        self.assertGreaterEqual(len(log.splitlines()), MIN_LOG_LINES)
        issued = self.fake.issued()["access_tokens"]
        self.assertTrue(any(fingerprint(t) in log for t in issued),
                        "no token fingerprint in the log: tokens are not named")
        self.check_no_secrets_logged()

        for target in ("/v1/status", "/metrics"):
            reply = self.daemon.get(target)
            self.check_no_secrets_logged(reply.text, target)
        table = self.daemon.cli("status", "--socket", self.daemon.socket_path)
        self.check_no_secrets_logged(table.stdout + table.stderr, "status output")

    def test_key_from_environment_is_not_logged(self):
        self.api_key = "env-" + self.api_key
        env = dict(os.environ, **{KEY_ENV_VAR: self.api_key})
        profile = {"api_key_file": None, "api_key_env": KEY_ENV_VAR}
        self.start_verbose_daemon(profile=profile, env=env)

        # Rejected refreshes make the daemon log in with the key again.
        self.fake.set(reject_refresh=True)
        self.poll(REJECT_PHASE_S)

        self.check_no_secrets_logged()

    def exercise_every_path(self):
        self.poll(REFRESH_PHASE_S)

        self.fake.set(reject_refresh=True)
        self.poll(REJECT_PHASE_S)
        self.fake.reset()

        refresh = self.daemon.request("POST", "/v1/refresh")
        self.assertEqual(refresh.status, 200, refresh)
        self.assertNotIn("access_token", refresh.json())

        # Failed attempts, logged with IAM's error; clients may see a 503.
        self.fake.set(fail_status=503, fail_count=2)
        self.daemon.request("POST", "/v1/refresh")
        self.poll(FAILURE_PHASE_S, require_token=False)

    def poll(self, duration, require_token=True):
        end = time.time() + duration
        while time.time() < end:
            reply = self.daemon.get("/v1/token?format=raw")
            if require_token:
                self.assertEqual(reply.status, 200, reply)
            time.sleep(POLL_INTERVAL_S)


if __name__ == "__main__":
    unittest.main()
