#!/usr/bin/env python3
"""Task launch latency, as ratios to the same start without agora, measured in one run.

Process containerizer (cgroups, pid and mount namespaces on): a v1 HTTP scheduler launches
`exec sleep 1000` tasks one after another on `agora up` and times
  - agent side: the task's TASK_STAGING timestamp (the master sent it to the agent) to its
    TASK_RUNNING timestamp (the executor has started the command), and
  - scheduler side: ACCEPT sent to TASK_RUNNING received;
against fork+exec of the same `sleep 1000` by this script (subprocess returns once exec has
succeeded). Docker: DOCKER tasks of the test image against `docker run -d` of it.

    cargo build --release -p agora && sudo python3 scripts/bench_launch.py target/release/agora 200 30

Needs root (cgroups, namespaces) and, for the Docker half, the Docker Engine with the
`agora-test/busybox:1` image (the Docker tests make it).
"""
import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid

from agora_up import agora_up

IMAGE = "agora-test/busybox:1"


class Scheduler:
    """A minimal Mesos v1 HTTP scheduler: SUBSCRIBE on one connection, calls on another."""

    def __init__(self, port: int):
        self.port = port
        self.stream = http.client.HTTPConnection("127.0.0.1", port)
        body = json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "root", "name": "bench-launch", "failover_timeout": 0}}})
        self.stream.request("POST", "/api/v1/scheduler", body,
                            {"Content-Type": "application/json", "Accept": "application/json"})
        self.response = self.stream.getresponse()
        self.stream_id = self.response.getheader("Mesos-Stream-Id")
        self.framework_id = None
        self.offers = []
        self.running = {}
        self.lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.calls = http.client.HTTPConnection("127.0.0.1", port)
        with self.lock:
            self.lock.wait_for(lambda: self.framework_id is not None, timeout=10)

    def _read(self):
        buffer = b""
        while True:
            try:
                chunk = self.response.read1(65536)
            except (OSError, ValueError, http.client.HTTPException):
                return  # the cluster is stopping
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                size, rest = buffer.split(b"\n", 1)
                size = int(size)
                if len(rest) < size:
                    break
                event, buffer = json.loads(rest[:size]), rest[size:]
                self._handle(event)

    def _handle(self, event):
        kind = event["type"]
        with self.lock:
            if kind == "SUBSCRIBED":
                self.framework_id = event["subscribed"]["framework_id"]["value"]
            elif kind == "OFFERS":
                self.offers.extend(event["offers"]["offers"])
            elif kind == "UPDATE":
                status = event["update"]["status"]
                if status["state"] == "TASK_RUNNING":
                    self.running[status["task_id"]["value"]] = (time.perf_counter(), status["timestamp"])
                elif status["state"] in ("TASK_FAILED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED"):
                    self.running[status["task_id"]["value"]] = (None, status.get("message"))
                if "uuid" in status:
                    self._call({"type": "ACKNOWLEDGE", "acknowledge": {
                        "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}})
            self.lock.notify_all()

    def _call(self, call):
        call["framework_id"] = {"value": self.framework_id}
        connection = http.client.HTTPConnection("127.0.0.1", self.port)
        try:
            connection.request("POST", "/api/v1/scheduler", json.dumps(call),
                               {"Content-Type": "application/json", "Mesos-Stream-Id": self.stream_id})
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            pass  # the cluster is stopping; an unacknowledged update is re-sent anyway
        finally:
            connection.close()

    def launch(self, container=None) -> tuple[float, str]:
        """Launches one task on the next offer; returns (scheduler-side seconds, task id)."""
        with self.lock:
            self.lock.wait_for(lambda: self.offers, timeout=10)
            offer = self.offers.pop(0)
        task_id = f"t-{uuid.uuid4()}"
        task = {"name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.01}},
                              {"name": "mem", "type": "SCALAR", "scalar": {"value": 8}}],
                "command": {"value": "exec sleep 1000"}}
        if container:
            task["container"] = container
        accept = {"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
            {"type": "LAUNCH", "launch": {"task_infos": [task]}}], "filters": {"refuse_seconds": 0}}}
        started = time.perf_counter()
        call = dict(accept, framework_id={"value": self.framework_id})
        self.calls.request("POST", "/api/v1/scheduler", json.dumps(call),
                           {"Content-Type": "application/json", "Mesos-Stream-Id": self.stream_id})
        self.calls.getresponse().read()
        with self.lock:
            self.lock.wait_for(lambda: task_id in self.running, timeout=120)
            received, detail = self.running.get(task_id, (None, "no answer"))
        if received is None:
            raise RuntimeError(f"task {task_id} did not run: {detail}")
        return received - started, task_id


def staging_to_running(port: int) -> list[float]:
    """Agent-side launch times: TASK_STAGING → TASK_RUNNING timestamps of every task."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("GET", "/master/tasks?limit=100000")
    tasks = json.loads(connection.getresponse().read())["tasks"]
    times = []
    for task in tasks:
        stamps = {s["state"]: s["timestamp"] for s in task.get("statuses", [])}
        if "TASK_STAGING" in stamps and "TASK_RUNNING" in stamps:
            times.append(stamps["TASK_RUNNING"] - stamps["TASK_STAGING"])
    return times


def fork_exec(runs: int, argv: list[str]) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
        child.kill()
        child.wait()
    return times


def docker_run(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        container = subprocess.run(["docker", "run", "-d", "--rm", IMAGE, "sleep", "1000"],
                                   capture_output=True, text=True, check=True).stdout.strip()
        times.append(time.perf_counter() - started)
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
    return times


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def row(name: str, values: list[float], base: list[float] | None = None) -> str:
    ms = [v * 1000 for v in values]
    text = (f"| {name} | {statistics.median(ms):.2f} | {percentile(ms, 99):.2f} | "
            f"{max(ms):.2f} | {len(ms)} |")
    if base:
        text += f" {statistics.median(values) / statistics.median(base):.1f}× |"
    else:
        text += " 1.0× |"
    return text


def main() -> None:
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/agora"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    docker_runs = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    resources = "cpus:1000;mem:1000000;disk:100000;ports:[31000-32000]"
    isolation = subprocess.os.environ.get("AGORA_ISOLATION", "auto")
    print(f"isolation: {isolation}")
    print("| launch | median ms | p99 ms | max ms | runs | median ratio |")
    print("|---|---|---|---|---|---|")
    base = fork_exec(runs, ["/bin/sleep", "1000"])
    print(row("fork+exec `sleep 1000`", base))
    with agora_up(binary, "--resources", resources, "--allocation-interval", "20ms") as port:
        scheduler = Scheduler(port)
        scheduler.launch()  # warm-up: the launcher, page cache
        seen = [scheduler.launch()[0] for _ in range(runs)]
        agent_side = staging_to_running(port)[1:]
        print(row("agora task, agent side (STAGING → RUNNING)", agent_side, base))
        print(row("agora task, scheduler side (ACCEPT → RUNNING)", seen, base))
        if docker_runs > 0:
            docker_base = docker_run(docker_runs)
            print(row("`docker run -d` busybox `sleep 1000`", docker_base))
            container = {"type": "DOCKER", "docker": {"image": IMAGE, "network": "HOST"}}
            scheduler.launch(container)
            docker_seen = [scheduler.launch(container)[0] for _ in range(docker_runs)]
            print(row("agora Docker task, scheduler side (ACCEPT → RUNNING)", docker_seen, docker_base))


if __name__ == "__main__":
    main()
