#!/usr/bin/env python3
"""Mesh stream benchmark: throughput and round-trip latency of one stream through the Skywire mesh
(1 hop and 3 hops, the built `skywire` executables on loopback) beside direct loopback TCP and
OpenSSH dynamic forwarding (`ssh -D`), measured in one run on the same machine.

Usage: bench/mesh/meshbench.py [--mb 200] [--pings 2000] [--repeat 1] [--paths direct,ssh,1hop,3hop]
(run from the repository root after `dotnet build -c Release`). Talks to the nodes through the documented
app API (docs/protocol.md §7), which also shows that a non-.NET program can use it. Prints a Markdown table:
the median throughput of --repeat runs (every run listed), the CPU time the path's processes used per MB
moved (steadier than wall time when other jobs share the cores), and the round-trip percentiles.

Robustness: every socket operation has a timeout (--io-timeout), the whole run has a deadline (--deadline),
a path that fails is reported as failed and the others still run, and every process the script starts
(manager, nodes, sshd, ssh) is stopped by its pid on exit, also on SIGTERM/SIGINT/SIGHUP.
"""
import argparse, json, os, re, shutil, signal, socket, statistics, struct, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKYWIRE = ["dotnet", os.path.join(ROOT, "src/Skywire/bin/Release/net10.0/skywire.dll")]
CHUNK = 256 * 1024
procs = []
IO_TIMEOUT = 120.0


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
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(frame(0x01, 1, {"version": 1, "token": token}))
    op, body = read_frame(s)
    if op != 0x81:
        raise RuntimeError(f"hello refused: {body}")
    s.settimeout(IO_TIMEOUT)
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
        s.settimeout(IO_TIMEOUT)
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
                s.settimeout(None)  # waits for the next incoming stream, however long
                app_call(s, 0x13, {"name": name})
            except (OSError, EOFError, RuntimeError, ValueError):
                return  # the node went away (end of the run)
            threading.Thread(target=serve_stream, args=(s,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return ctl


class Deadline(BaseException):
    """Raised by the --deadline alarm; not an Exception, so a per-path handler does not swallow it."""


def cpu_seconds(root_pids):
    """User + system CPU seconds of the given processes and all their live descendants (from /proc)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append((int(d), int(fields[11]) + int(fields[12])))
            except (OSError, IndexError, ValueError):
                pass
    ticks, todo, seen = 0, list(root_pids), set()
    for pid in root_pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    while todo:
        pid = todo.pop()
        for child, t in children.get(pid, []):
            if child not in seen:
                seen.add(child)
                ticks += t
                todo.append(child)
    return ticks / os.sysconf("SC_CLK_TCK")


def throughput(connect, mb, cpu_pids):
    """One stream: mb MiB one way into a sink, timed until the sink's "OK" after the end. Returns (MB/s, CPU s)."""
    s = connect()
    s.sendall(b"S")
    data = b"\0" * CHUNK
    total = mb * 1024 * 1024
    cpu0 = cpu_seconds(cpu_pids) + time.process_time()
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        s.sendall(data)
        sent += len(data)
    s.shutdown(socket.SHUT_WR)
    if recvn(s, 2) != b"OK":
        raise RuntimeError("the sink did not confirm the end of the stream")
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(cpu_pids) + time.process_time() - cpu0
    s.close()
    return total / elapsed / 1e6, cpu


def round_trips(connect, pings):
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
    return rtts[len(rtts) // 2] * 1e6, rtts[int(len(rtts) * 0.99)] * 1e6


def parallel_throughput(connect, mb, cpu_pids, streams):
    """`streams` streams at once, mb MiB in all (mb / streams each), each into its own sink. Returns (MB/s, CPU s)."""
    if streams == 1:
        return throughput(connect, mb, cpu_pids)
    socks = [connect() for _ in range(streams)]
    per = mb * 1024 * 1024 // streams
    errors = []

    def one(s):
        try:
            s.sendall(b"S")
            data = b"\0" * CHUNK
            sent = 0
            while sent < per:
                n = min(CHUNK, per - sent)
                s.sendall(data[:n])
                sent += n
            s.shutdown(socket.SHUT_WR)
            if recvn(s, 2) != b"OK":
                raise RuntimeError("the sink did not confirm the end of the stream")
        except Exception as e:  # reported below; the other streams finish
            errors.append(e)
        finally:
            s.close()
    cpu0 = cpu_seconds(cpu_pids) + time.process_time()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=one, args=(s,)) for s in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(cpu_pids) + time.process_time() - cpu0
    if errors:
        raise errors[0]
    return per * streams / elapsed / 1e6, cpu


def measure_interleaved(paths, a):
    """Rounds interleave the paths (round 1: every path once, then round 2, ...), so a busy moment of a shared
    machine hits every path alike. Per path: the median throughput of a.repeat rounds, CPU ms per MB of the path
    (benchmark + its processes), the spread (half the range of the rounds: the error bar), RTT p50/p99."""
    results = {}
    for key, name, connect, cpu_pids in paths:
        if a.warmup_mb > 0:
            throughput(connect, a.warmup_mb, cpu_pids)
        results[key] = {"key": key, "name": name, "runs": [], "cpus": []}
    for _ in range(a.repeat):
        for key, name, connect, cpu_pids in paths:
            mbps, cpu = parallel_throughput(connect, a.mb, cpu_pids, a.streams)
            results[key]["runs"].append(mbps)
            results[key]["cpus"].append(cpu * 1000 / (a.mb * 1.048576))
    for key, name, connect, cpu_pids in paths:
        r = results[key]
        r["mbps"] = statistics.median(r["runs"])
        r["err"] = (max(r["runs"]) - min(r["runs"])) / 2
        r["cpu"] = statistics.median(r["cpus"])
        r["cpu_err"] = (max(r["cpus"]) - min(r["cpus"])) / 2
        r["p50"], r["p99"] = round_trips(connect, a.pings) if a.pings > 0 else (0.0, 0.0)
    return [results[key] for key, *_ in paths]


def spawn(args, log):
    """Starts a process whose output goes to log; it is stopped (by pid) when the script ends."""
    with open(log, "w") as out:
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             env={**os.environ, "SKYWIRE_LOG": os.environ.get("SKYWIRE_LOG", "Warning")})
    procs.append(p)
    return p


def start(args, log):
    return spawn(SKYWIRE + args, log)


def stop_all():
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except OSError:
                pass
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    procs.clear()


def wait_line(log, pattern, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(log) as f:
            m = re.search(pattern, f.read())
        if m:
            return m
        time.sleep(0.1)
    raise RuntimeError(f"no '{pattern}' in {log} after {timeout} s")


def wait_port(port, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up on port {port} within {timeout} s")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def socks_connect(socks_port, port):
    s = socket.create_connection(("127.0.0.1", socks_port), timeout=IO_TIMEOUT)
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
    spawn(["/usr/sbin/sshd", "-D", "-e", "-f", f"{tmp}/sshd_config"], f"{tmp}/sshd.log")
    wait_port(port, 20, "sshd")
    socks = free_port()
    spawn(["ssh", "-N", "-D", f"127.0.0.1:{socks}", "-p", str(port), "-i", f"{tmp}/client",
                                   "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={tmp}/known", "-o", "BatchMode=yes",
                                   f"{os.environ.get('USER', 'root')}@127.0.0.1"], f"{tmp}/ssh.log")
    wait_port(socks, 20, "ssh -D (" + open(f"{tmp}/ssh.log").read().strip() + ")")
    return socks


def main():
    global IO_TIMEOUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=200, help="MiB per throughput run (default 200)")
    ap.add_argument("--pings", type=int, default=2000, help="64-byte round trips (default 2000)")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved rounds (every path once per round); the median is reported (default 1)")
    ap.add_argument("--streams", type=int, default=1, help="parallel streams per throughput run, --mb MiB in all (default 1)")
    ap.add_argument("--paths", default="direct,ssh,1hop,3hop", help="comma-separated subset of direct,ssh,1hop,3hop")
    ap.add_argument("--warmup-mb", type=int, default=20, help="untimed MiB sent on each path first (JIT, windows; default 20)")
    ap.add_argument("--skywire", default=SKYWIRE[1], help="skywire.dll to run (default: this tree's Release build)")
    ap.add_argument("--node-arg", action="append", default=[], help="extra argument for every node (repeatable), e.g. --node-arg=--no-udp-offload")
    ap.add_argument("--manager-arg", action="append", default=[], help="extra argument for the manager (repeatable), e.g. --manager-arg=--window=268435456")
    ap.add_argument("--metering", action="store_true", help="meter the skywire routes: the manager keeps a ledger (--ledger), node a is granted funds first (docs/metering.md \"Live path\")")
    ap.add_argument("--io-timeout", type=float, default=120, help="seconds any one socket operation may block (default 120)")
    ap.add_argument("--deadline", type=int, default=1800, help="seconds the whole run may take (default 1800)")
    a = ap.parse_args()
    IO_TIMEOUT = a.io_timeout
    SKYWIRE[1] = a.skywire
    paths = set(a.paths.split(","))

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)  # unwinds through the finally below: every process is stopped

    def on_alarm(_signum, _frame):
        raise Deadline(f"the whole run took longer than --deadline {a.deadline} s")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(a.deadline)

    tmp = tempfile.mkdtemp(prefix="meshbench-")
    rows, failed = [], []

    measured = []  # (key, name, connect, cpu pids), measured together below

    try:
        tcp_port = tcp_server()
        direct = lambda: socket.create_connection(("127.0.0.1", tcp_port), timeout=IO_TIMEOUT)
        if "direct" in paths:
            measured.append(("direct", "direct loopback TCP", direct, []))
        if "ssh" in paths:
            try:
                socks = start_ssh(tmp)
                ssh_pids = [p.pid for p in procs[-2:]]
                measured.append(("ssh", "ssh -D (SOCKS5, OpenSSH)", lambda: socks_connect(socks, tcp_port), ssh_pids))
            except Exception as e:  # one broken path must not hide the others
                failed.append(("ssh", f"{type(e).__name__}: {e}"))
                print(f"meshbench: ssh failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)

        if paths & {"1hop", "3hop"}:
            mk = run(SKYWIRE + ["keygen", "--out", f"{tmp}/m.json"], check=True).stdout.split()[0]
            metering = []
            if a.metering:
                # The source needs funds before the manager (the ledger's one writer) starts.
                ak = run(SKYWIRE + ["keygen", "--out", f"{tmp}/a.json"], check=True).stdout.split()[0]
                run(SKYWIRE + ["ledger", "grant", f"{tmp}/ledger", ak, str(10**15), "--key", f"{tmp}/m.json"], check=True)
                metering = ["--ledger", f"{tmp}/ledger"]
            start(["manager", "--listen", "127.0.0.1:0", "--key", f"{tmp}/m.json", *metering, *a.manager_arg], f"{tmp}/m.log")
            mport = wait_line(f"{tmp}/m.log", r"listening on 127\.0\.0\.1:(\d+)").group(1)
            first_node = len(procs)
            nodes = []
            for n in "abcd":
                start(["node", "--manager", f"{mk}@127.0.0.1:{mport}", "--listen", "127.0.0.1:0", "--apps", "127.0.0.1:0",
                       "--app-token-file", f"{tmp}/{n}.token", "--key", f"{tmp}/{n}.json", *a.node_arg], f"{tmp}/{n}.log")
            node_pids = [p.pid for p in procs[first_node:]]
            for n in "abcd":
                m = wait_line(f"{tmp}/{n}.log", r"node ([0-9a-f]{66}) links \S+ apps 127\.0\.0\.1:(\d+)")
                nodes.append((m.group(1), int(m.group(2)), open(f"{tmp}/{n}.token").read().strip()))
            cli = SKYWIRE + ["cli", "--manager", f"{mk}@127.0.0.1:{mport}", "--key", f"{tmp}/m.json"]
            for x, y in ((0, 1), (1, 2), (2, 3)):
                run(cli + ["link", nodes[x][0], nodes[y][0]], check=True)
            deadline = time.time() + 30
            while sum(" up " in l for l in run(cli + ["links"]).stdout.splitlines()) < 6:
                if time.time() > deadline:
                    raise RuntimeError("links did not come up within 30 s")
                time.sleep(0.3)
            servers = [mesh_server(nodes[i][1], nodes[i][2], "bench") for i in (1, 3)]

            def dial(target):
                def go():
                    s = app_conn(nodes[0][1], nodes[0][2])
                    app_call(s, 0x12, {"node": nodes[target][0], "app": "bench"})
                    return s
                return go
            # CPU of the nodes on the path: a and b for one hop, a..d for three.
            if "1hop" in paths:
                measured.append(("1hop", "skywire, 1 hop (a->b)" + (" metered" if a.metering else ""), dial(1), node_pids[:2]))
            if "3hop" in paths:
                measured.append(("3hop", "skywire, 3 hops (a->b->c->d)" + (" metered" if a.metering else ""), dial(3), node_pids))
        rows.extend(measure_interleaved(measured, a))
    except (Exception, Deadline) as e:
        failed.append(("run", f"{type(e).__name__}: {e}"))
        print(f"meshbench: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    finally:
        signal.alarm(0)
        stop_all()
        if os.environ.get("MESHBENCH_KEEP"):
            print(f"meshbench: kept {tmp} (MESHBENCH_KEEP)", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{a.mb} MiB one way per run over {a.streams} stream(s), median of {a.repeat} interleaved round(s) (± half the "
          f"range); {a.pings} round trips of 64 bytes; CPU = user+system time of the benchmark and the path's processes per MB; "
          f"load average at the end {' '.join(open('/proc/loadavg').read().split()[:3])}\n")
    print("| path | throughput MB/s (median) | all rounds | CPU ms/MB | RTT p50 µs | RTT p99 µs |")
    print("|---|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['mbps']:.1f} ± {r['err']:.1f} | {' '.join(f'{x:.0f}' for x in r['runs'])} | "
              f"{r['cpu']:.2f} ± {r['cpu_err']:.2f} | {r['p50']:.0f} | {r['p99']:.0f} |")
    for name, why in failed:
        print(f"| {name} | failed: {why} | | | | |")
    # Machine-readable results for bench/run-all (format: bench/README.md), only for paths measured in this run.
    print()
    by = {r["key"]: r for r in rows}
    ssh, direct = by.get("ssh"), by.get("direct")
    tag = "" if a.streams == 1 else f"-{a.streams}streams"
    for hops in ("1hop", "3hop"):
        r = by.get(hops)
        if r and ssh:
            print(f"RESULT name=mesh-stream-throughput-{hops}{tag}-vs-ssh-D ours={r['mbps']:.1f} baseline={ssh['mbps']:.1f} unit=MB/s better=higher "
                  f"ours_err={r['err']:.1f} baseline_err={ssh['err']:.1f}")
            if a.pings > 0:
                print(f"RESULT name=mesh-stream-rtt-p50-{hops}-vs-ssh-D ours={r['p50']:.0f} baseline={ssh['p50']:.0f} unit=us better=lower")
            print(f"RESULT name=mesh-stream-cpu-{hops}{tag}-vs-ssh-D ours={r['cpu']:.2f} baseline={ssh['cpu']:.2f} unit=ms/MB better=lower "
                  f"ours_err={r['cpu_err']:.2f} baseline_err={ssh['cpu_err']:.2f}")
        if r and direct and r["cpu"] > 0:
            # MB moved per CPU-second, ours against direct loopback TCP (issue 19.2: >= 0.6).
            print(f"RESULT name=mesh-stream-mb-per-cpu-s-{hops}{tag}-vs-direct ours={1000 / r['cpu']:.0f} baseline={1000 / direct['cpu']:.0f} "
                  f"unit=MB/CPU-s better=higher")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
