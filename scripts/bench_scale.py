#!/usr/bin/env python3
"""The master at scale, with hollow agents (`agora hollow-agents`) on this machine.

Phases (`--phases`, comma-separated; all by default):

- agents: `agora master` alone, then `--agents` hollow agents: the time until the master lists
  them all active, and the master's RSS before and after (KB per agent).
- placement: the SDK's `launch_flood` example launches `--tasks` tasks over those agents
  through the scheduler API: tasks per second from its first offer to its last TASK_RUNNING,
  and the master's RSS after (KB per task); the allocation rounds' durations meanwhile
  (`allocator/mesos/allocation_run_ms`).
- state: `/master/state`, `/master/state-summary`, `/master/tasks`, the operator API's
  GET_STATE, `/v2/tasks` and `/v2/apps?embed=apps.tasks` with the tasks running: time to the
  first byte, total time, bytes.
- storm: every running task reports again at once (the hollow process's `POST /storm`): the
  time until the framework has acknowledged every update, and the slowest answer of the
  master's `/health` meanwhile (polled every 20 ms).
- restart: the master killed (SIGKILL) and started again over its data dir: from its listening
  line to every agent active again, with the tasks; agents removed meanwhile (none expected).
- allocation: a master of its own, `--frameworks` frameworks subscribed (reading their
  streams, answering nothing), then `--agents` hollow agents: the allocation round that offers
  them all (`allocation_run_ms/max`).
- marathon: a master of its own and `--app-agents` hollow agents: one app of
  `--app-instances` instances, from its POST to every instance running (and the deployment
  done).

    cargo build --release -p agora
    cargo build --release -p agora-client --example launch_flood
    python3 scripts/bench_scale.py target/release/agora \\
        target/release/examples/launch_flood --agents 10000 --tasks 100000
"""
import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from agora_up import start_role

RESOURCES = "cpus:8;mem:32768;disk:262144;ports:[31000-32000]"


def request(port, method, path, body=None, timeout=120.0):
    """(status, body bytes, seconds to the first byte, seconds in all) of one request."""
    payload = json.dumps(body).encode() if body is not None else b""
    head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % (method, path)
    if body is not None:
        head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(payload)
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(head.encode() + b"\r\n" + payload)
        chunks = [conn.recv(1 << 20)]
        first = time.perf_counter() - t0
        while chunks[-1]:
            chunks.append(conn.recv(1 << 20))
    total = time.perf_counter() - t0
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"transfer-encoding: chunked" in head.lower():
        decoded, at = [], 0
        while at < len(body):
            end = body.index(b"\r\n", at)
            size = int(body[at:end], 16)
            if size == 0:
                break
            decoded.append(body[end + 2:end + 2 + size])
            at = end + 2 + size + 2
        body = b"".join(decoded)
    return status, body, first, total


def get_json(port, path):
    status, body, _, _ = request(port, "GET", path)
    if status != 200:
        raise RuntimeError("GET %s: %d %s" % (path, status, body[:200]))
    return json.loads(body)


def metrics(port):
    return get_json(port, "/metrics/snapshot")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    """User and system CPU seconds the process has used."""
    with open("/proc/%d/stat" % pid) as stat:
        # Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait(what, check, timeout=300.0, every=0.05):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(every)


def settle(pid, seconds=3.0):
    """The RSS once the process has been idle a moment."""
    time.sleep(seconds)
    return rss_kb(pid)


class Cluster:
    def __init__(self, binary, base, name, interval=None):
        self.binary = binary
        self.data = os.path.join(base, name)
        self.interval = interval
        self.master = None
        self.port = 0
        self.others = []

    def start_master(self, port=0):
        args = ["master", "--port", str(port), "--data-dir", self.data]
        if self.interval:
            args += ["--allocation-interval", self.interval]
        self.master, self.port = start_role(self.binary, args)
        return self.master

    def start_agents(self, count, extra=()):
        proc, port = start_role(self.binary, [
            "hollow-agents", "--master", "127.0.0.1:%d" % self.port, "--count", str(count),
            "--port", "0", "--resources", RESOURCES, "--attributes", "rack:r{i%40}", *extra])
        self.others.append(proc)
        return proc, port

    def active_agents(self):
        return int(metrics(self.port).get("master/slaves_active", 0))

    def stop(self):
        for proc in [self.master, *self.others]:
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()


def phase_agents(cluster, args, out):
    cluster.start_master()
    base_rss = settle(cluster.master.pid)
    t0 = time.perf_counter()
    hollow, hollow_port = cluster.start_agents(args.agents)
    wait("agents", lambda: cluster.active_agents() >= args.agents, every=0.1)
    registered = time.perf_counter() - t0
    agents_rss = settle(cluster.master.pid)
    out["agents"] = {
        "count": args.agents,
        "all_registered_s": round(registered, 2),
        "master_rss_base_mb": round(base_rss / 1024, 1),
        "master_rss_mb": round(agents_rss / 1024, 1),
        "master_kb_per_agent": round((agents_rss - base_rss) / args.agents, 2),
        "hollow_process_rss_mb": round(rss_kb(hollow.pid) / 1024, 1),
    }
    cluster.hollow_port = hollow_port
    cluster.agents_rss = agents_rss


def phase_placement(cluster, args, out):
    before = metrics(cluster.port)
    flood = subprocess.Popen([args.flood, "127.0.0.1:%d" % cluster.port, str(args.tasks),
                              "--per-offer", str(max(1, -(-args.tasks // args.agents)))],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    cluster.others.append(flood)
    line = flood.stdout.readline()
    if not line:
        raise RuntimeError("launch_flood ended without a result")
    result = json.loads(line)
    after = metrics(cluster.port)
    tasks_rss = settle(cluster.master.pid, 5.0)
    out["placement"] = {
        **result,
        "master_rss_mb": round(tasks_rss / 1024, 1),
        "master_kb_per_task": round((tasks_rss - cluster.agents_rss) / args.tasks, 2),
        "allocation_runs": after["allocator/mesos/allocation_run_ms/count"]
        - before.get("allocator/mesos/allocation_run_ms/count", 0),
        "allocation_run_ms_p50": after.get("allocator/mesos/allocation_run_ms/p50"),
        "allocation_run_ms_max": after.get("allocator/mesos/allocation_run_ms/max"),
    }


def phase_state(cluster, args, out):
    calls = [
        ("GET", "/master/state", None),
        ("GET", "/master/state-summary", None),
        ("GET", "/master/tasks?limit=100000", None),
        ("POST", "/api/v1", {"type": "GET_STATE"}),
        ("GET", "/v2/tasks", None),
        ("GET", "/v2/apps?embed=apps.tasks", None),
    ]
    task = get_json(cluster.port, "/master/tasks?limit=1")["tasks"][0]
    calls += [("GET", path, None) for path in (
        "/", "/ui/agents", "/ui/agents/" + task["slave_id"], "/ui/frameworks",
        "/ui/frameworks/" + task["framework_id"], "/ui/tasks", "/ui/tasks/" + task["id"])]
    results = {}
    for method, path, body in calls:
        best = None
        with LockProbe(cluster.port) as probe:
            for _ in range(3):
                status, data, first, total = request(cluster.port, method, path, body)
                if status != 200:
                    raise RuntimeError("%s %s: %d" % (method, path, status))
                if best is None or total < best[1]:
                    best = (first, total, len(data))
        key = path if body is None else "%s %s" % (path, body["type"])
        results[key] = {"first_byte_ms": round(best[0] * 1000, 1),
                        "total_ms": round(best[1] * 1000, 1), "bytes": best[2],
                        "slowest_other_call_ms": round(probe.slowest * 1000, 1)}
    with LockProbe(cluster.port) as probe:
        first, whole, size = subscribed(cluster.port)
    results["/api/v1 SUBSCRIBE (its SUBSCRIBED event)"] = {
        "first_byte_ms": round(first * 1000, 1), "total_ms": round(whole * 1000, 1),
        "bytes": size, "slowest_other_call_ms": round(probe.slowest * 1000, 1)}
    out["state"] = results
    after = metrics(cluster.port)
    out["state_capture_ms"] = {key: after.get("master/state_capture_ms/" + key)
                               for key in ("count", "p50", "p90", "max")}


def subscribed(port):
    """An operator subscription's first event, the whole state: (seconds to its first byte,
    seconds to all of it, its size)."""
    body = b'{"type":"SUBSCRIBE"}'
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as conn:
        conn.sendall(b"POST /api/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nAccept: application/recordio\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        data = conn.recv(1 << 20)
        first = time.perf_counter() - t0
        # Chunked: the first chunk's size line, then the RecordIO length line of SUBSCRIBED.
        while b"\r\n\r\n" not in data:
            data += conn.recv(1 << 20)
        pending = data.split(b"\r\n\r\n", 1)[1]
        # Undo the chunked framing as the bytes come (by index: no copies of what is left);
        # stop once the record is whole.
        at, left, expected, record, head = 0, 0, None, 0, b""
        while True:
            while at < len(pending):
                if left == 0:
                    end = pending.find(b"\r\n", at)
                    if end < 0:
                        pending, at = pending[at:], 0
                        break
                    size = int(pending[at:end], 16)
                    if size == 0:
                        raise RuntimeError("the subscription ended before SUBSCRIBED")
                    left, at = size + 2, end + 2  # the chunk and its CRLF
                    continue
                take = min(left, len(pending) - at)
                data_bytes = min(take, max(0, left - 2))
                if expected is None:
                    head += pending[at:at + data_bytes]
                    if b"\n" in head:
                        line, rest = head.split(b"\n", 1)
                        expected, record = int(line), len(rest)
                else:
                    record += data_bytes
                at += take
                left -= take
            if expected is not None and record >= expected:
                return first, time.perf_counter() - t0, expected
            chunk = conn.recv(1 << 22)
            if not chunk:
                raise RuntimeError("the subscription ended before SUBSCRIBED was whole")
            pending = pending[at:] + chunk if at < len(pending) else chunk
            at = 0


class LockProbe:
    """Meanwhile, a small call that takes the master's lock (GET_MASTER) every 20 ms: the
    slowest one says how long the document kept everyone else waiting."""

    def __init__(self, port):
        self.port, self.slowest, self.done = port, 0.0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.done.is_set():
            _, _, _, took = request(self.port, "POST", "/api/v1", {"type": "GET_MASTER"})
            self.slowest = max(self.slowest, took)
            time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def hollow_summary(cluster):
    return get_json(cluster.hollow_port, "/state")["summary"]


def phase_storm(cluster, args, out):
    slowest = [0.0]
    failed = [0]
    done = threading.Event()

    def probe():
        while not done.is_set():
            try:
                _, _, _, total = request(cluster.port, "GET", "/health")
                slowest[0] = max(slowest[0], total)
            except OSError:
                failed[0] += 1
            time.sleep(0.02)
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    t0 = time.perf_counter()
    status, body, _, _ = request(cluster.hollow_port, "POST", "/storm", {})
    if status != 200:
        raise RuntimeError("POST /storm: %d %s" % (status, body[:200]))
    updates = json.loads(body)["updates"]
    wait("the storm absorbed", lambda: hollow_summary(cluster)["updates_pending"] == 0,
         every=0.05)
    absorbed = time.perf_counter() - t0
    done.set()
    prober.join()
    out["storm"] = {
        "updates": updates,
        "all_acknowledged_s": round(absorbed, 2),
        "updates_per_s": round(updates / absorbed),
        "slowest_health_ms": round(slowest[0] * 1000, 1),
        "health_failures": failed[0],
    }


def phase_restart(cluster, args, out):
    running = metrics(cluster.port).get("master/tasks_running", 0)
    # A restarted master lists the agents of its registry at once; they are back once each
    # has re-registered.
    cluster.master.kill()
    cluster.master.wait()
    hollow = cluster.others[0]
    hollow_cpu = cpu_s(hollow.pid)
    t0 = time.perf_counter()
    cluster.start_master(cluster.port)
    up = time.perf_counter() - t0
    t1 = time.perf_counter()
    # How many are back, every 0.1 s (a snapshot walks every task under the master's lock:
    # asked for more often, it would slow what it measures).
    curve = []

    def back():
        count = metrics(cluster.port).get("master/slave_reregistrations", 0)
        curve.append((round(time.perf_counter() - t1, 2), int(count)))
        return count >= args.agents

    wait("agents back", back, every=0.1)
    agents_back = time.perf_counter() - t1
    # Whose work the wait was: on two cores, the hollow agents' share is taken from the master.
    master_cpu, hollow_cpu = cpu_s(cluster.master.pid), cpu_s(hollow.pid) - hollow_cpu
    wait("tasks back", lambda: metrics(cluster.port).get("master/tasks_running", 0) >= running,
         every=0.05)
    tasks_back = time.perf_counter() - t1
    snapshot = metrics(cluster.port)
    out["restart"] = {
        "agents": args.agents,
        "tasks": running,
        "listening_after_s": round(up, 2),
        "all_agents_reregistered_s": round(agents_back, 2),
        "reregistered_by_then": curve[::max(1, len(curve) // 12)],
        "all_tasks_running_s": round(tasks_back, 2),
        "cpu_s_until_all_back": {"master": round(master_cpu, 2), "hollow_agents": round(hollow_cpu, 2)},
        "agents_removed": snapshot.get("master/slave_removals", 0),
        "tasks_lost": snapshot.get("master/tasks_lost", 0),
    }


async def idle_framework(port, index, subscribed):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": "root", "name": "idle-%d" % index, "failover_timeout": 0}}}).encode()
    writer.write(b"POST /api/v1/scheduler HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nAccept: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    seen = b""
    while b"SUBSCRIBED" not in seen:
        chunk = await reader.read(1 << 16)
        if not chunk:
            raise RuntimeError("framework %d: stream ended" % index)
        seen += chunk
    subscribed.append(index)
    while await reader.read(1 << 20):
        pass


def phase_allocation(binary, base, args, out):
    # A long interval: every agent registers between two rounds, so one round offers them all.
    cluster = Cluster(binary, base, "allocation", interval="15s")
    try:
        cluster.start_master()
        subscribed = []
        loop = asyncio.new_event_loop()
        tasks = [loop.create_task(idle_framework(cluster.port, i, subscribed))
                 for i in range(args.frameworks)]
        threading.Thread(target=loop.run_until_complete,
                         args=(asyncio.gather(*tasks, return_exceptions=True),),
                         daemon=True).start()
        wait("frameworks", lambda: len(subscribed) >= args.frameworks)
        runs = metrics(cluster.port)["allocator/mesos/allocation_run_ms/count"]
        cluster.start_agents(args.agents)
        wait("agents", lambda: cluster.active_agents() >= args.agents, every=0.1)
        # The round after they all registered.
        wait("a round", lambda: metrics(cluster.port)[
            "allocator/mesos/allocation_run_ms/count"] >= runs + 2, timeout=60, every=0.2)
        snapshot = metrics(cluster.port)
        outstanding = len(get_json(cluster.port, "/master/state-summary")["slaves"])
        out["allocation"] = {
            "agents": args.agents,
            "frameworks": args.frameworks,
            "allocation_run_ms_max": snapshot["allocator/mesos/allocation_run_ms/max"],
            "allocation_run_ms_p50": snapshot["allocator/mesos/allocation_run_ms/p50"],
            "agents_listed": outstanding,
            "offers_outstanding": snapshot.get("master/outstanding_offers"),
        }
    finally:
        cluster.stop()


def phase_marathon(binary, base, args, out):
    cluster = Cluster(binary, base, "marathon")
    try:
        cluster.start_master()
        cluster.start_agents(args.app_agents)
        wait("agents", lambda: cluster.active_agents() >= args.app_agents, every=0.1)
        wait("marathon", lambda: request(cluster.port, "GET", "/v2/info")[0] == 200)
        app = {"id": "/scale/web", "cmd": "sleep 1000", "cpus": 0.01, "mem": 8,
               "instances": args.app_instances}
        t0 = time.perf_counter()
        status, body, _, _ = request(cluster.port, "POST", "/v2/apps", app)
        if status != 201:
            raise RuntimeError("POST /v2/apps: %d %s" % (status, body[:300]))
        posted = time.perf_counter() - t0

        def running():
            app = get_json(cluster.port, "/v2/apps/scale/web")["app"]
            return app["tasksRunning"] >= args.app_instances and not app["deployments"]
        wait("instances running", running, every=0.1)
        done = time.perf_counter() - t0
        status, data, first, total = request(cluster.port, "GET", "/v2/apps?embed=apps.tasks")
        status2, data2, first2, total2 = request(cluster.port, "GET", "/v2/tasks")
        out["marathon"] = {
            "agents": args.app_agents,
            "instances": args.app_instances,
            "post_answered_s": round(posted, 3),
            "all_running_s": round(done, 2),
            "apps_embed_tasks": {"first_byte_ms": round(first * 1000, 1),
                                 "total_ms": round(total * 1000, 1), "bytes": len(data)},
            "v2_tasks": {"first_byte_ms": round(first2 * 1000, 1),
                         "total_ms": round(total2 * 1000, 1), "bytes": len(data2)},
        }
    finally:
        cluster.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("flood", help="the launch_flood example of agora-client")
    parser.add_argument("--agents", type=int, default=10000)
    parser.add_argument("--tasks", type=int, default=100000)
    parser.add_argument("--frameworks", type=int, default=1000)
    parser.add_argument("--app-agents", type=int, default=1000)
    parser.add_argument("--app-instances", type=int, default=10000)
    parser.add_argument("--phases",
                        default="agents,placement,state,storm,restart,allocation,marathon")
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    base = tempfile.mkdtemp(dir=args.dir)
    out = {}
    try:
        if phases & {"agents", "placement", "state", "storm", "restart"}:
            cluster = Cluster(args.binary, base, "main")
            try:
                # In this order, on one cluster: each needs what the one before left.
                for name, phase in [("agents", phase_agents), ("placement", phase_placement),
                                    ("state", phase_state), ("storm", phase_storm),
                                    ("restart", phase_restart)]:
                    if name == "agents" or name in phases:
                        phase(cluster, args, out)
                        print(json.dumps(out[name]), flush=True)
            finally:
                cluster.stop()
        # Each on a cluster of its own.
        for name, phase in [("allocation", phase_allocation), ("marathon", phase_marathon)]:
            if name in phases:
                phase(args.binary, base, args, out)
                print(json.dumps(out[name]), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
