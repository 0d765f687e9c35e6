"""What the tool tests share: example servers started as child processes (port 0, the real
endpoints read from their "listening" lines), stopped with a check of their exit status, and
named checks that report every failure instead of stopping at the first."""
import os
import signal
import subprocess
import traceback

FAILURES = []


def start(argv, env=None):
    """Starts a server; returns (process, [its endpoints, in --listen order])."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=e)
    uris = []
    for _ in range(argv.count("--listen")):
        line = p.stdout.readline().split()
        assert line and line[0] == "listening", line
        uris.append(line[1])
    return p, uris


def stop(p):
    """Stops a server; it must exit cleanly (a sanitizer's report makes the status non-zero)."""
    p.send_signal(signal.SIGTERM)
    try:
        assert p.wait(timeout=15) == 0, "the server exited with status %d" % p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        raise


def check(name, f):
    try:
        f()
        print("ok   ", name)
    except Exception as e:  # noqa: BLE001 - the report names every failure
        traceback.print_exc()
        print("FAIL ", name, repr(e))
        FAILURES.append(name)


def report():
    """The exit status: 0 when every check passed."""
    if FAILURES:
        print("failed:", ", ".join(FAILURES))
        return 1
    print("all passed")
    return 0
