#!/usr/bin/env python3
"""Mesh stream benchmark: throughput and round-trip latency of one stream through the Skywire mesh
(1 hop and 3 hops, the built `skywire` executables on loopback) beside direct loopback TCP and
OpenSSH dynamic forwarding (`ssh -D`), measured in one run on the same machine.

Usage: bench/mesh/meshbench.py [--mb 200] [--pings 2000]   (run from the repository root after
`dotnet build -c Release`). Talks to the nodes through the documented app API (docs/protocol.md §7),
which also shows that a non-.NET program can use it. Prints a Markdown table.
"""
import argparse, json, os, re, shutil, signal, socket, struct, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKYWIRE = ["dotnet", os.path.join(ROOT, "src/Skywire/bin/Release/net10.0/skywire.dll")]
CHUNK = 256 * 1024
procs = []


def recvn(s, n):
    buf = bytearray()
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            raise EOFError("connection closed")
        buf += b
    return bytes(buf)


# ---- the app API (JSON frames: u32 length | u8 opcode | u32 request id | payload) ----
def frame(op, rid, obj):
    p = json.dumps(obj).encode()
    return struct.pack(">IBI", len(p), op, rid) + p


def read_frame(s):
    length, op, rid = struct.unpack(">IBI", recvn(s, 9))
    return op, json.loads(recvn(s, length))


def app_conn(port, token):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(frame(0x01, 1, {"version": 1, "token": token}))
    op, body = read_frame(s)
    if op != 0x81:
        raise RuntimeError(f"hello refused: {body}")
    return s


def app_call(s, op, obj):
    s.sendall(frame(op, 2, obj))
    rop, body = read_frame(s)
    if rop != (op | 0x80):
        raise RuntimeError(f"app API error: {body}")
    return body


# ---- the bench protocol on every stream: first byte 'S' = sink (reply b"OK" at EOF), 'E' = echo ----
def serve_stream(s):
    try:
        mode = recvn(s, 1)
        if mode == b"S":
            while s.recv(CHUNK):
                pass
            s.sendall(b"OK")
        else:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                s.sendall(b)
        s.shutdown(socket.SHUT_WR)
    except (OSError, EOFError):
        pass
    finally:
        s.close()


def tcp_server():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)

    def loop():
        while True:
            c, _ = ls.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=serve_stream, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return ls.getsockname()[1]


def mesh_server(apps_port, token, name):
    ctl = app_conn(apps_port, token)
    app_call(ctl, 0x10, {"name": name, "type": "bench"})

    def loop():
        while True:
            try:
                s = app_conn(apps_port, token)
                app_call(s, 0x13, {"name": name})
            except (OSError, EOFError, RuntimeError):
                return  # the node went away (end of the run)
            threading.Thread(target=serve_stream, args=(s,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return ctl


def measure(connect, mb, pings):
    s = connect()
    s.sendall(b"S")
    data = b"\0" * CHUNK
    total = mb * 1024 * 1024
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        s.sendall(data)
        sent += len(data)
    s.shutdown(socket.SHUT_WR)
    assert recvn(s, 2) == b"OK"
    elapsed = time.perf_counter() - t0
    s.close()
    s = connect()
    s.sendall(b"E")
    msg = b"x" * 64
    rtts = []
    for _ in range(pings):
        t = time.perf_counter()
        s.sendall(msg)
        recvn(s, len(msg))
        rtts.append(time.perf_counter() - t)
    s.close()
    rtts.sort()
    return total / elapsed / 1e6, rtts[len(rtts) // 2] * 1e6, rtts[int(len(rtts) * 0.99)] * 1e6


def start(args, log):
    p = subprocess.Popen(SKYWIRE + args, stdout=subprocess.PIPE, stderr=open(log, "w"), env={**os.environ, "SKYWIRE_LOG": "Warning"})
    procs.append(p)
    return p


def wait_line(log, pattern, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(log) as f:
            m = re.search(pattern, f.read())
        if m:
            return m
        time.sleep(0.1)
    raise RuntimeError(f"no '{pattern}' in {log}")


def socks_connect(socks_port, port):
    s = socket.create_connection(("127.0.0.1", socks_port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"\x05\x01\x00")
    assert recvn(s, 2) == b"\x05\x00"
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", port))
    reply = recvn(s, 10)
    assert reply[1] == 0, "SOCKS connect failed"
    return s


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_ssh(tmp):
    """sshd on a loopback port with throwaway host and client keys; returns the SOCKS port of `ssh -D`."""
    os.makedirs("/run/sshd", exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{tmp}/host"], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{tmp}/client"], check=True)
    shutil.copy(f"{tmp}/client.pub", f"{tmp}/authorized_keys")
    port = free_port()
    with open(f"{tmp}/sshd_config", "w") as f:
        f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp}/host\nPidFile {tmp}/sshd.pid\n"
                f"AuthorizedKeysFile {tmp}/authorized_keys\nPermitRootLogin prohibit-password\nStrictModes no\n"
                "UsePAM no\nPasswordAuthentication no\nAllowTcpForwarding yes\n")
    procs.append(subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", f"{tmp}/sshd_config"], stderr=open(f"{tmp}/sshd.log", "w")))
    time.sleep(0.5)
    socks = free_port()
    procs.append(subprocess.Popen(["ssh", "-N", "-D", f"127.0.0.1:{socks}", "-p", str(port), "-i", f"{tmp}/client",
                                   "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={tmp}/known", "-o", "BatchMode=yes",
                                   f"{os.environ.get('USER', 'root')}@127.0.0.1"], stderr=open(f"{tmp}/ssh.log", "w")))
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", socks)).close()
            return socks
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("ssh -D did not come up: " + open(f"{tmp}/ssh.log").read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--pings", type=int, default=2000)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="meshbench-")
    rows = []
    try:
        tcp_port = tcp_server()
        rows.append(("direct loopback TCP", *measure(lambda: socket.create_connection(("127.0.0.1", tcp_port)), a.mb, a.pings)))
        socks = start_ssh(tmp)
        rows.append(("ssh -D (SOCKS5, OpenSSH)", *measure(lambda: socks_connect(socks, tcp_port), a.mb, a.pings)))

        mk = subprocess.run(SKYWIRE + ["keygen", "--out", f"{tmp}/m.json"], capture_output=True, text=True, check=True).stdout.split()[0]
        start(["manager", "--listen", "127.0.0.1:0", "--key", f"{tmp}/m.json"], f"{tmp}/m.log")
        mport = wait_line(f"{tmp}/m.log", r"listening on 127\.0\.0\.1:(\d+)").group(1)
        nodes = []
        for n in "abcd":
            start(["node", "--manager", f"{mk}@127.0.0.1:{mport}", "--listen", "127.0.0.1:0", "--apps", "127.0.0.1:0",
                   "--app-token-file", f"{tmp}/{n}.token", "--key", f"{tmp}/{n}.json"], f"{tmp}/{n}.log")
        for n in "abcd":
            m = wait_line(f"{tmp}/{n}.log", r"node ([0-9a-f]{66}) links \S+ apps 127\.0\.0\.1:(\d+)")
            nodes.append((m.group(1), int(m.group(2)), open(f"{tmp}/{n}.token").read().strip()))
        cli = SKYWIRE + ["cli", "--manager", f"{mk}@127.0.0.1:{mport}", "--key", f"{tmp}/m.json"]
        for x, y in ((0, 1), (1, 2), (2, 3)):
            subprocess.run(cli + ["link", nodes[x][0], nodes[y][0]], check=True, capture_output=True)
        deadline = time.time() + 30
        while sum(" up " in l for l in subprocess.run(cli + ["links"], capture_output=True, text=True).stdout.splitlines()) < 6:
            if time.time() > deadline:
                raise RuntimeError("links did not come up")
            time.sleep(0.3)
        servers = [mesh_server(nodes[i][1], nodes[i][2], "bench") for i in (1, 3)]

        def dial(target):
            def go():
                s = app_conn(nodes[0][1], nodes[0][2])
                app_call(s, 0x12, {"node": nodes[target][0], "app": "bench"})
                return s
            return go
        rows.append(("skywire, 1 hop (a->b)", *measure(dial(1), a.mb, a.pings)))
        rows.append(("skywire, 3 hops (a->b->c->d)", *measure(dial(3), a.mb, a.pings)))
        del servers
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{a.mb} MB one-way per stream; {a.pings} round trips of 64 bytes\n")
    print("| path | throughput MB/s | RTT p50 µs | RTT p99 µs |")
    print("|---|---:|---:|---:|")
    for name, mbps, p50, p99 in rows:
        print(f"| {name} | {mbps:.1f} | {p50:.0f} | {p99:.0f} |")
    # Machine-readable results for bench/run-all (format: bench/README.md); rows: direct, ssh -D, 1 hop, 3 hops.
    print()
    for i, hops in ((2, "1hop"), (3, "3hop")):
        print(f"RESULT name=mesh-stream-throughput-{hops}-vs-ssh-D ours={rows[i][1]:.1f} baseline={rows[1][1]:.1f} unit=MB/s better=higher")
        print(f"RESULT name=mesh-stream-rtt-p50-{hops}-vs-ssh-D ours={rows[i][2]:.0f} baseline={rows[1][2]:.0f} unit=us better=lower")


if __name__ == "__main__":
    sys.exit(main())
