#!/usr/bin/env python3
"""A brine client in Python's standard library only (socket, struct, json).

It speaks the wire of docs/wire-format.md with the json codec: every frame is a 4-byte
big-endian length, a 16-byte header and the method name, then a JSON payload.

    from brine_json import Connection
    with Connection("tcp://127.0.0.1:7000") as c:
        c.call("add", {"a": 2, "b": 3})            # a typed call: one JSON value each way
        bank = c.remote("bank")
        account = bank.open("ann")                  # a factory: returns a remote reference
        account.deposit(10000)                      # remote objects: a JSON array of arguments
        for p in c.stream("primes", {"value": 50}):  # a server stream: one JSON value per item
            print(p["value"])

Run it against the calculator and bank examples:
    python3 brine_json.py calculator tcp://127.0.0.1:7000
    python3 brine_json.py bank tcp://127.0.0.1:7100
"""
import itertools
import json
import socket
import struct
import sys

KIND_REQUEST, KIND_REPLY, KIND_ERROR, KIND_ONEWAY = 1, 2, 3, 4
KIND_HEARTBEAT, KIND_ITEM, KIND_CREDIT = 6, 8, 10
FLAG_STREAM = 0x04
INITIAL_WINDOW = 65536  # the bytes of item frames a stream's sender may have in flight at first
CODEC_JSON = 3
HEADER = struct.Struct(">I2sBBBBHQ")  # length, magic, version, kind, codec, flags, method, id
STATUS = {0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
          5: "NOT_FOUND", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION", 12: "UNIMPLEMENTED",
          13: "INTERNAL",
          14: "UNAVAILABLE"}


class RpcError(Exception):
    """A call that ended with an error frame: the status, the message, the remote type."""

    def __init__(self, code, message, remote_type):
        super().__init__(f"{STATUS.get(code, code)}: {message}" +
                         (f" [{remote_type}]" if remote_type else ""))
        self.code, self.message, self.remote_type = code, message, remote_type


def connect_socket(uri, timeout):
    if uri.startswith("tcp://"):
        host, _, port = uri[6:].rpartition(":")
        return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    if uri.startswith("unix://"):
        path = uri[7:]
        address = "\0" + path[1:] if path.startswith("@") else path
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(address)
        return s
    raise ValueError(f"this client speaks tcp:// and unix://, not {uri}")


class Connection:
    def __init__(self, uri, timeout=5.0):
        self.sock = connect_socket(uri, timeout)
        self.ids = itertools.count(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def _send(self, kind, method, payload, flags=0):
        call_id = next(self.ids)
        name = method.encode()
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.sock.sendall(HEADER.pack(16 + len(name) + len(body), b"br", 1, kind, CODEC_JSON,
                                      flags, len(name), call_id) + name + body)
        return call_id

    def _recv_frame(self):
        """The next frame: (kind, call id, payload bytes)."""
        (length,) = struct.unpack(">I", self._recv_exact(4))
        if length < 16 or length > 16 * 1024 * 1024:
            raise ConnectionError(f"bad frame length {length}")
        frame = self._recv_exact(length)
        _, magic, version, kind, _, _, mlen, call_id = HEADER.unpack(b"\0\0\0\0" + frame[:16])
        if magic != b"br" or version != 1:
            raise ConnectionError("unexpected frame")
        return kind, call_id, frame[16 + mlen:]

    @staticmethod
    def _error(body):
        code, n = struct.unpack(">II", body[:8])
        (t,) = struct.unpack(">H", body[8 + n:10 + n])
        return RpcError(code, body[8:8 + n].decode(), body[10 + n:10 + n + t].decode())

    def _recv_exact(self, n):
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("connection closed by the server")
            data += chunk
        return bytes(data)

    def call(self, method, value):
        """Sends one request and returns the decoded reply; raises RpcError on an error frame."""
        call_id = self._send(KIND_REQUEST, method, value)
        kind, reply_id, body = self._recv_frame()
        if reply_id not in (call_id, 0):
            raise ConnectionError("unexpected frame")
        if kind == KIND_ERROR:
            raise self._error(body)
        return json.loads(body)

    def stream(self, method, value):
        """Opens a server stream (flags bit 2) and yields its items as they arrive; returns at
        its end (the server's reply), raises RpcError if it ends with an error frame. Flow
        control: the server may send 65,536 bytes of item frames (each counts 16 + its payload)
        beyond what was credited; this reader credits what it has read every 32 KiB."""
        call_id = self._send(KIND_REQUEST, method, value, FLAG_STREAM)
        unacked = 0
        while True:
            kind, frame_id, body = self._recv_frame()
            if frame_id == 0 and kind == KIND_ERROR:
                raise self._error(body)
            if frame_id != call_id:
                continue  # a heartbeat, or a frame of a call that ended
            if kind == KIND_ITEM:
                yield json.loads(body)
                unacked += 16 + len(body)
                if unacked >= INITIAL_WINDOW // 2:
                    self.sock.sendall(HEADER.pack(20, b"br", 1, KIND_CREDIT, 0, 0, 0, call_id) +
                                      struct.pack(">I", unacked))
                    unacked = 0
            elif kind == KIND_ERROR:
                raise self._error(body)
            elif kind == KIND_REPLY:
                return

    def remote(self, name):
        return RemoteObject(self, name)


class RemoteObject:
    """obj.method(*args) calls "<name>.<method>" with the JSON array of the arguments. A reply of
    the form {"object": "@N"} is a new remote object; release() frees it on the server."""

    def __init__(self, connection, name):
        self._connection, self._name = connection, name

    def __getattr__(self, method):
        def invoke(*args):
            result = self._connection.call(f"{self._name}.{method}", list(args))
            if isinstance(result, dict) and set(result) == {"object"}:
                return RemoteObject(self._connection, result["object"])
            return result
        return invoke

    def release(self):
        self._connection._send(KIND_ONEWAY, f"{self._name}.~release", [])


def calculator(uri):
    with Connection(uri) as c:
        print("add(2, 3) =", c.call("add", {"a": 2, "b": 3})["value"])
        print("sum(1..10) =", c.call("sum", {"values": list(range(1, 11))})["value"])
        try:
            c.call("divide", {"numerator": 1, "denominator": 0})
        except RpcError as e:
            print("divide(1, 0) failed:", e)
        print("primes up to 50 (a stream):", [p["value"] for p in c.stream("primes", {"value": 50})])


def bank(uri):
    with Connection(uri) as c:
        account = c.remote("bank").open("py")
        print("py has account", account._name)
        print("deposit 100.00 -> balance", account.deposit(10000))
        try:
            account.withdraw(1000000)
        except RpcError as e:
            print("withdraw 10000.00 failed:", e)
        print("history:", account.history())
        account.release()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("calculator", "bank"):
        sys.exit("usage: brine_json.py calculator|bank URI")
    {"calculator": calculator, "bank": bank}[sys.argv[1]](sys.argv[2])
