#!/usr/bin/env python3
"""Makes a throwaway PKI for the fake IAM server with the openssl command line.

Two unrelated certificate authorities are made, each with a server
certificate for `localhost` and `127.0.0.1`:

    ca.pem, ca.key                 the CA the daemon is told to trust
    server.pem, server.key         signed by ca.pem; the fake IAM serves this
    other-ca.pem, other-ca.key     a CA with no relation to the first
    other-server.pem, other-server.key   signed by other-ca.pem

Keys are P-256 EC keys (quick to make); certificates live for
VALIDITY_DAYS. Nothing here is fit for anything but tests.

Usage: make_test_ca.py OUTDIR      (prints the JSON map of names to paths)
"""

import json
import os
import subprocess
import sys

VALIDITY_DAYS = 2
CURVE = "prime256v1"
SERVER_SAN = "DNS:localhost,IP:127.0.0.1"

CA_EXTENSIONS = (
    "basicConstraints=critical,CA:TRUE",
    "keyUsage=critical,keyCertSign,cRLSign",
    "subjectKeyIdentifier=hash",
)

SERVER_EXTENSIONS = f"""\
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName={SERVER_SAN}
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
"""


def openssl(*args):
    result = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def make_key(path):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{CURVE}",
            "-out", path)
    os.chmod(path, 0o600)


def make_ca(outdir, name, common_name):
    key = os.path.join(outdir, f"{name}.key")
    cert = os.path.join(outdir, f"{name}.pem")
    make_key(key)
    extensions = [arg for ext in CA_EXTENSIONS for arg in ("-addext", ext)]
    openssl("req", "-x509", "-new", "-key", key, "-sha256",
            "-days", str(VALIDITY_DAYS), "-subj", f"/O=iam-tokend tests/CN={common_name}",
            *extensions, "-out", cert)
    return cert, key


def make_server_cert(outdir, name, ca_cert, ca_key):
    key = os.path.join(outdir, f"{name}.key")
    cert = os.path.join(outdir, f"{name}.pem")
    csr = os.path.join(outdir, f"{name}.csr")
    ext = os.path.join(outdir, f"{name}.ext")
    make_key(key)
    openssl("req", "-new", "-key", key, "-subj", "/O=iam-tokend tests/CN=localhost",
            "-out", csr)
    with open(ext, "w", encoding="ascii") as f:
        f.write(SERVER_EXTENSIONS)
    openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
            "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
            "-sha256", "-days", str(VALIDITY_DAYS), "-extfile", ext, "-out", cert)
    os.remove(csr)
    os.remove(ext)
    return cert, key


def make_test_pki(outdir):
    """Makes every file listed in the module docstring; returns name -> path."""
    os.makedirs(outdir, exist_ok=True)
    ca, ca_key = make_ca(outdir, "ca", "iam-tokend test CA")
    server, server_key = make_server_cert(outdir, "server", ca, ca_key)
    other_ca, other_ca_key = make_ca(outdir, "other-ca", "iam-tokend unrelated CA")
    other_server, other_server_key = make_server_cert(
        outdir, "other-server", other_ca, other_ca_key)
    return {
        "ca": ca, "ca_key": ca_key,
        "server": server, "server_key": server_key,
        "other_ca": other_ca, "other_ca_key": other_ca_key,
        "other_server": other_server, "other_server_key": other_server_key,
    }


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    print(json.dumps(make_test_pki(argv[1]), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
