#!/usr/bin/env python3
"""File sinks: each new token replaces the file whole. A reader polling the
file through three refreshes only ever sees complete tokens that IAM
issued, every format is right, and when the token expires /v1/status says
the file holds an expired one."""

import json
import os
import stat
import threading
import time
import unittest

from harness import IntegrationTest, wait_until

TOKEN_LIFE_S = 3
MIN_VALID_S = 0.5
REFRESHES = 3
REFRESH_TIMEOUT_S = 20
EXPIRY_TIMEOUT_S = 10


class Poller(threading.Thread):
    """Reads a file over and over, keeping every distinct content seen."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.seen = set()
        self.reads = 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                with open(self.path, encoding="ascii") as f:
                    self.seen.add(f.read())
                self.reads += 1
            except FileNotFoundError:
                pass

    def stop(self):
        self.stopping.set()
        self.join()


class FileSinkTest(IntegrationTest):

    def test_sinks_are_replaced_whole_and_report_expiry(self):
        self.start_fake(token_life=TOKEN_LIFE_S)
        sinks = os.path.join(self.tmp, "sinks")
        os.mkdir(sinks)
        paths = {name: os.path.join(sinks, f"{name}.token") for name in ("raw", "header", "json")}
        refresh = {"min_valid_s": MIN_VALID_S}
        base = {"iam_url": self.fake.token_url, "api_key_file": self.api_key_file,
                "ca_file": self.pki["ca"], "refresh": refresh}
        profiles = {
            "default": dict(base, sink={"path": paths["raw"]}),
            "header": dict(base, sink={"path": paths["header"], "format": "header",
                                       "mode": "0600"}),
            "json": dict(base, sink={"path": paths["json"], "format": "json"}),
        }

        poller = Poller(paths["raw"])
        poller.start()
        self.addCleanup(poller.stop)
        self.start_daemon(top={"profiles": profiles})
        wait_until(lambda: self.sink_status()["writes"] >= REFRESHES + 1,
                   REFRESH_TIMEOUT_S, f"{REFRESHES} refreshes written to the sink")
        poller.stop()

        issued = set(self.fake.issued()["access_tokens"])
        self.assertGreaterEqual(len(poller.seen), REFRESHES + 1)
        for content in poller.seen:
            self.assertIn(content, issued, f"the reader saw {len(content)} bytes "
                                           "that are not a whole token")
        self.assertGreater(poller.reads, 100, "the reader hardly ran")

        self.check_formats(paths)
        self.check_no_temporary_files(sinks, paths)
        self.check_expired_sink_is_reported(paths["raw"])

    def sink_status(self, profile="default"):
        return self.daemon.profile_status(profile)["sink"]

    def check_formats(self, paths):
        self.assertEqual(stat.S_IMODE(os.stat(paths["raw"]).st_mode), 0o640)
        self.assertEqual(stat.S_IMODE(os.stat(paths["header"]).st_mode), 0o600)

        with open(paths["header"], encoding="ascii") as f:
            header = f.read()
        self.assertTrue(header.startswith("Bearer "), header[:10])
        self.assert_issued(header[len("Bearer "):])

        with open(paths["json"], encoding="ascii") as f:
            body = json.load(f)
        self.assert_issued(body["access_token"])
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["profile"], "json")
        self.assertLessEqual(body["expires_in"], TOKEN_LIFE_S)
        self.assertAlmostEqual(body["expiration"], time.time() + body["expires_in"],
                               delta=TOKEN_LIFE_S + 1)

        status = self.sink_status("json")
        self.assertEqual(status["state"], "current")
        self.assertEqual(status["path"], paths["json"])
        self.assertEqual(status["format"], "json")
        self.assertIsNone(status["last_error"])

    def check_no_temporary_files(self, folder, paths):
        self.assertEqual(sorted(os.listdir(folder)),
                         sorted(os.path.basename(p) for p in paths.values()))

    def check_expired_sink_is_reported(self, path):
        self.fake.set(fail_status=503)
        status = wait_until(lambda: (s := self.sink_status())["state"] == "expired" and s,
                            EXPIRY_TIMEOUT_S, "the sink to be reported as expired")
        with open(path, encoding="ascii") as f:
            kept = f.read()
        self.assertEqual(status["token_fingerprint"],
                         self.daemon.profile_status()["token_fingerprint"])
        self.assert_issued(kept)
        self.assertLessEqual(status["expires_in"], MIN_VALID_S)
        wait_until(lambda: "holds token" in self.daemon.read_log(), EXPIRY_TIMEOUT_S,
                   "a warning about the sink's expired token")


if __name__ == "__main__":
    unittest.main()
