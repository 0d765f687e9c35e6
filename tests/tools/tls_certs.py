"""A CA and a certificate for 127.0.0.1 signed by it, made with the openssl command (loopback
tests of tls:// and https:// endpoints)."""
import os
import subprocess

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def make(directory):
    """Writes ca.crt, server.crt and server.key into `directory`; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    p = lambda name: os.path.join(directory, name)  # noqa: E731
    run = lambda *argv: subprocess.run(argv, check=True, capture_output=True, timeout=60)  # noqa: E731
    run("openssl", "req", "-x509", *EC, "-keyout", p("ca.key"), "-out", p("ca.crt"), "-days", "2",
        "-subj", "/CN=brine-test-ca")
    run("openssl", "req", *EC, "-keyout", p("server.key"), "-out", p("server.csr"), "-subj",
        "/CN=127.0.0.1")
    with open(p("san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey",
        p("ca.key"), "-CAcreateserial", "-out", p("server.crt"), "-days", "2", "-extfile",
        p("san.ext"))
    return p("ca.crt"), p("server.crt"), p("server.key")
