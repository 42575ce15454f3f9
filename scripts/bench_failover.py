#!/usr/bin/env python3
"""The failover timeline of masters on ZooKeeper, with real agents: a ZooKeeper server
(Debian's package) on a loopback port, three `agora master --zk` and N `agora agent --master
zk://…`, and a Mesos v1 framework of this script's own (failover timeout one hour). Each round
kills the leader with SIGKILL and measures, from the kill:

- elected: a standby answers /master/state itself (it leads and serves);
- agents: the new leader lists every agent active again (re-registered with their tasks);
- subscribed: the framework, re-subscribing with its id as soon as a leader serves, has
  SUBSCRIBED; the built-in marathon and chronos frameworks are active again;
- offer: the framework's first OFFERS event from the new leader.

The killed master is started again as a standby before the next round.

    cargo build --release -p agora
    python3 scripts/bench_failover.py target/release/agora --agents 5 --rounds 5 \\
        --session-timeout 10s
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import tempfile
import threading
import time

from agora_up import start_role
from zookeeper import start_zookeeper



def get(port, path, timeout=2.0):
    """(status, JSON or None) of a GET, without following a standby's redirect."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"chunked" in head.lower():
        decoded, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            decoded, rest = decoded + rest[:size], rest[size + 2:]
        body = decoded
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, None


def leads(port):
    try:
        return get(port, "/master/state")[0] == 200
    except OSError:
        return False


class Framework:
    """A v1 scheduler on a raw socket: SUBSCRIBE, then read RecordIO events."""

    def __init__(self):
        self.id = None
        self.conn = None

    def subscribe(self, port):
        info = {"user": "root", "name": "failover-bench", "failover_timeout": 3600.0}
        if self.id:
            info["id"] = {"value": self.id}
        body = json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}).encode()
        if self.id:
            body = json.dumps({"type": "SUBSCRIBE", "framework_id": {"value": self.id},
                               "subscribe": {"framework_info": info}}).encode()
        self.conn = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.conn.sendall(b"POST /api/v1/scheduler HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\nAccept: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.buffer = b""
        self.wait_for(b'"SUBSCRIBED"')
        if not self.id:
            match = re.search(rb'"framework_id":\{"value":"([^"]+)"', self.buffer)
            self.id = match.group(1).decode()

    def wait_for(self, needle):
        while needle not in self.buffer:
            chunk = self.conn.recv(1 << 20)
            if not chunk:
                raise RuntimeError("the stream ended before %r" % needle)
            self.buffer += chunk
        self.buffer = self.buffer[self.buffer.index(needle) + len(needle):]

    def close(self):
        if self.conn:
            self.conn.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--session-timeout", default="10s")
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    base = tempfile.mkdtemp(dir=args.dir)
    zookeeper, zk_port = start_zookeeper(base, tick_ms=500)
    zk = "zk://127.0.0.1:%d/agora" % zk_port
    processes = []
    masters = {}

    def start_master(index):
        proc, port = start_role(args.binary, [
            "master", "--port", "0", "--data-dir", os.path.join(base, "m%d" % index),
            "--zk", zk, "--zk-session-timeout", args.session_timeout])
        masters[index] = (proc, port)
        processes.append(proc)

    try:
        for index in range(3):
            start_master(index)
            if index == 0:
                deadline = time.time() + 60
                while not leads(masters[0][1]):
                    assert time.time() < deadline, "no leader"
                    time.sleep(0.05)
        for index in range(args.agents):
            proc, _ = start_role(args.binary, [
                "agent", "--master", zk, "--port", "0",
                "--work-dir", os.path.join(base, "a%d" % index),
                "--resources", "cpus:2;mem:1024;ports:[%d-%d]" % (
                    34000 + index * 10, 34009 + index * 10),
                "--proxy-http-port", "0", "--dns-port", "0", "--proxy-bind", "off"])
            processes.append(proc)
        framework = Framework()
        leader = 0
        deadline = time.time() + 60
        while True:
            _, state = get(masters[leader][1], "/master/state")
            if state and state["activated_slaves"] == args.agents and {
                    "marathon", "chronos"} <= {f["name"] for f in state["frameworks"]}:
                break
            assert time.time() < deadline, "the cluster did not come up"
            time.sleep(0.1)
        framework.subscribe(masters[leader][1])
        framework.wait_for(b'"OFFERS"')
        timeline = {key: [] for key in ("elected", "agents", "subscribed", "builtin", "offer")}
        for round_ in range(args.rounds):
            killed = leader
            masters[killed][0].kill()
            masters[killed][0].wait()
            t0 = time.perf_counter()
            framework.close()
            standbys = [i for i in masters if i != killed]
            new = None
            while new is None:
                for index in standbys:
                    if leads(masters[index][1]):
                        new = index
                        break
                time.sleep(0.005)
            elected = time.perf_counter() - t0
            port = masters[new][1]
            framework.subscribe(port)
            subscribed = time.perf_counter() - t0
            offers = threading.Thread(target=framework.wait_for, args=(b'"OFFERS"',))
            offers.start()
            agents = builtin = None
            while agents is None or builtin is None:
                _, state = get(port, "/master/state")
                now = time.perf_counter() - t0
                if agents is None and state["activated_slaves"] == args.agents:
                    agents = now
                active = {f["name"] for f in state["frameworks"] if f.get("active")}
                if builtin is None and {"marathon", "chronos"} <= active:
                    builtin = now
                time.sleep(0.005)
            offers.join(60)
            offer = time.perf_counter() - t0
            for key, value in (("elected", elected), ("agents", agents),
                               ("subscribed", subscribed), ("builtin", builtin),
                               ("offer", offer)):
                timeline[key].append(value)
            print("round %d: elected %.2fs, %d agents back %.2fs, framework subscribed %.2fs, "
                  "marathon+chronos %.2fs, first offer %.2fs" % (
                      round_ + 1, elected, args.agents, agents, subscribed, builtin, offer),
                  flush=True)
            start_master(killed)
            leader = new
            time.sleep(1)
        print("\nmedian of %d rounds (session timeout %s, %d agents):" % (
            args.rounds, args.session_timeout, args.agents))
        for key, values in timeline.items():
            print("  %-10s %.2fs (min %.2fs, max %.2fs)" % (
                key, statistics.median(values), min(values), max(values)))
    finally:
        for proc in processes:
            proc.kill()
        zookeeper.kill()
        zookeeper.wait()
        for proc in processes:
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
