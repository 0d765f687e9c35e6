#!/usr/bin/env python3
"""The `brine` command against the example servers: describe, call (success and each error path
with its exit status), a server stream, ping, a short bench, metadata and tokens, --config, TLS;
JSON output compared field by field.

Usage: brine_cli_test.py brine calculator_server bank_server WORK_DIR

Loopback only; every subprocess has a timeout.
"""
import json
import os
import subprocess
import sys

import tls_certs
from harness import check, report, start, stop

BRINE, CALC, BANK, WORK = sys.argv[1:5]


def brine(*args, stdin=None):
    r = subprocess.run([BRINE, *args], input=stdin, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def expect_failure(args, status, code_name, message_part, stdin=None):
    rc, out, err = brine(*args, stdin=stdin)
    assert rc == status, (args, rc, out, err)
    assert err.startswith(code_name + ": "), (args, err)
    assert message_part in err, (args, err)


def test_describe(uri):
    rc, out, err = brine("describe", uri, "--json")
    assert rc == 0, (rc, err)
    d = json.loads(out)
    assert d["wire"] == 1 and d["codecs"] == ["cereal", "protobuf", "json"], d
    add = [m for m in d["methods"] if m["name"] == "add" and "json" in m["codecs"]][0]
    assert add == {
        "name": "add", "object": "", "interface": "", "method": "add",
        "declaration": "calc::Number add(calc::AddRequest)",
        "contract": add["contract"], "fingerprint": add["fingerprint"], "shape": "unary",
        "codecs": ["cereal", "json"], "idempotent": True,
        "json": {"request": {"a": 0.0, "b": 0.0}, "response": {"value": 0.0}}}, add
    assert add["contract"] == "(s'calc::AddRequest'{f64,f64})->s'calc::Number'{f64}", add
    assert len(add["fingerprint"]) == 16 and int(add["fingerprint"], 16) != 0
    shapes = {m["name"]: m["shape"] for m in d["methods"]}
    assert shapes["primes"] == "server-stream" and shapes["accumulate"] == "bidi-stream", shapes
    assert shapes["sum"] == "unary", shapes
    # The human-readable form says the same.
    rc, out, _ = brine("describe", uri)
    assert rc == 0 and "calc::Number add(calc::AddRequest)" in out, out
    assert 'json request: {"a":0.0,"b":0.0}' in out, out


def test_describe_objects(uri):
    rc, out, err = brine("describe", uri, "--json")
    assert rc == 0, err
    methods = {m["name"]: m for m in json.loads(out)["methods"]}
    assert methods["bank.open"]["object"] == "bank", methods.keys()
    assert methods["bank.open"]["interface"] == "Bank", methods["bank.open"]
    # Objects a factory returns are listed under their interface.
    assert any(n.startswith("@Account.") for n in methods), methods.keys()


def test_calls(uri):
    rc, out, err = brine("call", uri, "add", '{"a":2,"b":3}')
    assert rc == 0 and json.loads(out) == {"value": 5.0}, (rc, out, err)
    rc, out, _ = brine("call", uri, "sum", "-", stdin='{"values":[1,2,3.5]}')
    assert rc == 0 and json.loads(out) == {"value": 6.5}, out


def test_object_calls(uri):
    rc, out, err = brine("call", uri, "bank.open", '["cli"]')
    assert rc == 0 and json.loads(out)["object"].startswith("@"), (rc, out, err)
    # A lone value is the one argument.
    rc, out, err = brine("call", uri, "bank.open", '"cli2"')
    assert rc == 0 and json.loads(out)["object"].startswith("@"), (rc, out, err)


def test_error_paths(uri):
    expect_failure(["call", uri, "divide", '{"numerator":1,"denominator":0}'], 64 + 13,
                   "INTERNAL", "division by zero [std::domain_error]")
    expect_failure(["call", uri, "no_such_method", "{}"], 64 + 5, "NOT_FOUND", "no_such_method")
    expect_failure(["call", uri, "add", '{"a":"two","b":3}'], 64 + 3, "INVALID_ARGUMENT", "'a'")
    expect_failure(["call", uri, "add", '{"a":2'], 64 + 3, "INVALID_ARGUMENT", "JsonText")
    expect_failure(["call", uri, "wait", '{"milliseconds":3000}', "--timeout", "100"], 64 + 4,
                   "DEADLINE_EXCEEDED", "")
    expect_failure(["call", uri, "accumulate", '{"value":1}'], 64 + 12, "UNIMPLEMENTED",
                   "server streams only")
    expect_failure(["call", "tcp://127.0.0.1:1", "add", "{}", "--timeout", "500"], 64 + 14,
                   "UNAVAILABLE", "127.0.0.1:1")
    # Usage errors: 2.
    assert brine()[0] == 2
    assert brine("call", uri)[0] == 2
    assert brine("call", uri, "add", "{}", "--metadata", "novalue")[0] == 2
    assert brine("call", "nosuch://x", "add")[0] == 2
    assert brine("bench", uri, "add", "-n", "0")[0] == 2
    rc, out, _ = brine("--help")
    assert rc == 0 and "describe" in out and "bench" in out, out


def test_stream(uri):
    rc, out, err = brine("call", uri, "primes", '{"value":30}')
    assert rc == 0, (rc, err)
    items = [json.loads(line) for line in out.splitlines()]
    assert items == [{"value": float(p)} for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29)], items
    expect_failure(["call", uri, "primes", '{"value":1e9}'], 64 + 3, "INVALID_ARGUMENT", "")


def test_ping(uri):
    rc, out, err = brine("ping", uri, "-c", "3", "-i", "0")
    assert rc == 0, (rc, err)
    lines = out.splitlines()
    assert len([x for x in lines if x.startswith("reply from " + uri)]) == 3, out
    assert "3 sent, 3 answered" in lines[-1], out
    expect_failure(["ping", "tcp://127.0.0.1:1", "-c", "1", "--timeout", "300"], 64 + 14,
                   "UNAVAILABLE", "")


def test_bench(uri):
    rc, out, err = brine("bench", uri, "add", '{"a":1,"b":2}', "-n", "300", "-c", "2", "--json")
    assert rc == 0, (rc, err)
    r = json.loads(out)
    assert r["calls"] == 300 and r["failed"] == 0 and r["concurrency"] == 2, r
    assert 0 < r["p50_us"] <= r["p90_us"] <= r["p99_us"] <= r["p999_us"] <= r["max_us"], r
    assert r["calls_per_second"] > 0 and r["seconds"] > 0, r
    # The run lasts as long as its calls, not until the progress bar next looks.
    assert r["seconds"] <= r["calls"] * r["max_us"] / r["concurrency"] / 1e6 + 0.1, r
    assert abs(r["calls_per_second"] * r["seconds"] - r["calls"]) <= 1, r
    assert "300/300" in err, err   # the progress bar
    rc, out, err = brine("bench", uri, "add", '{"a":1,"b":2}', "-n", "200")
    assert rc == 0 and "200 calls, 0 failed" in out and " us |" in out, out
    expect_failure(["bench", uri, "divide", '{"numerator":1,"denominator":0}', "-n", "5"],
                   64 + 13, "INTERNAL", "division by zero")


def test_tokens_metadata_config():
    p, uris = start([CALC, "--listen", "tcp://127.0.0.1:0"], {"BRINE_SERVER_TOKENS": '["s3cret"]'})
    try:
        uri = uris[0]
        expect_failure(["call", uri, "add", '{"a":1,"b":1}'], 64 + 16, "UNAUTHENTICATED", "")
        rc, out, err = brine("call", uri, "add", '{"a":1,"b":1}', "--token", "s3cret")
        assert rc == 0 and json.loads(out) == {"value": 2.0}, (rc, err)
        rc, out, err = brine("call", uri, "add", '{"a":1,"b":1}', "-m",
                             "authorization=Bearer s3cret")
        assert rc == 0 and json.loads(out) == {"value": 2.0}, (rc, err)
        config = os.path.join(WORK, "client.toml")
        with open(config, "w") as f:
            f.write('[client]\ntoken = "s3cret"\n')
        rc, out, err = brine("call", uri, "add", '{"a":1,"b":1}', "--config", config)
        assert rc == 0 and json.loads(out) == {"value": 2.0}, (rc, err)
        with open(config, "w") as f:
            f.write('[client]\ntokn = "s3cret"\n')
        rc, out, err = brine("call", uri, "add", "{}", "--config", config)
        assert rc == 2 and "token" in err, (rc, err)   # "did you mean"
    finally:
        stop(p)


def test_tls():
    ca, crt, key = tls_certs.make(os.path.join(WORK, "tls"))
    config = os.path.join(WORK, "server-tls.toml")
    with open(config, "w") as f:
        f.write(f'[server]\ntls_certificate = "{crt}"\ntls_private_key = "{key}"\n')
    p, uris = start([CALC, "--config", config, "--listen", "tls://127.0.0.1:0"])
    try:
        rc, out, err = brine("call", uris[0], "add", '{"a":2,"b":2}', "--tls-ca", ca)
        assert rc == 0 and json.loads(out) == {"value": 4.0}, (rc, err)
        # Without the CA the certificate is not trusted.
        expect_failure(["call", uris[0], "add", "{}", "--timeout", "2000"], 64 + 14,
                       "UNAVAILABLE", "")
    finally:
        stop(p)


def main():
    os.makedirs(WORK, exist_ok=True)
    calc, uris = start([CALC, "--listen", "tcp://127.0.0.1:0", "--listen", "unix://@brine-cli-%d"
                        % os.getpid()])
    try:
        for uri in uris:
            check(f"describe ({uri})", lambda: test_describe(uri))
            check(f"calls ({uri})", lambda: test_calls(uri))
        check("error paths and exit statuses", lambda: test_error_paths(uris[0]))
        check("a server stream", lambda: test_stream(uris[0]))
        check("ping", lambda: test_ping(uris[0]))
        check("bench", lambda: test_bench(uris[0]))
    finally:
        stop(calc)
    bank, uris = start([BANK, "--listen", "tcp://127.0.0.1:0"])
    try:
        check("describe lists objects", lambda: test_describe_objects(uris[0]))
        check("object calls", lambda: test_object_calls(uris[0]))
    finally:
        stop(bank)
    check("tokens, metadata and --config", test_tokens_metadata_config)
    check("TLS options", test_tls)
    return report()


if __name__ == "__main__":
    sys.exit(main())
