#!/usr/bin/env python3
"""The command line without a running daemon: check-config, and clients
that find no daemon behind their socket."""

import json
import os
import unittest

from harness import Daemon, IntegrationTest

UNUSED_TOKEN_URL = "https://127.0.0.1:9/identity/token"
UNKNOWN_KEY = "profiles.default.refresh.min_vaild_s"
BAD_URL_KEY = "profiles.default.iam_url"


class CliTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.daemon = Daemon(self.tmp)
        self.missing_socket = os.path.join(self.tmp, "nobody-here.sock")

    def write_config(self, profile=None):
        self.daemon.write_config(UNUSED_TOKEN_URL, self.pki["ca"], self.api_key_file,
                                 profile)
        return self.daemon.config_path

    def test_check_config_accepts_a_good_config(self):
        result = self.daemon.cli("check-config", "-c", self.write_config())
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_check_config_names_every_problem(self):
        path = self.write_config({"iam_url": "not a url at all",
                                  "refresh": {"min_vaild_s": 1}})
        result = self.daemon.cli("check-config", "-c", path)

        self.assertEqual(result.returncode, 2, result.stderr)
        lines = result.stderr.splitlines()
        for key in (UNKNOWN_KEY, BAD_URL_KEY):
            self.assertTrue(any(f"{path}: {key}:" in line for line in lines),
                            f"no '{path}: {key}: ...' line in:\n{result.stderr}")

    def test_check_config_rejects_malformed_json(self):
        path = os.path.join(self.tmp, "broken.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write('{"profiles": {"default": {')
        result = self.daemon.cli("check-config", "-c", path)
        self.assertEqual(result.returncode, 2)
        self.assertIn(path, result.stderr)

    def test_config_tolerates_comments_and_trailing_commas(self):
        path = self.write_config()
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        text = "// written by the tests\n" + json.dumps(config, indent=2)
        text = text.replace('"mode": "0660"', '"mode": "0660",')
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        result = self.daemon.cli("check-config", "-c", path)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_token_without_daemon_fails_clearly(self):
        result = self.daemon.cli("token", "--socket", self.missing_socket)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")
        self.assertIn(self.missing_socket, result.stderr)

    def test_socket_from_environment(self):
        env = dict(os.environ, IAM_TOKEND_SOCKET=self.missing_socket)
        result = self.daemon.cli("token", env=env)
        self.assertEqual(result.returncode, 1)
        self.assertIn(self.missing_socket, result.stderr)

    def test_status_without_daemon_fails(self):
        result = self.daemon.cli("status", "--socket", self.missing_socket)
        self.assertEqual(result.returncode, 1)
        self.assertNotEqual(result.stderr.strip(), "")

    def test_usage_errors_exit_2(self):
        for args in (["no-such-command"],
                     ["token", "--format", "yaml", "--socket", self.missing_socket],
                     ["token", "--no-such-flag"]):
            result = self.daemon.cli(*args)
            self.assertEqual(result.returncode, 2, f"{args}: {result.stderr}")
            self.assertNotEqual(result.stderr.strip(), "", args)

    def test_version_and_help(self):
        version = self.daemon.cli("--version")
        self.assertEqual(version.returncode, 0, version.stderr)
        self.assertRegex(version.stdout, r"\b\d+\.\d+\.\d+\b")

        usage = self.daemon.cli("--help")
        self.assertEqual(usage.returncode, 0, usage.stderr)
        for command in ("run", "token", "status", "check-config"):
            self.assertIn(command, usage.stdout)


if __name__ == "__main__":
    unittest.main()
