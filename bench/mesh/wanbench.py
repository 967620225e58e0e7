#!/usr/bin/env python3
"""WAN benchmark (issue 13.2): one stream through the Skywire mesh over impaired paths (1 and 3 hops, 20/100/300 ms
round trip, 0/0.1/1/5 % random loss), beside Linux TCP with BBR (and CUBIC) over the same impairments, measured in
the same run on the same machine.

Usage: bench/mesh/wanbench.py [--mb 16] [--hops 1,3] [--rtts 20,100,300] [--losses 0,0.1,1,5] [--no-tcp]
(run from the repository root after `dotnet build -c Release`; needs root for the TCP baseline's namespaces).

How the paths are made (the machines have no netem):
- Skywire: the built `skywire` executables on loopback, nodes a-b(-c-d). In front of every node but a sits a TestKit
  UdpFaultRelay (`Skywire.Benchmarks.dll impair`, one process for all relays), and the node tells the manager the
  relay's address (`node --advertise`), so every link crosses exactly one relay. The cell's round trip and loss are
  split over the hops: each relay delays each direction by RTT / (2 x hops) and drops with 1 - (1 - p)^(1 / hops),
  so one way end to end loses p (in both directions: data and acknowledgements alike).
- Linux TCP: two network namespaces joined by two TUN devices, with this script as the router between them (read a
  packet from one TUN, drop it with probability p, write it to the other after RTT / 2): the same delay and loss model
  as the relay, per direction, end to end. The sender sets TCP_CONGESTION (bbr, cubic). The router is Python: at
  loss-free, low-RTT cells its packet rate, not TCP, may be the limit (the table shows the router's CPU share).
Each cell moves --mb MiB one way into a sink and times it until the sink confirms the end (byte count checked).
Prints a Markdown table, then RESULT lines (bench/README.md).
"""
import argparse, fcntl, heapq, os, random, select, socket, struct, subprocess, sys, tempfile, threading, time, shutil, signal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import meshbench as mb  # noqa: E402  (app API, process handling, sink protocol)

ROOT = mb.ROOT
BENCH_DLL = os.path.join(ROOT, "bench/Skywire.Benchmarks/bin/Release/net10.0/Skywire.Benchmarks.dll")


# ---- the relay process (TestKit UdpFaultRelay behind a line protocol, see ImpairRelayTool.cs) ----
class Relays:
    def __init__(self):
        self.p = subprocess.Popen(["dotnet", BENCH_DLL, "impair"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        mb.procs.append(self.p)

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        answer = self.p.stdout.readline().strip()
        if not answer or answer.startswith("error"):
            raise RuntimeError(f"impair: '{line}' -> '{answer}'")
        return answer

    def new(self):
        _, rid, ep = self.cmd("new").split()
        return int(rid), ep


def hop_faults(rtt_ms, loss_pct, hops, seed):
    p = loss_pct / 100.0
    per_hop_loss = 1 - (1 - p) ** (1.0 / hops)
    return f"delay_ms={rtt_ms / (2.0 * hops):.3f} loss={per_hop_loss:.6f} seed={seed}"


def sink_stream(s, total):
    """Sends total bytes with the meshbench sink protocol; returns seconds until the sink's OK."""
    s.sendall(b"S")
    data = b"\0" * mb.CHUNK
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        n = min(len(data), total - sent)
        s.sendall(data[:n])
        sent += n
    s.shutdown(socket.SHUT_WR)
    if mb.recvn(s, 2) != b"OK":
        raise RuntimeError("the sink did not confirm the end of the stream")
    elapsed = time.perf_counter() - t0
    s.close()
    return elapsed


def skywire_mesh(tmp, hops, node_args):
    """Manager, nodes a..(hops), relays in front of every node but a; links a->b->...; returns (dial, relays, relay ids)."""
    names = "abcd"[: hops + 1]
    relays = Relays()
    ids = {}
    mk = mb.run(mb.SKYWIRE + ["keygen", "--out", f"{tmp}/m.json"], check=True).stdout.split()[0]
    mb.start(["manager", "--listen", "127.0.0.1:0", "--key", f"{tmp}/m.json"], f"{tmp}/m.log")
    mport = mb.wait_line(f"{tmp}/m.log", r"listening on 127\.0\.0\.1:(\d+)").group(1)
    for n in names:
        extra = []
        if n != "a":
            rid, ep = relays.new()
            ids[n] = rid
            extra = ["--advertise", ep]
        mb.start(["node", "--manager", f"{mk}@127.0.0.1:{mport}", "--listen", "127.0.0.1:0", "--apps", "127.0.0.1:0",
                  "--app-token-file", f"{tmp}/{n}.token", "--key", f"{tmp}/{n}.json", *extra, *node_args], f"{tmp}/{n}.log")
    nodes = []
    for n in names:
        m = mb.wait_line(f"{tmp}/{n}.log", r"node ([0-9a-f]{66}) links (\S+) apps 127\.0\.0\.1:(\d+)")
        nodes.append((m.group(1), int(m.group(3)), open(f"{tmp}/{n}.token").read().strip()))
        if n != "a":
            relays.cmd(f"target {ids[n]} {m.group(2)}")
    cli = mb.SKYWIRE + ["cli", "--manager", f"{mk}@127.0.0.1:{mport}", "--key", f"{tmp}/m.json"]
    for x in range(hops):
        mb.run(cli + ["link", nodes[x][0], nodes[x + 1][0]], check=True)
    deadline = time.time() + 60
    while sum(" up " in line for line in mb.run(cli + ["links"]).stdout.splitlines()) < 2 * hops:
        if time.time() > deadline:
            raise RuntimeError("links did not come up within 60 s")
        time.sleep(0.3)
    server = mb.mesh_server(nodes[-1][1], nodes[-1][2], "bench")

    def dial():
        s = mb.app_conn(nodes[0][1], nodes[0][2])
        mb.app_call(s, 0x12, {"node": nodes[-1][0], "app": "bench"})
        return s
    return dial, relays, ids, server


# ---- Linux TCP behind a TUN impairment router between two namespaces ----
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


class TunRouter:
    """Two namespaces, C (10.213.1.1 on tun C) and S (10.213.2.1 on tun S); this process forwards between the TUNs
    with a delay and a drop probability per direction (settable between cells)."""

    def __init__(self):
        tag = f"wanb{os.getpid()}"
        self.ns = (f"{tag}c", f"{tag}s")
        self.fds = []
        for i, (ns, me, peer) in enumerate(((self.ns[0], "10.213.1.1", "10.213.2.0/24"), (self.ns[1], "10.213.2.1", "10.213.1.0/24"))):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            dev = f"{tag}t{i}"
            self.fds.append(open_tun(dev))
            for args in (["link", "set", dev, "netns", ns], ["-n", ns, "link", "set", "lo", "up"], ["-n", ns, "addr", "add", me + "/24", "dev", dev],
                         ["-n", ns, "link", "set", dev, "up", "mtu", "1500"], ["-n", ns, "route", "add", peer, "dev", dev]):
                subprocess.run(["ip", *args], check=True)
        self.delay, self.loss, self.dup, self.reorder, self.window, self.random = 0.0, 0.0, 0.0, 0.0, 8, random.Random(1)
        self.forwarded = 0
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def set(self, rtt_ms, loss_pct, seed, dup_pct=0.0, reorder_pct=0.0, window=8):
        """As FaultOptions: drop, then duplicate, then hold a packet back until up to `window` later ones passed
        (at most 5 ms), then delay."""
        self.delay, self.loss, self.random = rtt_ms / 2000.0, loss_pct / 100.0, random.Random(seed)
        self.dup, self.reorder, self.window = dup_pct / 100.0, reorder_pct / 100.0, window

    def loop(self):
        due = []  # (time, seq, out fd, packet)
        seq = 0
        count = {fd: 0 for fd in self.fds}  # packets seen per outgoing TUN
        held = {fd: [] for fd in self.fds}  # (release after count, held at, packet)
        while not self.stop:
            timeout = max(0.0, due[0][0] - time.monotonic()) if due else (0.005 if any(held.values()) else 0.2)
            readable, _, _ = select.select(self.fds, [], [], timeout)
            now = time.monotonic()
            for fd in readable:
                out = self.fds[1] if fd == self.fds[0] else self.fds[0]
                for _ in range(64):
                    try:
                        packet = os.read(fd, 65535)
                    except BlockingIOError:
                        break
                    count[out] += 1
                    for h in [h for h in held[out] if h[0] <= count[out]]:
                        held[out].remove(h)
                        seq += 1
                        heapq.heappush(due, (now + self.delay, seq, out, h[2]))
                    if self.loss > 0 and self.random.random() < self.loss:
                        continue
                    copies = 2 if self.dup > 0 and self.random.random() < self.dup else 1
                    for _ in range(copies):
                        if self.reorder > 0 and self.random.random() < self.reorder:
                            held[out].append((count[out] + self.random.randint(1, self.window), now, packet))
                            continue
                        seq += 1
                        heapq.heappush(due, (now + self.delay, seq, out, packet))
            for out in self.fds:  # nothing is held longer than 5 ms (FaultInjector's HoldLimit)
                for h in [h for h in held[out] if now - h[1] >= 0.005]:
                    held[out].remove(h)
                    seq += 1
                    heapq.heappush(due, (now + self.delay, seq, out, h[2]))
            while due and due[0][0] <= time.monotonic():
                _, _, out, packet = heapq.heappop(due)
                try:
                    os.write(out, packet)
                    self.forwarded += 1
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.thread.join(5)
        for fd in self.fds:
            os.close(fd)
        for ns in self.ns:
            subprocess.run(["ip", "netns", "del", ns], check=False)

    def tcp_sink(self):
        """A sink in namespace S (this script in --sink mode); returns its port."""
        p = subprocess.Popen(["ip", "netns", "exec", self.ns[1], sys.executable, os.path.abspath(__file__), "--sink", "10.213.2.1"],
                             stdout=subprocess.PIPE, text=True)
        mb.procs.append(p)
        return int(p.stdout.readline())

    def tcp_send(self, port, total, cc, timeout):
        r = subprocess.run(["ip", "netns", "exec", self.ns[0], sys.executable, os.path.abspath(__file__), "--send", f"10.213.2.1:{port}",
                            str(total), cc], capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"tcp send ({cc}): {r.stderr.strip()}")
        return float(r.stdout)


def sink_main(address):
    ls = socket.socket()
    ls.bind((address, 0))
    ls.listen(16)
    print(ls.getsockname()[1], flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=mb.serve_stream, args=(c,), daemon=True).start()


def send_main(target, total, cc):
    host, port = target.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
    s.settimeout(mb.IO_TIMEOUT)
    s.connect((host, int(port)))
    print(f"{sink_stream(s, total):.6f}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--sink":
        return sink_main(sys.argv[2])
    if len(sys.argv) == 5 and sys.argv[1] == "--send":
        return send_main(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=16, help="MiB per cell (default 16)")
    ap.add_argument("--hops", default="1,3")
    ap.add_argument("--rtts", default="20,100,300", help="round trips in ms")
    ap.add_argument("--losses", default="0,0.1,1,5", help="one-way loss in per cent")
    ap.add_argument("--tcp", default="bbr", help="Linux TCP congestion controls to compare ('' for none)")
    ap.add_argument("--issue-path", action=argparse.BooleanOptionalAction, default=True,
                    help="also the path of issue 13's report: 1 hop, 5 ms each way, 5 %% loss, 2 %% duplicates, 25 %% reordered over 8")
    ap.add_argument("--node-arg", action="append", default=[], help="extra argument for every node (repeatable)")
    ap.add_argument("--warmup-mb", type=float, default=8, help="untimed MiB over each fresh mesh on the first cell's path (JIT, session; default 8)")
    ap.add_argument("--cell-timeout", type=float, default=240, help="seconds one cell may take (default 240)")
    ap.add_argument("--deadline", type=int, default=3600)
    a = ap.parse_args()
    mb.IO_TIMEOUT = a.cell_timeout
    hops_list = [int(h) for h in a.hops.split(",") if h]
    # Highest round trip first: the mesh keeps one session per hop count across cells (as an app would), and BBR's
    # min-RTT filter (10 s) would read a longer path as a queue after a shorter one; a shorter one it learns at once.
    rtts = sorted((int(r) for r in a.rtts.split(",") if r), reverse=True)
    losses = [float(x) for x in a.losses.split(",") if x]
    ccs = [c for c in a.tcp.split(",") if c]
    total = int(a.mb * 1024 * 1024)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    def on_alarm(_signum, _frame):
        raise mb.Deadline(f"the whole run took longer than --deadline {a.deadline} s")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(a.deadline)

    results = {}  # (path, rtt, loss) -> MB/s or None
    failed = []
    tmp = tempfile.mkdtemp(prefix="wanbench-")
    router = None

    def cell(key, fn):
        try:
            results[key] = total / fn() / 1e6
            print(f"wanbench: {key[0]} rtt {key[1]} ms loss {key[2]} %: {results[key]:.2f} MB/s", file=sys.stderr, flush=True)
        except Exception as e:  # one broken cell must not hide the others
            results[key] = None
            failed.append((key, f"{type(e).__name__}: {e}"))
            print(f"wanbench: {key} failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)

    try:
        if ccs:
            try:
                router = TunRouter()
                port = router.tcp_sink()
                for rtt in rtts:
                    for loss in losses:
                        router.set(rtt, loss, seed=int(rtt * 100 + loss * 10))
                        for cc in ccs:
                            cell((f"tcp-{cc}", rtt, loss), lambda cc=cc: router.tcp_send(port, total, cc, a.cell_timeout))
                if a.issue_path:
                    router.set(10, 5, seed=13, dup_pct=2, reorder_pct=25, window=8)
                    for cc in ccs:
                        cell((f"tcp-{cc}", 10, "issue"), lambda cc=cc: router.tcp_send(port, total, cc, a.cell_timeout))
            except (OSError, subprocess.CalledProcessError) as e:
                failed.append((("tcp", 0, 0), f"no TCP baseline (needs root, /dev/net/tun, ip netns): {e}"))
            finally:
                if router is not None:
                    router.close()
                    router = None
        for hops in hops_list:
            os.makedirs(f"{tmp}/{hops}")
            dial, relays, ids, _server = skywire_mesh(f"{tmp}/{hops}", hops, a.node_arg)
            warm = a.warmup_mb > 0
            for rtt in rtts:
                for loss in losses:
                    for rid in ids.values():
                        relays.cmd(f"faults {rid} {hop_faults(rtt, loss, hops, seed=rid * 1000 + rtt + int(loss * 10))}")
                    if warm:  # on the first cell's path: a warm-up on a shorter one would leave BBR a stale min RTT
                        sink_stream(dial(), int(a.warmup_mb * 1024 * 1024))
                        warm = False
                    cell((f"skywire-{hops}hop", rtt, loss), lambda: sink_stream(dial(), total))
            if a.issue_path and hops == 1:
                for rid in ids.values():
                    relays.cmd(f"faults {rid} delay_ms=5 loss=0.05 dup=0.02 reorder=0.25 reorder_window=8 seed=13")
                cell((f"skywire-{hops}hop", 10, "issue"), lambda: sink_stream(dial(), total))
            mb.stop_all()
    except (Exception, mb.Deadline) as e:
        failed.append((("run", 0, 0), f"{type(e).__name__}: {e}"))
        print(f"wanbench: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    finally:
        signal.alarm(0)
        if router is not None:
            router.close()
        mb.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    paths = [f"skywire-{h}hop" for h in hops_list] + [f"tcp-{c}" for c in ccs]
    fmt = lambda v: "failed" if v is None else f"{v:.2f}"
    print(f"\n{a.mb:g} MiB one way per cell, MB/s (10^6 bytes); loss is one way, end to end, in both directions\n")
    print("| RTT | loss | " + " | ".join(paths) + " |")
    print("|---:|---:|" + "---:|" * len(paths))
    for rtt in rtts:
        for loss in losses:
            print(f"| {rtt} ms | {loss:g} % | " + " | ".join(fmt(results.get((p, rtt, loss))) for p in paths) + " |")
    if a.issue_path:
        print("| 10 ms | issue 13 path (5 % loss, 2 % dup, 25 % reordered over 8) | " + " | ".join(
            fmt(results.get((p, 10, "issue"))) if p.startswith("tcp") or p == "skywire-1hop" else "" for p in paths) + " |")
    for key, why in failed:
        print(f"- {key}: {why}")
    print()
    for hops in hops_list:
        ours = f"skywire-{hops}hop"
        for rtt in rtts:
            for loss in losses:
                o, b = results.get((ours, rtt, loss)), results.get(("tcp-bbr", rtt, loss))
                if o is not None and b is not None:
                    print(f"RESULT name=wan-{hops}hop-rtt{rtt}-loss{loss:g}-vs-tcp-bbr ours={o:.2f} baseline={b:.2f} unit=MB/s better=higher")
        o, b = results.get((ours, 10, "issue")), results.get(("tcp-bbr", 10, "issue"))
        if o is not None and b is not None:
            print(f"RESULT name=wan-{hops}hop-issue13-path-vs-tcp-bbr ours={o:.2f} baseline={b:.2f} unit=MB/s better=higher")
        o, b = results.get((ours, 100, 1.0)), results.get((ours, 100, 0.0))
        if o is not None and b is not None:
            print(f"RESULT name=wan-{hops}hop-rtt100-loss1-vs-lossfree ours={o:.2f} baseline={b:.2f} unit=MB/s better=higher")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
