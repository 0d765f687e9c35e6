#!/usr/bin/env python3
"""Runs examples/python/brine_json.py (stdlib only) against the C++ calculator and bank servers
with the json codec, checking every answer.

Usage: python_json_test.py EXAMPLES_PYTHON_DIR calculator_server bank_server
"""
import subprocess
import sys

sys.path.insert(0, sys.argv[1])
from brine_json import Connection, RpcError  # noqa: E402


def start(argv):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    assert line and line[0] == "listening", line
    return p, line[1]


def expect_error(code, remote_type, f):
    try:
        f()
    except RpcError as e:
        assert e.code == code, (e.code, str(e))
        assert e.remote_type == remote_type, (e.remote_type, str(e))
        return e
    raise AssertionError("no error")


def main():
    calc, calc_uri = start([sys.argv[2], "--listen", "tcp://127.0.0.1:0", "--codec", "json"])
    bank, bank_uri = start([sys.argv[3], "--listen", "tcp://127.0.0.1:0"])
    try:
        with Connection(calc_uri) as c:
            assert c.call("add", {"a": 2, "b": 3}) == {"value": 5.0}
            assert c.call("sum", {"values": [1, 2, 3.5]}) == {"value": 6.5}
            e = expect_error(13, "std::domain_error",
                             lambda: c.call("divide", {"numerator": 1, "denominator": 0}))
            assert e.message == "division by zero"
            expect_error(3, "", lambda: c.call("add", {"a": "two", "b": 3}))   # wrong type
            expect_error(3, "", lambda: c.call("add", [[[[[[[[]]]]]]]]))         # wrong shape
            expect_error(5, "", lambda: c.call("no_such_method", {}))
            assert c.call("add", {"b": 1, "a": 41, "extra": True}) == {"value": 42.0}
            # A server stream, read with credits: far more than one window of items.
            primes = [p["value"] for p in c.stream("primes", {"value": 200000})]
            assert len(primes) == 17984 and primes[:5] == [2, 3, 5, 7, 11], primes[:5]
            assert primes[-1] == 199999, primes[-1]
            expect_error(3, "", lambda: list(c.stream("primes", {"value": 1e9})))
            expect_error(9, "", lambda: c.call("primes", {"value": 5}))  # a stream, not a call
            assert c.call("add", {"a": 1, "b": 1}) == {"value": 2.0}      # the connection is fine

        with Connection(bank_uri) as c:
            bank_obj = c.remote("bank")
            account = bank_obj.open("py")
            assert account._name.startswith("@"), account._name
            assert bank.stdout.readline().startswith("opened an account for py")
            assert account.deposit(10000) == 10000
            assert account.withdraw(2500) == 7500
            e = expect_error(13, "bank::InsufficientFunds", lambda: account.withdraw(10 ** 9))
            assert "7500" in e.message, e.message
            assert account.history() == ["deposit 10000", "withdraw 2500"]
            assert bank_obj.open_accounts() == 1
            expect_error(5, "", lambda: c.remote("nobody").open("x"))
            expect_error(5, "", lambda: bank_obj.close_everything())
            expect_error(3, "", lambda: account.deposit("lots"))
            expect_error(3, "", lambda: account.deposit(1, 2))  # one argument, not two
            account.release()  # the server frees it now, on a live connection
            assert bank.stdout.readline().startswith("closed the account of py (0 open)")
            expect_error(5, "", lambda: account.balance())
            assert bank_obj.open_accounts() == 0
        print("python json client: all checks passed")
    finally:
        for p in (calc, bank):
            p.terminate()
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
