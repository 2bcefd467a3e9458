#!/usr/bin/env python3
"""The client examples in README.md, run as they are written there against a
live daemon: the shell function with curl, the Python standard-library
client, and the C++ program on common/local_client.hpp.

Each example is the fenced block right after a `<!-- readme-example: NAME -->`
line. The only thing the test sets is IAM_TOKEND_SOCKET, which the examples
read the way every client of the daemon does."""

import os
import re
import shutil
import subprocess
import textwrap
import unittest

from harness import REPO, IntegrationTest

README = os.path.join(REPO, "README.md")
COMMON = os.path.join(REPO, "common")
RUN_TIMEOUT_S = 30
COMPILE_TIMEOUT_S = 120


def readme_example(name):
    """The code of the fenced block after the example's marker."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    pattern = (rf"<!-- readme-example: {re.escape(name)} -->\n"
               r"```[a-z]*\n(.*?)\n```")
    found = re.findall(pattern, text, re.DOTALL)
    if len(found) != 1:
        raise AssertionError(f"README.md has {len(found)} '{name}' examples, expected 1")
    return found[0] + "\n"


class ReadmeExamplesTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.start_fake()
        self.start_daemon()
        self.token = self.get_token()
        self.env = dict(os.environ, IAM_TOKEND_SOCKET=self.daemon.socket_path)
        self.dead_env = dict(os.environ,
                             IAM_TOKEND_SOCKET=os.path.join(self.tmp, "nobody.sock"))

    def run_example(self, argv, env=None, **kwargs):
        return subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, env=env or self.env, **kwargs)

    def write_example(self, name, file_name):
        path = os.path.join(self.tmp, file_name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(readme_example(name))
        return path

    def test_shell_example(self):
        script = self.write_example("shell", "example.sh")

        def shell(call, env=None):
            return self.run_example(["bash", "-c", f'source "{script}"; {call}'], env)

        default = shell("iam_token")
        self.assertEqual(default.returncode, 0, default.stderr)
        self.assertEqual(default.stdout, self.token)

        named = shell("iam_token default")
        self.assertEqual(named.stdout, self.token)

        unknown = shell("iam_token no-such-profile")
        self.assertNotEqual(unknown.returncode, 0)
        self.assertEqual(unknown.stdout, "")

        no_daemon = shell("iam_token", self.dead_env)
        self.assertNotEqual(no_daemon.returncode, 0)
        self.assertEqual(no_daemon.stdout, "")

    def test_python_example(self):
        self.write_example("python", "example.py")
        driver = textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {self.tmp!r})
            from example import iam_token
            try:
                print(iam_token(*sys.argv[1:]))
            except RuntimeError as error:
                print(error, file=sys.stderr)
                sys.exit(3)
            """)

        served = self.run_example(["python3", "-c", driver])
        self.assertEqual(served.returncode, 0, served.stderr)
        self.assertEqual(served.stdout, self.token + "\n")

        unknown = self.run_example(["python3", "-c", driver, "no-such-profile"])
        self.assertEqual(unknown.returncode, 3, unknown.stderr)
        self.assertIn("no IAM token: 404", unknown.stderr)

    @unittest.skipIf(shutil.which("g++") is None, "g++ is not installed")
    def test_cpp_example(self):
        source = self.write_example("cpp", "example.cpp")
        binary = os.path.join(self.tmp, "example")
        compiled = subprocess.run(
            ["g++", "-std=c++20", "-Wall", "-Wextra", "-Werror", "-I", COMMON,
             source, "-o", binary],
            capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        self.assertEqual(compiled.returncode, 0, compiled.stderr)

        served = self.run_example([binary])
        self.assertEqual(served.returncode, 0, served.stderr)
        self.assertEqual(served.stdout, self.token + "\n")

        no_daemon = self.run_example([binary], self.dead_env)
        self.assertEqual(no_daemon.returncode, 1)
        self.assertIn("no IAM token: cannot connect", no_daemon.stderr)


if __name__ == "__main__":
    unittest.main()
