#!/usr/bin/env python3
"""What the registrar changes: the master, services and jobs writing their stores off their
locks, in batches, answering once committed — against a build that wrote each record
synchronously under the lock. Two workloads, each from C concurrent clients on kept-alive
connections, against a fresh `agora master` (no agent) per run:

- apps: POST /v2/apps of N apps of 0 instances (each answered once its app is durable);
- frameworks: N Mesos v1 SUBSCRIBE calls (each a registry write, answered with SUBSCRIBED once
  durable), each framework's stream closed after SUBSCRIBED.

The two builds run in turns, round after round, so the machine's drift falls on both; each
figure is the median of its rounds. With --zk, the second build also runs as an HA master
whose state is in a ZooKeeper server (Debian's package) this script starts on a loopback port.

    cargo build --release -p agora
    python3 scripts/bench_registrar.py BEFORE_BIN AFTER_BIN --apps 2000 --frameworks 500 \\
        --clients 16 --rounds 3 [--zk] [--dir /var/tmp]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time

from zookeeper import start_zookeeper

READY = re.compile(r"listening on https?://([0-9.]+):(\d+)")


class Master:
    def __init__(self, binary, base, zk=None):
        self.dir = tempfile.mkdtemp(dir=base)
        args = [binary, "master", "--port", "0", "--bind", "127.0.0.1",
                "--data-dir", os.path.join(self.dir, "data")]
        if zk:
            args += ["--zk", zk]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
        env["AGORA_LOG"] = "error"
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env, text=True)
        line = self.proc.stdout.readline()
        match = READY.search(line)
        if not match:
            raise RuntimeError("no listening line: %r" % line)
        self.port = int(match.group(2))
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                status, _ = request(self.port, "GET", "/master/state")
                if status == 200 and self.frameworks_ready():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the master did not lead")

    def frameworks_ready(self):
        _, state = request(self.port, "GET", "/master/state")
        names = {f["name"] for f in state.get("frameworks", [])}
        return {"marathon", "chronos"} <= names

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def request(port, method, path, body=None, connection=None):
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request(method, path, None if body is None else json.dumps(body),
                       {"Content-Type": "application/json", "Accept": "application/json"})
    response = connection.getresponse()
    data = response.read()
    if own:
        connection.close()
    try:
        return response.status, (json.loads(data) if data else None)
    except ValueError:
        return response.status, data.decode(errors="replace")


def in_parallel(clients, count, work):
    """Runs work(client, index, connection) for count indexes over `clients` threads; seconds."""
    errors = []
    per_client = [range(c, count, clients) for c in range(clients)]

    def run(client, indexes, port):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for index in indexes:
            try:
                work(client, index, connection, port)
            except Exception as error:  # noqa: BLE001 - reported after the run
                errors.append(repr(error))
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.close()

    return run, per_client, errors


def timed(clients, count, port, work):
    run, per_client, errors = in_parallel(clients, count, work)
    threads = [threading.Thread(target=run, args=(c, per_client[c], port)) for c in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError("%d errors, first: %s" % (len(errors), errors[0]))
    return elapsed


def create_app(client, index, connection, port):
    status, body = request(port, "POST", "/v2/apps",
                           {"id": "/bench/c%d/a%d" % (client, index), "cmd": "sleep 1000",
                            "instances": 0, "cpus": 0.01, "mem": 1}, connection)
    if status != 201:
        raise RuntimeError("POST /v2/apps: %s %s" % (status, body))


def subscribe(client, index, _connection, port):
    conn = socket.create_connection(("127.0.0.1", port), timeout=60)
    body = json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": "root", "name": "bench-%d" % index}}}).encode()
    conn.sendall(b"POST /api/v1/scheduler HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 b"\r\nAccept: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    seen = b""
    while b"SUBSCRIBED" not in seen:
        chunk = conn.recv(65536)
        if not chunk:
            raise RuntimeError("stream closed before SUBSCRIBED: %r" % seen[:300])
        seen += chunk
    conn.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--apps", type=int, default=2000)
    parser.add_argument("--frameworks", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--zk", action="store_true")
    args = parser.parse_args()

    setups = [("before (writes under the lock)", args.before, False),
              ("after (registrar, embedded)", args.after, False)]
    zookeeper = None
    zk_dir = None
    if args.zk:
        zk_dir = tempfile.mkdtemp(dir=args.dir)
        zookeeper, zk_port = start_zookeeper(zk_dir, tick_ms=500, heap="512m")
        setups.append(("after (registrar, ZooKeeper)", args.after, zk_port))
    results = {name: {"apps": [], "frameworks": []} for name, _, _ in setups}
    try:
        for round_ in range(args.rounds):
            for name, binary, zk_port in setups:
                zk = None
                if zk_port:
                    zk = "zk://127.0.0.1:%d/bench-%d" % (zk_port, round_)
                master = Master(binary, args.dir, zk)
                try:
                    apps = timed(args.clients, args.apps, master.port, create_app)
                    frameworks = timed(args.clients, args.frameworks, master.port, subscribe)
                finally:
                    master.stop()
                results[name]["apps"].append(args.apps / apps)
                results[name]["frameworks"].append(args.frameworks / frameworks)
                print("round %d %-32s apps %7.0f/s  subscriptions %7.0f/s" % (
                    round_ + 1, name, args.apps / apps, args.frameworks / frameworks), flush=True)
    finally:
        if zookeeper:
            zookeeper.kill()
            zookeeper.wait()
            shutil.rmtree(zk_dir, ignore_errors=True)
    base = results[setups[0][0]]
    print("\n%-32s %14s %8s %20s %8s" % ("", "apps/s", "ratio", "subscriptions/s", "ratio"))
    for name, _, _ in setups:
        apps = statistics.median(results[name]["apps"])
        frameworks = statistics.median(results[name]["frameworks"])
        print("%-32s %14.0f %8.2f %20.0f %8.2f" % (
            name, apps, apps / statistics.median(base["apps"]), frameworks,
            frameworks / statistics.median(base["frameworks"])))


if __name__ == "__main__":
    main()
