#!/usr/bin/env python3
"""Reaching IAM through an HTTP proxy with CONNECT: a real tinyproxy with
Basic authentication on loopback, the proxy from the profile or from
HTTPS_PROXY / NO_PROXY, and every way a proxy can fail an attempt."""

import os
import shutil
import socket
import threading
import time
import unittest

from harness import (IntegrationTest, reserve_port, start_process, stop_process,
                     wait_until)

PROXY_USER = "tokend"
PROXY_PASSWORD = "pr0xy-" + os.urandom(6).hex()
WRONG_PASSWORD = "wrong-" + os.urandom(6).hex()
PROXY_START_TIMEOUT_S = 10.0
CLIENT_WAIT_S = 2
# The silent proxy's test: the connect deadline, and how late it may fire.
SILENT_CONNECT_S = 1.0
DEADLINE_LEEWAY_S = 1.5


class Tinyproxy:
    """tinyproxy in the foreground on 127.0.0.1, with its own config:
    Basic auth, clients from 127.0.0.1 only, CONNECT to `connect_ports`."""

    def __init__(self, tmp, connect_ports):
        self.tmp = tmp
        self.connect_ports = list(connect_ports)
        self.conf = os.path.join(tmp, "tinyproxy.conf")
        self.log = os.path.join(tmp, "tinyproxy.log")
        self.port = None
        self.proc = None

    def start(self):
        self.port, holder = reserve_port()
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            "MaxClients 10",
            "LogLevel Info",
            f'LogFile "{self.log}"',
            f'PidFile "{os.path.join(self.tmp, "tinyproxy.pid")}"',
            "Allow 127.0.0.1",
            f"BasicAuth {PROXY_USER} {PROXY_PASSWORD}",
        ]
        lines += [f"ConnectPort {port}" for port in self.connect_ports]
        with open(self.conf, "w", encoding="ascii") as f:
            f.write("\n".join(lines) + "\n")

        holder.close()
        self.proc = start_process(["tinyproxy", "-d", "-c", self.conf],
                                  os.path.join(self.tmp, "tinyproxy.out"))
        wait_until(self.listening, PROXY_START_TIMEOUT_S, "tinyproxy to listen")
        return self

    def listening(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"tinyproxy exited with {self.proc.returncode}; "
                                 f"see {self.tmp}/tinyproxy.out")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)

    def url(self, password=PROXY_PASSWORD):
        return f"http://{PROXY_USER}:{password}@127.0.0.1:{self.port}"

    def connects(self):
        """The CONNECT requests tinyproxy logged, e.g. 'localhost:1234'."""
        if not os.path.exists(self.log):
            return []
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return [line.split("CONNECT ", 2)[2].split()[0]
                    for line in f if line.count("CONNECT ") >= 2]


class StubProxy:
    """A TCP listener that plays a broken proxy: it answers every
    connection with `answer`, or with nothing at all when it is None."""

    def __init__(self, answer):
        self.answer = answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            if self.answer is not None:
                conn.recv(4096)
                conn.sendall(self.answer.encode())
                conn.close()

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


@unittest.skipIf(shutil.which("tinyproxy") is None, "tinyproxy is not installed")
class ProxyTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.start_fake()
        self.proxy = Tinyproxy(self.tmp, [self.fake.port]).start()
        self.addCleanup(self.proxy.stop)

    def secrets_in_use(self):
        return super().secrets_in_use() + [("proxy password", PROXY_PASSWORD),
                                           ("wrong proxy password", WRONG_PASSWORD)]

    def localhost_url(self):
        """The fake's URL by name, so SNI and the host-name check are used."""
        return f"https://localhost:{self.fake.port}/identity/token"

    def environment(self, **variables):
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("https_proxy", "no_proxy", "http_proxy", "all_proxy")}
        env.update(variables)
        return env

    def assert_failure_names_the_proxy(self, error, *fragments):
        self.assertEqual(error["kind"], "network", error)
        for fragment in fragments:
            self.assertIn(fragment, error["message"])
        self.assertEqual(self.fake.token_requests(), [])

    def test_token_through_the_profiles_proxy_with_basic_auth(self):
        self.start_daemon(profile={"proxy": self.proxy.url()},
                          token_url=self.localhost_url())

        token = self.get_token()
        self.assert_issued(token)
        self.assertEqual(self.proxy.connects(), [f"localhost:{self.fake.port}"])
        self.assertEqual(len(self.fake.token_requests()), 1)

        # A refresh goes the same way.
        reply = self.daemon.request("POST", "/v1/refresh")
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(len(self.proxy.connects()), 2)
        self.assertEqual(self.fake.grants("refresh_token")[0]["status"], 200)

    def test_proxy_from_https_proxy_in_the_environment(self):
        env = self.environment(HTTPS_PROXY=self.proxy.url(), NO_PROXY="example.test")
        self.start_daemon(token_url=self.localhost_url(), env=env)

        self.assert_issued(self.get_token())
        self.assertEqual(self.proxy.connects(), [f"localhost:{self.fake.port}"])
        self.assertIn(f"reaching IAM through proxy 127.0.0.1:{self.proxy.port} "
                      "(from HTTPS_PROXY)", self.daemon.read_log())

    def test_no_proxy_sends_the_request_directly(self):
        env = self.environment(https_proxy=self.proxy.url(), no_proxy="127.0.0.2,localhost")
        self.start_daemon(token_url=self.localhost_url(), env=env)

        self.assert_issued(self.get_token())
        self.assertEqual(self.proxy.connects(), [])
        self.assertNotIn("reaching IAM through", self.daemon.read_log())

    def test_no_proxy_credentials_get_407(self):
        self.start_daemon(profile={"proxy": f"http://127.0.0.1:{self.proxy.port}"})

        error = self.wait_for_last_error()
        self.assert_failure_names_the_proxy(
            error, "HTTP 407", f"proxy 127.0.0.1:{self.proxy.port}", "tunnel")
        reply = self.daemon.get(f"/v1/token?wait={CLIENT_WAIT_S}")
        self.assertEqual(reply.status, 503, reply)
        self.assertIn("407", reply.json()["message"])

    def test_wrong_proxy_password_is_a_clear_failure(self):
        self.start_daemon(profile={"proxy": self.proxy.url(WRONG_PASSWORD)})

        # tinyproxy answers a wrong password with 401 (a missing one with 407).
        error = self.wait_for_last_error()
        self.assert_failure_names_the_proxy(
            error, "HTTP 401", f"proxy 127.0.0.1:{self.proxy.port}", "tunnel")
        self.assertEqual(self.daemon.profile_status()["state"], "starting")

    def test_a_port_the_proxy_forbids_is_a_clear_failure(self):
        port, holder = reserve_port()
        self.addCleanup(holder.close)
        self.start_daemon(profile={"proxy": self.proxy.url()},
                          token_url=f"https://127.0.0.1:{port}/identity/token")

        error = self.wait_for_last_error()
        self.assert_failure_names_the_proxy(error, "403", f"127.0.0.1:{port}")

    def test_tls_is_still_verified_through_the_tunnel(self):
        self.start_daemon(profile={"proxy": self.proxy.url()},
                          token_url=self.localhost_url(), ca_file=self.pki["other_ca"])

        error = self.wait_for_last_error()
        self.assertEqual(error["kind"], "tls", error)
        self.assertIn("certificate verify failed", error["message"])
        self.assertIn(f"via proxy 127.0.0.1:{self.proxy.port}", error["message"])
        self.assertGreaterEqual(len(self.proxy.connects()), 1)
        self.assertEqual(self.fake.token_requests(), [])


class BrokenProxyTest(IntegrationTest):
    """Proxies that are not there, say no, or say nothing."""

    def setUp(self):
        super().setUp()
        self.start_fake()

    def start_with_proxy(self, port, connect_s=2):
        self.start_daemon(profile={"proxy": f"http://user:pw@127.0.0.1:{port}",
                                   "timeouts": {"connect_s": connect_s}})

    def test_refused_connection_to_the_proxy(self):
        port, holder = reserve_port()
        self.addCleanup(holder.close)
        self.start_with_proxy(port)

        error = self.wait_for_last_error()
        self.assertEqual(error["kind"], "network", error)
        self.assertIn("refused", error["message"].lower())
        self.assertIn(f"proxy 127.0.0.1:{port}", error["message"])

    def test_bad_gateway_from_the_proxy(self):
        stub = StubProxy("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        self.addCleanup(stub.close)
        self.start_with_proxy(stub.port)

        error = self.wait_for_last_error()
        self.assertEqual(error["kind"], "network", error)
        self.assertIn("HTTP 502 Bad Gateway", error["message"])
        self.assertEqual(self.fake.token_requests(), [])

    def test_a_silent_proxy_runs_into_the_connect_deadline(self):
        stub = StubProxy(None)
        self.addCleanup(stub.close)
        started = time.monotonic()
        self.start_with_proxy(stub.port, connect_s=SILENT_CONNECT_S)

        error = self.wait_for_last_error(timeout=SILENT_CONNECT_S + 5)
        took = time.monotonic() - started
        self.assertEqual(error["kind"], "timeout", error)
        self.assertIn("connect deadline", error["message"])
        self.assertIn("opening the tunnel through the proxy", error["message"])
        self.assertLess(took, SILENT_CONNECT_S + DEADLINE_LEEWAY_S + 1)

    def test_an_https_proxy_url_in_the_environment_is_refused_with_its_name(self):
        env = dict(os.environ, HTTPS_PROXY="https://user:secretpw@127.0.0.1:1")
        env.pop("https_proxy", None)
        env.pop("NO_PROXY", None)
        env.pop("no_proxy", None)
        self.start_daemon(env=env)

        error = self.wait_for_last_error()
        self.assertIn("HTTPS_PROXY", error["message"])
        self.assertIn("http://", error["message"])
        self.assertNotIn("secretpw", self.daemon.read_log())


if __name__ == "__main__":
    unittest.main()
