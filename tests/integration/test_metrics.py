#!/usr/bin/env python3
"""GET /metrics: Prometheus' own checker accepts a live scrape, and the
numbers in it match what the test made the daemon do."""

import os
import re
import shutil
import subprocess
import unittest

from harness import IntegrationTest, UnixHTTPConnection, wait_until

TOKEN_LIFE_S = 600
TOKEN_TIMEOUT_S = 10
PROMTOOL_TIMEOUT_S = 30
SAMPLE = re.compile(r'^([a-z_:][a-z0-9_:]*)(\{.*\})? (\S+)$')
HISTOGRAM = "iam_tokend_iam_request_duration_seconds"


def parse_samples(text):
    """{(name, labels text): value} of every sample line."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        if not match:
            raise AssertionError(f"not a sample line: {line!r}")
        samples[(match.group(1), match.group(2) or "")] = float(match.group(3))
    return samples


class MetricsTest(IntegrationTest):

    def test_promtool_accepts_a_live_scrape(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool not found: install the Debian "
                                       "package prometheus (scripts/lib.sh lists it)")
        self.start_fake(token_life=TOKEN_LIFE_S)
        # The first login fails, the retry succeeds.
        self.fake.set(fail_status=500, fail_count=1)
        self.start_daemon()
        # A client that arrives during the failing attempt gets its 503, so
        # wait for the retry through status instead.
        wait_until(lambda: self.daemon.profile_status()["state"] == "valid",
                   TOKEN_TIMEOUT_S, "the token after the retry")

        self.make_local_requests()
        # One more connection stays open while the page is rendered.
        idle = UnixHTTPConnection(self.daemon.socket_path)
        idle.request("GET", "/v1/health")
        idle.getresponse().read()
        self.addCleanup(idle.close)

        reply = self.daemon.get("/metrics")
        self.assertEqual(reply.status, 200, reply)
        self.assertTrue(reply.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        page = reply.text
        path = os.path.join(self.tmp, "metrics.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)

        with open(path, "rb") as f:
            check = subprocess.run([promtool, "check", "metrics"], stdin=f,
                                   capture_output=True, text=True,
                                   timeout=PROMTOOL_TIMEOUT_S)
        self.assertEqual(check.returncode, 0,
                         f"promtool: {check.stdout}{check.stderr}\n{page}")
        self.assertEqual(check.stdout + check.stderr, "", "promtool found lint problems")

        self.check_families(page)
        self.check_numbers(parse_samples(page))

    def make_local_requests(self):
        self.assertEqual(self.daemon.get("/v1/token").status, 200)
        self.assertEqual(self.daemon.get("/v1/token/default").status, 200)
        self.assertEqual(self.daemon.get("/v1/token/nobody").status, 404)
        self.assertEqual(self.daemon.get("/v1/status").status, 200)
        self.assertEqual(self.daemon.request("DELETE", "/v1/status").status, 405)
        self.assertEqual(self.daemon.get("/no/such/thing").status, 404)

    def check_families(self, page):
        for name, kind in [("iam_tokend_refreshes_total", "counter"),
                           (HISTOGRAM, "histogram"),
                           ("iam_tokend_token_expires_in_seconds", "gauge"),
                           ("iam_tokend_token_servable", "gauge"),
                           ("iam_tokend_profile_state", "gauge"),
                           ("iam_tokend_consecutive_failures", "gauge"),
                           ("iam_tokend_local_requests_total", "counter"),
                           ("iam_tokend_open_connections", "gauge"),
                           ("iam_tokend_build_info", "gauge")]:
            self.assertIn(f"# TYPE {name} {kind}\n", page)
            self.assertRegex(page, rf"# HELP {name} \S")
        for line in page.splitlines():
            if line and not line.startswith("#"):
                self.assertTrue(line.startswith("iam_tokend_"), line)

    def check_numbers(self, samples):
        def value(name, labels=""):
            self.assertIn((name, labels), samples, f"no sample {name}{labels}")
            return samples[(name, labels)]

        refreshes = "iam_tokend_refreshes_total"
        ok = value(refreshes, '{profile="default",grant="apikey",result="ok"}')
        failed = value(refreshes, '{profile="default",grant="apikey",result="error"}')
        self.assertEqual((ok, failed), (1, 1))
        self.assertEqual(value(refreshes,
                               '{profile="default",grant="refresh_token",result="ok"}'), 0)

        self.assertEqual(value(f"{HISTOGRAM}_count", '{profile="default"}'), 2)
        self.assertEqual(value(f"{HISTOGRAM}_bucket", '{profile="default",le="+Inf"}'), 2)
        self.assertGreater(value(f"{HISTOGRAM}_sum", '{profile="default"}'), 0)

        left = value("iam_tokend_token_expires_in_seconds", '{profile="default"}')
        self.assertTrue(TOKEN_LIFE_S - 30 < left <= TOKEN_LIFE_S, left)
        self.assertEqual(value("iam_tokend_token_servable", '{profile="default"}'), 1)
        self.assertEqual(value("iam_tokend_profile_state",
                               '{profile="default",state="valid"}'), 1)
        self.assertEqual(value("iam_tokend_profile_state",
                               '{profile="default",state="expired"}'), 0)
        self.assertEqual(value("iam_tokend_consecutive_failures", '{profile="default"}'), 0)

        requests = "iam_tokend_local_requests_total"
        self.assertEqual(value(requests, '{route="/v1/token",status="200"}'), 1)
        self.assertEqual(value(requests, '{route="/v1/token/{profile}",status="200"}'), 1)
        self.assertEqual(value(requests, '{route="/v1/token/{profile}",status="404"}'), 1)
        # The waits for the token, then one more.
        self.assertGreaterEqual(value(requests, '{route="/v1/status",status="200"}'), 2)
        self.assertEqual(value(requests, '{route="/v1/status",status="405"}'), 1)
        self.assertEqual(value(requests, '{route="other",status="404"}'), 1)
        # The start-up probe (before or after the first token) and the idle one.
        health = [samples.get((requests, f'{{route="/v1/health",status="{status}"}}'), 0)
                  for status in (200, 503)]
        self.assertGreaterEqual(health[0], 1)
        self.assertEqual(sum(health), 2)
        # The scrape's own connection and the idle one.
        self.assertEqual(value("iam_tokend_open_connections"), 2)


if __name__ == "__main__":
    unittest.main()
