#!/usr/bin/python3
"""Minimal signal client (skycoin/net framing, ops REG/TOP/PING/SHUTDOWN), like an original Go component.

Registers with SIGNAL_SERVER_ADDRESS under SIGNAL_CLIENT_ID and answers requests; without SIGNAL_CLIENT it
only sleeps (so the same program runs under supervisord). Used by bench/viscript-vs-supervisord.sh.
"""
import json
import os
import socket
import struct
import sys
import threading
import time

enabled = os.environ.get("SIGNAL_CLIENT")
if enabled is None or enabled.lower() == "false":
    time.sleep(10**6)
    sys.exit(0)

host, _, port = os.environ.get("SIGNAL_SERVER_ADDRESS", "127.0.0.1:7999").rpartition(":")
cid = int(os.environ.get("SIGNAL_CLIENT_ID", "1"))
sock = socket.create_connection((host, int(port)))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
seq = 0


def send(op, payload):
    global seq
    seq += 1
    body = bytes([op]) + json.dumps(payload, separators=(",", ":")).encode()
    sock.sendall(struct.pack(">BII", 0x01, seq, len(body)) + body)


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            sys.exit(0)
        buf += chunk
    return buf


def keepalive():
    # Like the Go client: a PING frame (0x81 + unix ms) every 60 s keeps the server's 90 s idle timeout away.
    while True:
        time.sleep(60)
        sock.sendall(struct.pack(">BQ", 0x81, int(time.time() * 1000)))


send(0x00, {"Id": cid})
threading.Thread(target=keepalive, daemon=True).start()
while True:
    kind = read_exact(1)[0]
    if kind == 0x80:  # ACK
        read_exact(4)
        continue
    if kind == 0x82:  # PONG
        read_exact(8)
        continue
    if kind != 0x01:
        sys.exit(1)
    rseq, length = struct.unpack(">II", read_exact(8))
    body = read_exact(length)
    sock.sendall(struct.pack(">BI", 0x80, rseq))  # ACK every NORMAL frame
    if not body:
        continue
    op = body[0]
    if op == 0x00:  # TOP
        send(0x80, {"HeapAlloc": 1 << 20, "HeapSys": 4 << 20, "HeapIdle": 2 << 20, "HeapInuse": 2 << 20,
                    "StackSys": 1 << 19, "StackInuse": 1 << 19})
    elif op == 0x01:  # PING
        send(0x81, None)
    elif op == 0x02:  # SHUTDOWN
        send(0x82, {"Pid": os.getpid()})
        time.sleep(0.05)
        sys.exit(0)
