#!/usr/bin/env python3
"""The API key as a systemd credential (api_key_credential, read from
$CREDENTIALS_DIRECTORY), and secret files whose mode lets group or others
read or write them refused with a message that names the file and mode."""

import os
import unittest

from harness import IntegrationTest

CREDENTIAL = "iam-apikey"
EXIT_TIMEOUT_S = 5
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CredentialsTest(IntegrationTest):

    def make_credentials_dir(self, mode=0o400):
        """A folder laid out like systemd's: one file per credential."""
        folder = os.path.join(self.tmp, "credentials")
        os.mkdir(folder, 0o700)
        path = os.path.join(folder, CREDENTIAL)
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.api_key + "\n")
        os.chmod(path, mode)
        return folder, path

    def credential_profile(self):
        return {"api_key_file": None, "api_key_credential": CREDENTIAL}

    def start_and_expect_failure(self, env=None):
        self.daemon.start(wait_for_socket=False, env=env)
        code = self.daemon.proc.wait(EXIT_TIMEOUT_S)
        self.assertEqual(code, EXIT_FAILURE, self.daemon.read_log())
        self.assertFalse(os.path.exists(self.daemon.socket_path))
        return self.daemon.read_log()

    def test_api_key_read_from_the_credentials_directory(self):
        folder, _ = self.make_credentials_dir()
        self.start_fake()
        # The fake accepts only this key: a token proves the credential was read.
        self.start_daemon(profile=self.credential_profile(),
                          env=dict(os.environ, CREDENTIALS_DIRECTORY=folder))
        self.assert_issued(self.get_token())
        login = self.fake.token_requests()[0]
        self.assertTrue(login["has_apikey"])
        self.assertEqual(login["status"], 200)

    def test_credential_with_the_acl_mode_systemd_gives_it_is_read(self):
        # With an ACL for the service user the mode reads 0440.
        folder, _ = self.make_credentials_dir(mode=0o440)
        self.start_fake()
        self.start_daemon(profile=self.credential_profile(),
                          env=dict(os.environ, CREDENTIALS_DIRECTORY=folder))
        self.assert_issued(self.get_token())

    def test_credential_others_may_read_is_refused(self):
        folder, path = self.make_credentials_dir(mode=0o444)
        self.start_fake()
        self.prepare_daemon(profile=self.credential_profile())
        log = self.start_and_expect_failure(dict(os.environ, CREDENTIALS_DIRECTORY=folder))
        self.assertIn(f"api_key_credential {CREDENTIAL} ({path}): mode 0444 lets others "
                      "read or write the secret", log)

    def test_credential_without_credentials_directory_is_explained(self):
        self.start_fake()
        self.prepare_daemon(profile=self.credential_profile())
        env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
        log = self.start_and_expect_failure(env)
        self.assertIn("CREDENTIALS_DIRECTORY is not set (is the credential loaded by the unit?)",
                      log)

    def test_group_readable_key_file_is_refused_with_file_and_mode(self):
        os.chmod(self.api_key_file, 0o640)
        self.start_fake()
        self.prepare_daemon()
        log = self.start_and_expect_failure()
        expected = (f"profiles.default: api_key_file {self.api_key_file}: mode 0640 lets "
                    "group or others read or write the secret; make it 0600 or 0400")
        self.assertIn(expected, log)
        self.assertEqual(self.fake.token_requests(), [], "a refused key was sent to IAM")

        checked = self.daemon.cli("check-config", "-c", self.daemon.config_path)
        self.assertEqual(checked.returncode, EXIT_USAGE)
        self.assertIn(f"api_key_file {self.api_key_file}: mode 0640", checked.stderr)

    def test_others_writable_key_file_is_refused(self):
        os.chmod(self.api_key_file, 0o602)
        self.start_fake()
        self.prepare_daemon()
        log = self.start_and_expect_failure()
        self.assertIn(f"api_key_file {self.api_key_file}: mode 0602 lets group or others", log)

    def test_owner_only_key_file_is_accepted(self):
        os.chmod(self.api_key_file, 0o400)
        self.start_fake()
        self.start_daemon()
        self.assert_issued(self.get_token())


if __name__ == "__main__":
    unittest.main()
