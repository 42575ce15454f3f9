#!/usr/bin/env python3
"""Discovery benchmark: agora's service proxy against HAProxy, and agora's DNS.

One run, one machine, the same backends for both proxies:
  - `agora up` (release build) with an app of 3 nginx tasks on service port 18501 (least
    connections, agora's default) and another on 18502 labelled HAPROXY_0_BALANCE=roundrobin;
  - HAProxy 2.6 (one thread, as the reference figure) serving the same routes on 127.0.0.2,
    from the configuration `agora lb haproxy --once` renders;
  - wrk (1 thread, 50 connections) against each, alternating, with keep-alive and with a new
    connection per request;
  - route changes: the delay from a task's status event (read from /v2/events) to the proxy
    routing to it (TASK_RUNNING) or no longer routing to it (TASK_KILLING), and failed requests
    while tasks come and go;
  - planned kills: an app of 3 `python3 -m http.server` tasks (which exit at once on SIGTERM)
    with an HTTP health check, reached with a new connection per request while its tasks are
    killed one by one and replaced: failed requests of at least 4,000, and how long a kill
    takes, with the agent's drain delay and with none (the app's AGORA_KILL_DRAIN_SECONDS=0);
  - DNS: queries per second per core of CPU the agora process used (dnsperf), and the delay from
    a task's TASK_RUNNING event to its name resolving.

Needs wrk, haproxy, nginx and dnsperf (installed from Debian's packages when missing, without
starting their services). Usage: python3 scripts/bench_discovery.py [--seconds N]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from agora_up import call_json, wait_until

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = 5470
DNS_PORT = 18553
LEASTCONN_PORT = 18501
ROUNDROBIN_PORT = 18502
PACKAGES = {"wrk": "wrk", "haproxy": "haproxy", "nginx": "nginx-light", "dnsperf": "dnsperf"}

# nginx answering its own port number on $PORT0, one worker; on SIGTERM the shell stops it
# gracefully (SIGQUIT finishes open requests), as `nginx -s quit` does.
NGINX_TASK = r"""cat > nginx.conf <<EOF
worker_processes 1;
pid $PWD/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$PORT0; location / { return 200 "$PORT0\n"; } }
}
EOF
# Its own session: the executor's SIGTERM to the task's process group reaches the shell only.
setsid nginx -p "$PWD" -c "$PWD/nginx.conf" -g 'daemon off;' &
pid=$!
trap 'kill -QUIT $pid' TERM
wait $pid
wait $pid"""


def install_missing():
    missing = [pkg for tool, pkg in PACKAGES.items() if shutil.which(tool) is None]
    if not missing:
        return
    print(f"installing {' '.join(missing)} ...", file=sys.stderr)
    policy = "/usr/sbin/policy-rc.d"
    # Keep the packages' services from starting (nginx would take port 80).
    created = not os.path.exists(policy)
    if created:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    finally:
        if created:
            os.remove(policy)


def api(method, path, body=None):
    return call_json(PORT, method, path, body, timeout=30)


def wait_for(what, check, timeout=60.0):
    return wait_until(what, check, timeout, every=0.05)


def running_ports(app):
    tasks = api("GET", f"/v2/apps/{app}/tasks")["tasks"]
    return {t["ports"][0]: t["id"] for t in tasks if t["state"] == "TASK_RUNNING"}


def settled(app, count):
    def check():
        deployments = api("GET", "/v2/deployments")
        ports = running_ports(app)
        return ports if not deployments and len(ports) == count else None
    return wait_for(f"{app} with {count} tasks", check)


def http_get(port, host="127.0.0.1", errors=None):
    """One GET on a new connection; the body, or None on any failure (kept in `errors`)."""
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
            if errors is not None:
                errors.append(f"answer {data[:80]!r}")
            return None
        return body.decode().strip()
    except OSError as error:
        if errors is not None:
            errors.append(repr(error))
        return None


def healthy(app, count):
    """The app's task ids once `count` run, every one healthy, and no deployment is left."""
    def check():
        tasks = api("GET", f"/v2/apps/{app}/tasks")["tasks"]
        ids = {t["id"] for t in tasks if t["state"] == "TASK_RUNNING"
               and t.get("healthCheckResults") and t["healthCheckResults"][0]["alive"]}
        if len(ids) == count == len(tasks) and not api("GET", "/v2/deployments"):
            return ids
        return None
    return wait_for(f"{app} with {count} healthy tasks", check)


def planned_kills(events, app, port, labels, least_requests=4000):
    """Kills the tasks of a fresh app of 3 http.server tasks one by one (each replaced) while a
    poller sends new-connection GETs through its service port, until at least `least_requests`
    were sent. Returns (requests, failures, errors, kill times in ms: DELETE → TASK_KILLED)."""
    api("POST", "/v2/apps", {
        "id": f"/{app}", "cmd": "exec python3 -m http.server $PORT0 --bind 127.0.0.1",
        "cpus": 0.1, "mem": 32, "instances": 3, "portDefinitions": [{"port": port}],
        "labels": labels,
        "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0,
                          "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 1,
                          "maxConsecutiveFailures": 3}]})
    tasks = healthy(app, 3)
    poller = Poller(port)
    poller.start()
    kills = []
    while len(kills) < 3 or poller.requests < least_requests:
        victim = sorted(tasks)[0]
        asked = time.monotonic()
        api("DELETE", f"/v2/apps/{app}/tasks/{victim}")
        kills.append((events.when(victim, "TASK_KILLED") - asked) * 1000)
        def replaced(victim=victim):
            now = healthy(app, 3)
            return now if victim not in now else None
        tasks = wait_for(f"{victim}'s replacement", replaced)
    poller.stop.set()
    poller.join()
    api("DELETE", f"/v2/apps/{app}")
    return poller.requests, poller.failures, poller.errors, kills


def wrk(address, seconds, close):
    command = ["wrk", "-t1", "-c50", f"-d{seconds}s", "--latency", f"http://{address}/"]
    if close:
        command[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = (sum(int(x) for x in errors.groups()) if errors else 0) + (int(non2xx.group(1)) if non2xx else 0)
    return rps, float(p99.group(1)) * scale, failed


class Events(threading.Thread):
    """Reads /v2/events and keeps when each (task id, state) arrived."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()

    def run(self):
        request = urllib.request.Request(
            f"http://127.0.0.1:{PORT}/v2/events?event_type=status_update_event",
            headers={"Accept": "text/event-stream"})
        with urllib.request.urlopen(request) as stream:
            self.ready.set()
            for raw in stream:
                line = raw.decode().strip()
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    with self.lock:
                        self.seen.setdefault((event["taskId"], event["taskStatus"]), time.monotonic())

    def when(self, task_id, state, timeout=30.0):
        return wait_for(f"{state} of {task_id}", lambda: self.seen.get((task_id, state)), timeout)


class Poller(threading.Thread):
    """New-connection GETs back to back; records when each body (a backend's port) was seen."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.first = {}
        self.last = {}
        self.failures = 0
        self.errors = []
        self.requests = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            body = http_get(self.port, errors=self.errors)
            now = time.monotonic()
            self.requests += 1
            if body is None:
                self.failures += 1
                continue
            self.first.setdefault(body, now)
            self.last[body] = now


def dns_query(name, port):
    """An A query over UDP; the number of answers (0 for NXDOMAIN or none)."""
    header = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        s.sendto(header + question + struct.pack(">HH", 1, 1), ("127.0.0.1", port))
        try:
            data, _ = s.recvfrom(4096)
        except OSError:
            return 0
    return struct.unpack(">H", data[6:8])[0]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(values):
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    args = parser.parse_args()
    install_missing()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "agora"], cwd=REPO, check=True)
    binary = os.path.join(REPO, "target", "release", "agora")
    work = tempfile.mkdtemp(prefix="bench-discovery-", dir=os.environ.get("TMPDIR"))
    processes = []

    def start(command, **kw):
        p = subprocess.Popen(command, start_new_session=True, **kw)
        processes.append(p)
        return p

    try:
        # Task ports stay below Linux's ephemeral range (32768-60999): the load's own client
        # connections would otherwise hold ports a new task needs.
        up = start([binary, "up", "--port", str(PORT), "--bind", "127.0.0.1",
                    "--data-dir", os.path.join(work, "data"), "--proxy-bind", "127.0.0.1",
                    "--proxy-http-port", "0", "--dns-port", str(DNS_PORT),
                    "--resources", "cpus:8;mem:8192;ports:[31500-31699]"],
                   stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "agora.log"), "w"),
                   env=dict(os.environ, AGORA_LOG="warn"))
        wait_for("agora up", lambda: api("GET", "/v2/info"))
        events = Events()
        events.start()
        events.ready.wait(10)
        for app, port, labels in [("bench", LEASTCONN_PORT, {}),
                                  ("bench-rr", ROUNDROBIN_PORT, {"HAPROXY_0_BALANCE": "roundrobin"})]:
            api("POST", "/v2/apps", {"id": f"/{app}", "cmd": NGINX_TASK, "cpus": 0.1, "mem": 32,
                                      "instances": 3, "portDefinitions": [{"port": port}],
                                      "labels": labels, "taskKillGracePeriodSeconds": 5})
        for app, port in [("bench", LEASTCONN_PORT), ("bench-rr", ROUNDROBIN_PORT)]:
            ports = settled(app, 3)
            wait_for(f"{app} through the proxy",
                     lambda: {http_get(port) for _ in range(12)} == {str(p) for p in ports})

        config = os.path.join(work, "haproxy.cfg")
        subprocess.run([binary, "lb", "haproxy", "--master", f"127.0.0.1:{PORT}", "--config", config,
                        "--once", "--bind", "127.0.0.2", "--http-port", "0", "--admin-socket", "none",
                        "--stats", "none"], check=True, stderr=subprocess.DEVNULL)
        text = open(config).read().replace("global\n", "global\n    nbthread 1\n", 1)
        open(config, "w").write(text)
        start(["haproxy", "-db", "-f", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("haproxy", lambda: http_get(LEASTCONN_PORT, "127.0.0.2"))

        print("\n## Proxy throughput (wrk -t1 -c50, %d s per run, best of 2)\n" % args.seconds)
        print("| case | balance | agora req/s | agora p99 ms | HAProxy req/s | HAProxy p99 ms | req/s ratio | p99 ratio | failed |")
        print("|---|---|---|---|---|---|---|---|---|")
        for close in (False, True):
            for balance, port in (("leastconn", LEASTCONN_PORT), ("roundrobin", ROUNDROBIN_PORT)):
                results = {"agora": [], "haproxy": []}
                for _ in range(2):
                    for name, host in (("agora", "127.0.0.1"), ("haproxy", "127.0.0.2")):
                        results[name].append(wrk(f"{host}:{port}", args.seconds, close))
                best = {name: max(runs, key=lambda r: r[0]) for name, runs in results.items()}
                failed = sum(r[2] for runs in results.values() for r in runs)
                a, h = best["agora"], best["haproxy"]
                case = "new connection per request" if close else "keep-alive"
                print(f"| {case} | {balance} | {a[0]:.0f} | {a[1]:.2f} | {h[0]:.0f} | {h[1]:.2f} "
                      f"| {a[0] / h[0]:.2f} | {a[1] / h[1]:.2f} | {failed} |", flush=True)

        print("\n## Route changes (agora's proxy; polled with a new connection per request)\n")
        poller = Poller(LEASTCONN_PORT)
        poller.start()
        enter, leave = [], []
        for _ in range(5):
            before = running_ports("bench")
            # A port may come back with a later task: forget what ended tasks answered.
            for body in list(poller.first):
                if body not in {str(p) for p in before}:
                    poller.first.pop(body, None)
                    poller.last.pop(body, None)
            api("PUT", "/v2/apps/bench", {"instances": 4})
            after = settled("bench", 4)
            (new_port, new_task), = [(p, t) for p, t in after.items() if p not in before]
            at = events.when(new_task, "TASK_RUNNING")
            seen = wait_for(lambda: f"task {new_task} on port {new_port} routed (seen: "
                            f"{sorted(poller.first)}, {poller.requests} requests; "
                            f"{api('GET', '/slave(1)/state')['discovery']}; "
                            f"{open(os.path.join(work, 'agora.log')).read()[-3000:]})",
                            lambda: poller.first.get(str(new_port)), 10)
            enter.append((seen - at) * 1000)
            api("DELETE", f"/v2/apps/bench/tasks/{new_task}?scale=true")
            at = events.when(new_task, "TASK_KILLING")
            events.when(new_task, "TASK_KILLED")  # after the drain: routes changed long since
            last = poller.last.get(str(new_port), at)
            leave.append(max(0.0, (last - at) * 1000))
            settled("bench", 3)
        poller.stop.set()
        poller.join()
        print("| change | median ms | max ms |")
        print("|---|---|---|")
        print(f"| TASK_RUNNING event → routed | {median(enter):.1f} | {max(enter):.1f} |")
        print(f"| TASK_KILLING event → no longer routed | {median(leave):.1f} | {max(leave):.1f} |")
        print(f"\n{poller.requests} requests while 5 tasks started and were killed: "
              f"{poller.failures} failed{': ' + '; '.join(poller.errors[:5]) if poller.errors else ''}.")

        print("\n## Planned kills (http.server tasks that exit at once on SIGTERM)\n")
        print("| drain | requests | failed | kill: DELETE → TASK_KILLED, median ms | max ms |")
        print("|---|---|---|---|---|")
        for name, port, labels, drain in (("kill", 18503, {}, "agent's default (--kill-drain)"),
                                          ("kill-nodrain", 18504, {"AGORA_KILL_DRAIN_SECONDS": "0"},
                                           "none (AGORA_KILL_DRAIN_SECONDS=0)")):
            requests, failures, errors, kills = planned_kills(events, name, port, labels)
            print(f"| {drain} | {requests} | {failures} | {median(kills):.0f} | {max(kills):.0f} |",
                  flush=True)
            if errors:
                print(f"  errors: {'; '.join(errors[:5])}", flush=True)

        print("\n## DNS\n")
        delays = []
        for i in range(5):
            name = f"dns{i}"
            api("POST", "/v2/apps", {"id": f"/{name}", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16,
                                      "instances": 1})
            resolved = None
            deadline = time.monotonic() + 30
            while resolved is None and time.monotonic() < deadline:
                if dns_query(f"{name}.marathon.mesos", DNS_PORT) > 0:
                    resolved = time.monotonic()
                else:
                    time.sleep(0.002)
            tasks = api("GET", f"/v2/apps/{name}/tasks")["tasks"]
            at = events.when(tasks[0]["id"], "TASK_RUNNING")
            delays.append((resolved - at) * 1000)
            api("DELETE", f"/v2/apps/{name}")
        queries = os.path.join(work, "queries.txt")
        with open(queries, "w") as f:
            f.write("bench.marathon.mesos A\n_bench._tcp.marathon.mesos SRV\n"
                    "leader.mesos A\nnothing.marathon.mesos A\n")
        cpu_before = cpu_seconds(up.pid)
        out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(DNS_PORT), "-d", queries,
                              "-l", str(args.seconds), "-c", "4", "-q", "200"],
                             capture_output=True, text=True, check=True).stdout
        cpu = cpu_seconds(up.pid) - cpu_before
        completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
        qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
        lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
        print("| measure | value |")
        print("|---|---|")
        print(f"| queries per second (dnsperf, 4 clients) | {qps:.0f} |")
        print(f"| CPU seconds used by agora | {cpu:.2f} |")
        print(f"| queries per second per core of agora's CPU | {completed / cpu:.0f} |")
        print(f"| queries lost | {lost} |")
        print(f"| TASK_RUNNING event → name resolves, median / max ms | {median(delays):.1f} / {max(delays):.1f} |")
    finally:
        for p in reversed(processes):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in processes:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
