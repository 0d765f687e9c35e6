#!/usr/bin/env python3
"""A brine client written from docs/wire-format.md with the standard library only.

Usage: python_client.py PATH_TO_calculator_server
Starts the server on port 0, reads its "listening" line, and calls it over raw TCP with both
codecs, checking replies, an error frame, and a protocol error, then once more through
multiprocessing.connection. Exits non-zero on any mismatch.
"""
import socket
import struct
import subprocess
import sys


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by the server")
        data += chunk
    return data


def send_frame(sock, kind, codec, call_id, method, payload):
    m = method.encode()
    header = struct.pack(">I2sBBBBHQ", 16 + len(m) + len(payload), b"br", 1, kind, codec, 0,
                         len(m), call_id)
    sock.sendall(header + m + payload)


def read_frame(sock):
    (length,) = struct.unpack(">I", recv_exact(sock, 4))
    frame = recv_exact(sock, length)
    magic, version, kind, codec, flags, mlen, call_id = struct.unpack(">2sBBBBHQ", frame[:16])
    assert magic == b"br" and version == 1 and flags == 0, frame[:16]
    return kind, codec, call_id, frame[16 + mlen:]


def parse_error(body):
    code, n = struct.unpack(">II", body[:8])
    message = body[8:8 + n].decode()
    (t,) = struct.unpack(">H", body[8 + n:10 + n])
    return code, message, body[10 + n:10 + n + t].decode()


def main():
    server = subprocess.Popen([sys.argv[1], "--listen", "tcp://127.0.0.1:0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().split()
        assert line[0] == "listening", line
        host, port = line[1][len("tcp://"):].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=10)

        # cereal: 0x01, then little-endian doubles
        send_frame(s, 1, 1, 1, "add", b"\x01" + struct.pack("<dd", 2.0, 3.0))
        # protobuf: tag 0x09 (field 1, 64-bit), tag 0x11 (field 2, 64-bit)
        send_frame(s, 1, 2, 2, "add", b"\x09" + struct.pack("<d", 20.0) +
                   b"\x11" + struct.pack("<d", 22.0))
        send_frame(s, 1, 1, 3, "divide", b"\x01" + struct.pack("<dd", 1.0, 0.0))
        answers = {}
        for _ in range(3):
            kind, codec, call_id, body = read_frame(s)
            answers[call_id] = (kind, codec, body)
        assert answers[1] == (2, 1, b"\x01" + struct.pack("<d", 5.0)), answers[1]
        assert answers[2] == (2, 2, b"\x09" + struct.pack("<d", 42.0)), answers[2]
        kind, codec, body = answers[3]
        assert kind == 3 and codec == 0, answers[3]
        assert parse_error(body) == (13, "division by zero", "std::domain_error"), body

        # A protocol error: an error frame with call id 0, then the connection closes.
        s.sendall(b"\xff\xff\xff\xff")
        kind, codec, call_id, body = read_frame(s)
        assert (kind, call_id) == (3, 0) and parse_error(body)[0] == 8, body
        assert s.recv(1) == b""

        # multiprocessing.connection speaks the same framing (a signed 32-bit big-endian length,
        # then the bytes): send_bytes of a frame without its prefix is that frame, recv_bytes
        # reads one (docs/wire-format.md, "Size limits").
        from multiprocessing.connection import Connection
        raw = socket.create_connection((host, int(port)))
        raw.setblocking(True)  # Connection reads the descriptor with os.read (ctest's timeout bounds it)
        conn = Connection(raw.detach())
        body = (struct.pack(">2sBBBBHQ", b"br", 1, 1, 1, 0, 3, 4) + b"add" +
                b"\x01" + struct.pack("<dd", 20.0, 22.0))
        conn.send_bytes(body)
        reply = conn.recv_bytes()
        assert reply[:16] == struct.pack(">2sBBBBHQ", b"br", 1, 2, 1, 0, 0, 4), reply[:16]
        assert reply[16:] == b"\x01" + struct.pack("<d", 42.0), reply
        conn.close()
        print("python client: 5 checks passed")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
