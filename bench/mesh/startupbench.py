#!/usr/bin/env python3
"""Node start-up benchmark (issue 19 item 7): time from `skywire node` exec until it is registered with its manager
and until its first link is up, beside OpenSSH from `ssh -N -D` exec until a SOCKS CONNECT through it works (the
time to a usable authenticated tunnel), measured in one run on the same machine.

Usage: bench/mesh/startupbench.py [--rounds 7] (run from the repository root after `dotnet build -c Release`).
Layout: a `skywire manager --auto-link` and one node already running; each round starts a second node (same key,
fresh ports), waits for "Registered with the manager" and "Link to ... is up" in its log (polled every 5 ms), and
stops it; ssh's rounds start `ssh -N -D` against an sshd already running. Medians of the rounds, interleaved; the
RESULT lines compare the node's exec-to-link-up and exec-to-registered with ssh's exec-to-tunnel, and the runtime's
own start-up (`skywire --version`) is printed beside them: what of the start-up is .NET's and what is the node's.
Every process the script starts is stopped by its pid on exit.
"""
import argparse, os, signal, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import meshbench as mb  # noqa: E402  (helpers: start, spawn, wait_line, start_ssh, socks_connect, run)

POLL = 0.005


def wait_in_log(log, needle, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log) as f:
            if needle in f.read():
                return time.monotonic()
        time.sleep(POLL)
    raise RuntimeError(f"no '{needle}' in {log} within {timeout} s")


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)
    mb.procs.remove(p)


def node_round(tmp, manager, i):
    log = f"{tmp}/a{i}.log"
    t0 = time.monotonic()
    with open(log, "w") as out:
        p = subprocess.Popen(mb.SKYWIRE + ["node", "--manager", manager, "--listen", "127.0.0.1:0", "--apps", "127.0.0.1:0",
                                           "--app-token-file", f"{tmp}/a.token", "--key", f"{tmp}/a.json"],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "SKYWIRE_LOG": "Information"})
    mb.procs.append(p)
    registered = wait_in_log(log, "Registered with the manager") - t0
    link_up = wait_in_log(log, " is up") - t0
    stop(p)
    return registered, link_up


def ssh_round(tmp, sshd_port, target, i):
    socks = mb.free_port()
    t0 = time.monotonic()
    p = mb.spawn(["ssh", "-N", "-D", f"127.0.0.1:{socks}", "-p", str(sshd_port), "-i", f"{tmp}/client",
                  "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={tmp}/known", "-o", "BatchMode=yes",
                  f"{os.environ.get('USER', 'root')}@127.0.0.1"], f"{tmp}/ssh{i}.log")
    deadline = t0 + 30
    while True:
        try:
            mb.socks_connect(socks, target).close()
            break
        except (OSError, AssertionError):
            if time.monotonic() > deadline:
                raise RuntimeError("ssh -D did not carry a CONNECT within 30 s: " + open(f"{tmp}/ssh{i}.log").read())
            time.sleep(POLL)
    elapsed = time.monotonic() - t0
    stop(p)
    return elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7, help="rounds of each (default 7); medians are reported")
    a = ap.parse_args()
    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)  # unwinds through the finally below: every process is stopped
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    tmp = tempfile.mkdtemp(prefix="startupbench-")
    try:
        print(f"load before the run: {open('/proc/loadavg').read().split()[:3]}", flush=True)
        version = []
        for _ in range(a.rounds):
            t0 = time.monotonic()
            mb.run(mb.SKYWIRE + ["--version"], check=True)
            version.append(time.monotonic() - t0)

        mk = mb.run(mb.SKYWIRE + ["keygen", "--out", f"{tmp}/m.json"], check=True).stdout.split()[0]
        mb.run(mb.SKYWIRE + ["keygen", "--out", f"{tmp}/a.json"], check=True)
        mb.start(["manager", "--listen", "127.0.0.1:0", "--key", f"{tmp}/m.json", "--auto-link"], f"{tmp}/m.log")
        mport = mb.wait_line(f"{tmp}/m.log", r"listening on 127\.0\.0\.1:(\d+)").group(1)
        manager = f"{mk}@127.0.0.1:{mport}"
        mb.start(["node", "--manager", manager, "--listen", "127.0.0.1:0", "--apps", "127.0.0.1:0",
                  "--app-token-file", f"{tmp}/b.token", "--key", f"{tmp}/b.json"], f"{tmp}/b.log")
        mb.wait_line(f"{tmp}/b.log", r"node ([0-9a-f]{66}) links")

        target = mb.tcp_server()
        mb.start_ssh(tmp)  # sshd, and one `ssh -D` that warms it up
        sshd_port = int(open(f"{tmp}/sshd_config").read().split()[1])

        registered, link_up, ssh = [], [], []
        for i in range(a.rounds):  # interleaved: one of each per round
            r, u = node_round(tmp, manager, i)
            registered.append(r)
            link_up.append(u)
            ssh.append(ssh_round(tmp, sshd_port, target, i))
        med = statistics.median
        print()
        print(f"{a.rounds} rounds each, interleaved; median (min-max) in ms; load at the end {open('/proc/loadavg').read().split()[:3]}")
        print()
        print("| start-up | median ms | min | max |")
        print("|---|---:|---:|---:|")
        for name, xs in (("`skywire --version` (the .NET runtime's start alone)", version),
                         ("`skywire node` exec -> registered with the manager", registered),
                         ("`skywire node` exec -> first link up (auto-link)", link_up),
                         ("`ssh -N -D` exec -> a SOCKS CONNECT through it works", ssh)):
            print(f"| {name} | {med(xs) * 1000:.0f} | {min(xs) * 1000:.0f} | {max(xs) * 1000:.0f} |")
        print()
        print(f"RESULT name=node-startup-link-up-vs-ssh-D ours={med(link_up) * 1000:.0f} baseline={med(ssh) * 1000:.0f} unit=ms better=lower")
        print(f"RESULT name=node-startup-registered-vs-ssh-D ours={med(registered) * 1000:.0f} baseline={med(ssh) * 1000:.0f} unit=ms better=lower")
        print(f"RESULT name=skywire-runtime-start-vs-ssh-D ours={med(version) * 1000:.0f} baseline={med(ssh) * 1000:.0f} unit=ms better=lower")
    finally:
        mb.stop_all()


if __name__ == "__main__":
    main()
