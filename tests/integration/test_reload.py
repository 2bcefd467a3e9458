#!/usr/bin/env python3
"""SIGHUP reloads the config (issue case 16).

A new config with a JSON syntax error, an unknown key or an unreadable key
file is refused: the daemon logs the same lines check-config prints and
goes on serving its token. A new valid API key leads to a fresh login with
it, and the old token is served until that login is done. A burst of
SIGHUPs is one reload, a SIGHUP during a login does not start a second
one, and no SIGHUP ever ends the daemon, not even one that arrives while it
starts.
"""

import json
import os
import signal
import threading
import time
import unittest

from harness import APIKEY_GRANT, IntegrationTest, jwt_claims, start_process, wait_until
import fake_iam  # found through the path harness sets up

RELOAD_TIMEOUT_S = 5
# daemon/daemon.hpp: SIGHUPs this close together are one reload.
RELOAD_DELAY_S = 0.2
LOGIN_DELAY_S = 3.0
PROMPT_S = 0.5
RELOADING = "received SIGHUP, reloading"
REJECTED = "reload rejected"


def sighup_disposition_set(pid):
    """True once the process ignores or catches SIGHUP (bit 0 of the masks)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            masks = dict(line.split(":", 1) for line in f if line.startswith("Sig"))
    except FileNotFoundError:
        return False
    return bool((int(masks["SigIgn"], 16) | int(masks["SigCgt"], 16)) & 1)


class ReloadTest(IntegrationTest):

    def sighup(self):
        self.daemon.proc.send_signal(signal.SIGHUP)

    def log_count(self, text):
        return self.daemon.read_log().count(text)

    def reload_and_wait(self, outcome):
        """Sends SIGHUP and waits for the reload to end with `outcome`."""
        before = self.log_count(outcome)
        self.sighup()
        wait_until(lambda: self.log_count(outcome) > before, RELOAD_TIMEOUT_S,
                   f"a reload that logs {outcome!r}")

    def edit_config(self, change):
        with open(self.daemon.config_path, encoding="utf-8") as f:
            config = json.load(f)
        change(config)
        with open(self.daemon.config_path, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)

    def check_config_lines(self):
        result = self.daemon.cli("check-config", "-c", self.daemon.config_path)
        self.assertEqual(result.returncode, 2, result.stderr)
        lines = result.stderr.splitlines()
        self.assertTrue(lines)
        return lines

    def assert_serves(self, token, why):
        started = time.monotonic()
        self.assertEqual(self.get_token(), token, why)
        self.assertLess(time.monotonic() - started, PROMPT_S, why)

    def test_a_bad_config_keeps_the_running_one(self):
        self.start_fake()
        self.start_daemon()
        token = self.get_token()
        logins = len(self.fake.token_requests())
        with open(self.daemon.config_path, encoding="utf-8") as f:
            good = f.read()

        def syntax_error():
            with open(self.daemon.config_path, "a", encoding="utf-8") as f:
                f.write("\n}}\n")

        def unknown_key():
            self.edit_config(lambda c: c["profiles"]["default"].update(refrsh={}))

        def key_file(path):
            return lambda: self.edit_config(
                lambda c: c["profiles"]["default"].update(api_key_file=path))

        bad = [("a JSON syntax error", syntax_error), ("an unknown key", unknown_key),
               ("a missing key file", key_file(os.path.join(self.tmp, "gone"))),
               ("a folder as key file", key_file(self.tmp))]
        for why, spoil in bad:
            with self.subTest(why):
                spoil()
                expected = self.check_config_lines()

                self.reload_and_wait(REJECTED)
                log = self.daemon.read_log()
                for line in expected:
                    self.assertIn(line, log, f"{why}: check-config's line is not in the log")
                self.assertIsNone(self.daemon.proc.poll(), f"{why}: the daemon exited")
                self.assert_serves(token, why)

                with open(self.daemon.config_path, "w", encoding="utf-8") as f:
                    f.write(good)
        self.assertEqual(len(self.fake.token_requests()), logins,
                         "a refused reload must not touch IAM")

    def test_a_new_api_key_logs_in_again_and_serves_the_old_token_meanwhile(self):
        new_key = "it-new-key-" + os.urandom(8).hex()
        self.start_fake(api_keys=[self.api_key, new_key])
        self.start_daemon()
        old_token = self.get_token()
        self.assertEqual(jwt_claims(old_token)["sub"], fake_iam.subject_for_key(self.api_key))

        self.fake.set(delay_s=LOGIN_DELAY_S)
        self.write_secret_file("apikey", new_key)
        self.reload_and_wait("reloaded:")
        self.assert_serves(old_token, "while the login with the new key is under way")

        new_token = wait_until(lambda: (lambda t: t if t != old_token else None)(
            self.get_token()), LOGIN_DELAY_S + RELOAD_TIMEOUT_S, "a token from the new key")
        self.assertEqual(jwt_claims(new_token)["sub"], fake_iam.subject_for_key(new_key))
        self.assert_issued(new_token)
        logins = self.fake.grants(APIKEY_GRANT)
        self.assertEqual(len(logins), 2, "one login at start, one with the new key")

    def test_a_burst_of_sighups_is_one_reload(self):
        self.start_fake()
        self.start_daemon()
        token = self.get_token()
        for _ in range(20):
            self.sighup()
            time.sleep(0.005)
        wait_until(lambda: self.log_count("reloaded:") >= 1, RELOAD_TIMEOUT_S, "the reload")
        time.sleep(RELOAD_DELAY_S * 3)
        self.assertEqual(self.log_count(RELOADING), 1, "20 SIGHUPs in 100 ms")
        self.assert_serves(token, "after the burst")

        self.reload_and_wait("reloaded:")
        self.assertEqual(self.log_count(RELOADING), 2, "a later SIGHUP reloads again")

    def test_sighup_during_a_login_keeps_single_flight(self):
        self.start_fake()
        self.fake.set(delay_s=LOGIN_DELAY_S)
        self.start_daemon()

        tokens = []
        lock = threading.Lock()

        def client():
            reply = self.daemon.get("/v1/token?wait=15")
            with lock:
                tokens.append(reply.json().get("access_token") if reply.status == 200 else None)

        threads = [threading.Thread(target=client) for _ in range(20)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        # A SIGHUP with the same config, then one with a change outside the
        # profile: neither replaces the token source that is logging in.
        self.reload_and_wait("reloaded:")
        self.edit_config(lambda config: config["log"].update(level="info"))
        self.reload_and_wait("reloaded:")
        for thread in threads:
            thread.join(LOGIN_DELAY_S + 15)

        self.assertEqual(len(tokens), 20)
        self.assertEqual(len(set(tokens)), 1, "every waiting client gets the same token")
        self.assertIsNotNone(tokens[0])
        self.assertEqual(len(self.fake.token_requests()), 1, "one login, not one per reload")

    def test_sighup_never_ends_the_daemon(self):
        self.start_fake()
        self.prepare_daemon()
        # From the start of main(), through loading the config and the
        # secrets, opening the socket and the first login. (Before main()
        # runs, SIGHUP ends any program.)
        proc = start_process([self.daemon.binary, "run", "-c", self.daemon.config_path],
                             self.daemon.log_path)
        self.daemon.proc = proc
        wait_until(lambda: proc.poll() is not None or sighup_disposition_set(proc.pid),
                   RELOAD_TIMEOUT_S, "main() to set up SIGHUP")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and proc.poll() is None:
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.002)
        self.assertIsNone(proc.poll(), f"SIGHUP at start-up ended the daemon "
                                       f"(exit {proc.returncode})")
        self.daemon.wait_for_socket()
        self.assert_issued(self.get_token())

        # A reload that fails in every way at once is no reason to exit either.
        with open(self.daemon.config_path, "w", encoding="utf-8") as f:
            f.write("not json")
        for _ in range(5):
            self.reload_and_wait(REJECTED)
        self.assertIsNone(proc.poll())
        self.assertEqual(self.daemon.get("/v1/health").status, 200)


if __name__ == "__main__":
    unittest.main()
