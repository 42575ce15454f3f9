#!/usr/bin/env python3
"""What authentication and TLS cost, measured in one run against the same build with neither:
a deployment of N instances (POST to every instance running, as bench_deploy.py, polled on one
kept-alive connection) and the v1
scheduler API (calls per second from one framework over a kept-alive connection, and over a
new connection per call). Four configurations — plain, authentication (every realm), TLS, both
— are run in turns, round after round, so that the machine's drift falls on all of them alike;
each figure is the median of its rounds and its ratio to plain's. Then TLS's cost per call
once more, measured in one process that serves plain and TLS side by side
(`--tls-support-downgrade`), in alternating blocks: the figure least bent by the machine.

    cargo build --release -p agora && python3 scripts/bench_security.py target/release/agora 1000 3

A throw-away CA and certificate are made with openssl in a temporary directory.
"""
import base64
import http.client
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from agora_up import agora_up_process

PRINCIPAL, SECRET = "bench", "bench-secret"
CALLS = 20000
FRESH_CALLS = 300


class Setup:
    """How to reach a cluster of one configuration."""

    def __init__(self, name, flags, tls_context, auth):
        self.name, self.flags, self.tls_context, self.auth = name, flags, tls_context, auth

    def connect(self, port, timeout=60):
        if self.tls_context:
            return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                               context=self.tls_context)
        return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def headers(self, extra=None):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.auth:
            token = base64.b64encode(f"{PRINCIPAL}:{SECRET}".encode()).decode()
            headers["Authorization"] = "Basic " + token
        headers.update(extra or {})
        return headers

    def request(self, port, method, path, body=None, connection=None):
        """One request, on `connection` (kept open) or on a connection of its own."""
        own = connection is None
        connection = connection or self.connect(port)
        connection.request(method, path, None if body is None else json.dumps(body),
                           self.headers())
        response = connection.getresponse()
        data = response.read()
        if own:
            connection.close()
        return response.status, (json.loads(data) if data else None)


def wait_ready(setup, port):
    deadline = time.perf_counter() + 20
    while time.perf_counter() < deadline:
        status, state = setup.request(port, "GET", "/master/state")
        if status == 200 and state["activated_slaves"] >= 1 and any(
                f["name"] == "marathon" for f in state["frameworks"]):
            return
        time.sleep(0.01)
    raise RuntimeError(f"{setup.name}: agora up did not become ready")


def deploy(setup, port, instances):
    app = {"id": "/bench", "cmd": "exec sleep 3600", "cpus": 0.01, "mem": 1,
           "instances": instances}
    # One connection for the POST and the polls: a handshake per poll would load the cluster
    # less under TLS than without it.
    connection = setup.connect(port)
    setup.request(port, "GET", "/v2/info", connection=connection)
    started = time.perf_counter()
    status, body = setup.request(port, "POST", "/v2/apps", app, connection=connection)
    if status != 201:
        raise RuntimeError(f"{setup.name}: POST /v2/apps answered {status}: {body}")
    while True:
        _, answer = setup.request(port, "GET", "/v2/apps/bench", connection=connection)
        if answer["app"]["tasksRunning"] == instances and not answer["app"]["deployments"]:
            return time.perf_counter() - started
        if time.perf_counter() - started > 600:
            raise RuntimeError(f"{setup.name}: not all running after 600 s")
        time.sleep(0.02)


def cpu_seconds(pid):
    """User and system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Subscriber:
    """A framework subscribed over `setup`, its event stream drained on a thread of its own,
    ready to send `RECONCILE` calls (the smallest a scheduler makes) on any connection."""

    def __init__(self, setup, port, name):
        self.setup = setup
        self.stream = setup.connect(port)
        framework = {"user": "root", "name": name, "failover_timeout": 0}
        if setup.auth:
            framework["principal"] = PRINCIPAL
        self.stream.request("POST", "/api/v1/scheduler", json.dumps(
            {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework}}), setup.headers())
        response = self.stream.getresponse()
        if response.status != 200:
            raise RuntimeError(f"{setup.name}: SUBSCRIBE answered {response.status}")
        self.stream_id = response.getheader("Mesos-Stream-Id")
        # RecordIO: the first record is SUBSCRIBED.
        buffer = b""
        while b"\n" not in buffer or len(buffer.split(b"\n", 1)[1]) < int(buffer.split(b"\n", 1)[0]):
            buffer += response.read1(65536)
        size, rest = buffer.split(b"\n", 1)
        framework_id = json.loads(rest[:int(size)])["subscribed"]["framework_id"]["value"]

        def drain():
            try:
                while response.read1(65536):
                    pass
            except (OSError, ValueError, AttributeError, http.client.HTTPException):
                pass  # the stream closed
        threading.Thread(target=drain, daemon=True).start()
        self.call = json.dumps({"type": "RECONCILE", "framework_id": {"value": framework_id},
                                "reconcile": {"tasks": []}})
        self.headers = setup.headers({"Mesos-Stream-Id": self.stream_id})

    def reconcile(self, connection):
        connection.request("POST", "/api/v1/scheduler", self.call, self.headers)
        answer = connection.getresponse()
        answer.read()
        if answer.status != 202:
            raise RuntimeError(f"{self.setup.name}: RECONCILE answered {answer.status}")

    def close(self):
        self.stream.close()


def scheduler_calls(setup, port, pid):
    """Calls per second kept alive, agora's CPU time per call (µs) meanwhile, and calls per
    second with a new connection each."""
    subscriber = Subscriber(setup, port, "bench-security")
    kept = setup.connect(port)
    subscriber.reconcile(kept)  # the handshake, outside the measure
    started, cpu = time.perf_counter(), cpu_seconds(pid)
    for _ in range(CALLS):
        subscriber.reconcile(kept)
    kept_rate = CALLS / (time.perf_counter() - started)
    cpu_per_call = (cpu_seconds(pid) - cpu) / CALLS * 1e6
    started = time.perf_counter()
    for _ in range(FRESH_CALLS):
        fresh = setup.connect(port)
        subscriber.reconcile(fresh)
        fresh.close()
    fresh_rate = FRESH_CALLS / (time.perf_counter() - started)
    subscriber.close()
    return kept_rate, cpu_per_call, fresh_rate


def tls_against_plain(binary, cert, key, context, blocks=20, calls=1000):
    """TLS's cost per scheduler call measured in one process: `--tls-support-downgrade` serves
    a plain and a TLS connection side by side, used in alternating blocks, so the process's
    state and the machine's drift fall on both alike. Returns (calls/s, agora's CPU µs per
    call, this client's CPU µs per call) for plain and for TLS."""
    plain = Setup("plain", [], None, False)
    tls = Setup("TLS", [], context, False)
    flags = ["--tls-cert", cert, "--tls-key", key, "--tls-support-downgrade"]
    with agora_up_process(binary, *flags) as (port, process):
        wait_ready(plain, port)
        subscriber = Subscriber(plain, port, "bench-tls")
        connections = {"plain": plain.connect(port), "TLS": tls.connect(port)}
        for connection in connections.values():
            subscriber.reconcile(connection)  # the handshake, outside the measure
        totals = {name: [0.0, 0.0, 0.0] for name in connections}
        for block in range(blocks):
            order = ["plain", "TLS"] if block % 2 == 0 else ["TLS", "plain"]
            for name in order:
                started, cpu = time.perf_counter(), cpu_seconds(process.pid)
                client = time.process_time()
                for _ in range(calls):
                    subscriber.reconcile(connections[name])
                totals[name][0] += time.perf_counter() - started
                totals[name][1] += cpu_seconds(process.pid) - cpu
                totals[name][2] += time.process_time() - client
        # Last: the Python connections idle meanwhile, and an idle connection is closed.
        lean = {}
        if shutil.which("wrk"):
            # One connection: each call waits for the last, and agora idles between them.
            # Eight: agora never idles, so what it pays to fall asleep and wake up between
            # calls (more of it while a slower client prepares the next call) is not counted.
            for connections in (1, 8):
                lean[connections] = wrk_blocks(port, subscriber, process.pid, connections)
        subscriber.close()
    n = blocks * calls
    figures = {name: (n / seconds, cpu / n * 1e6, client / n * 1e6)
               for name, (seconds, cpu, client) in totals.items()}
    return figures, lean


def wrk_blocks(port, subscriber, pid, connections, blocks=10, seconds=2):
    """The same call from a lean client: wrk, one thread over `connections` kept-alive
    connections, over http and https in alternating blocks. Returns (calls/s, agora's CPU µs
    per call) for each."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(subscriber.call)}\n'
                     f'wrk.headers["Content-Type"] = "application/json"\n'
                     f'wrk.headers["Mesos-Stream-Id"] = "{subscriber.stream_id}"\n'
                     'function response(status) if status ~= 202 then '
                     'error("answered " .. status) end end\n')
        script.flush()
        totals = {"plain": [0, 0.0], "TLS": [0, 0.0]}
        for block in range(blocks):
            order = ["plain", "TLS"] if block % 2 == 0 else ["TLS", "plain"]
            for name in order:
                scheme = "https" if name == "TLS" else "http"
                cpu = cpu_seconds(pid)
                run = subprocess.run(
                    ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name,
                     f"{scheme}://127.0.0.1:{port}/api/v1/scheduler"],
                    capture_output=True, text=True, check=True)
                totals[name][1] += cpu_seconds(pid) - cpu
                done = re.search(r"(\d+) requests in", run.stdout)
                if not done or "error" in run.stdout + run.stderr:
                    raise RuntimeError(f"wrk: {run.stdout}{run.stderr}")
                totals[name][0] += int(done.group(1))
    return {name: (count / (blocks * seconds), cpu / count * 1e6)
            for name, (count, cpu) in totals.items()}


def certificates(directory):
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=bench CA")
    openssl("req", *ec, "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=node")
    with open(os.path.join(directory, "node.ext"), "w") as ext:
        ext.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "node.pem", "-days", "1", "-extfile", "node.ext")
    return [os.path.join(directory, name) for name in ("ca.pem", "node.pem", "node.key")]


def settle(limit=30):
    """Waits until the machine is quiet (at most 2 runnable threads, ten readings in a row
    0.1 s apart): what the last cluster left to the kernel must not fall on the next."""
    quiet, deadline = 0, time.perf_counter() + limit
    while quiet < 10 and time.perf_counter() < deadline:
        with open("/proc/loadavg") as loadavg:
            running = int(loadavg.read().split()[3].split("/")[0])
        quiet = quiet + 1 if running <= 2 else 0
        time.sleep(0.1)


def rotations(setups, rounds):
    """(round, setup) in turns, each round starting with another configuration, so that the
    machine's drift falls on all alike."""
    for round_ in range(rounds):
        order = setups[round_ % len(setups):] + setups[:round_ % len(setups)]
        for setup in order:
            yield round_, setup


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/agora"
    instances = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    resources = "cpus:1000;mem:1000000;disk:1000000;ports:[31000-32000]"
    with tempfile.TemporaryDirectory() as directory:
        ca, cert, key = certificates(directory)
        credentials = os.path.join(directory, "credentials.json")
        with open(credentials, "w") as file:
            json.dump({"credentials": [{"principal": PRINCIPAL, "secret": SECRET}]}, file)
        context = ssl.create_default_context(cafile=ca)
        auth = ["--credentials", credentials, "--authenticate-http-readwrite",
                "--authenticate-http-readonly", "--authenticate-frameworks",
                "--authenticate-agents"]
        tls = ["--tls-cert", cert, "--tls-key", key]
        setups = [Setup("plain", [], None, False), Setup("authentication", auth, None, True),
                  Setup("TLS", tls, context, False),
                  Setup("authentication + TLS", auth + tls, context, True)]
        results = {setup.name: {"deploy": [], "kept": [], "cpu": [], "fresh": []}
                   for setup in setups}
        # The scheduler's figures first, all of them: a deployment's 1,000 tasks take the
        # machine a while to tear down, which would fall on whatever is measured next.
        for round_, setup in rotations(setups, rounds):
            settle()
            with agora_up_process(binary, "--resources", resources, *setup.flags) as (port, process):
                wait_ready(setup, port)
                kept, cpu, fresh = scheduler_calls(setup, port, process.pid)
            figures = results[setup.name]
            figures["kept"].append(kept)
            figures["cpu"].append(cpu)
            figures["fresh"].append(fresh)
            print(f"round {round_ + 1} {setup.name}: scheduler calls {kept:.0f}/s kept alive "
                  f"({cpu:.0f} µs of agora's CPU each), {fresh:.0f}/s new connection", flush=True)
        settle()
        side_by_side, lean = tls_against_plain(binary, cert, key, context)
        for round_, setup in rotations(setups, rounds):
            settle()
            with agora_up_process(binary, "--resources", resources, *setup.flags) as (port, _):
                wait_ready(setup, port)
                seconds = deploy(setup, port, instances)
            results[setup.name]["deploy"].append(seconds)
            print(f"round {round_ + 1} {setup.name}: deploy {seconds:.2f} s", flush=True)
    base = {key: statistics.median(values) for key, values in results["plain"].items()}
    print()
    print(f"| configuration | deploy {instances} (median) | ratio | scheduler calls/s, "
          f"kept alive | ratio | agora's CPU µs per call | ratio "
          f"| calls/s, new connection each | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for setup in setups:
        figures = {key: statistics.median(values) for key, values in results[setup.name].items()}
        ratio = {key: figures[key] / base[key] for key in figures}
        print(f"| {setup.name} | {figures['deploy']:.2f} s | {ratio['deploy']:.3f} "
              f"| {figures['kept']:.0f} | {ratio['kept']:.3f} "
              f"| {figures['cpu']:.0f} | {ratio['cpu']:.3f} "
              f"| {figures['fresh']:.0f} | {ratio['fresh']:.3f} |")
    plain = side_by_side["plain"]
    print()
    print("TLS and plain connections to one process, alternating blocks of 1,000 calls, "
          "20 blocks each:")
    print("| connection | calls/s | ratio | agora's CPU µs per call | ratio "
          "| the client's CPU µs per call |")
    print("|---|---|---|---|---|---|")
    for name, (rate, cpu, client) in side_by_side.items():
        print(f"| {name} | {rate:.0f} | {rate / plain[0]:.3f} | {cpu:.1f} "
              f"| {cpu / plain[1]:.3f} | {client:.1f} |")
    if lean:
        print()
        print("The same from wrk, alternating 2 s blocks, 10 in all:")
        print("| connections | connection | calls/s | ratio | agora's CPU µs per call | ratio |")
        print("|---|---|---|---|---|---|")
        for connections, figures in lean.items():
            for name, (rate, cpu) in figures.items():
                print(f"| {connections} | {name} | {rate:.0f} | {rate / figures['plain'][0]:.3f} "
                      f"| {cpu:.1f} | {cpu / figures['plain'][1]:.3f} |")


if __name__ == "__main__":
    main()
