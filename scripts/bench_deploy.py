#!/usr/bin/env python3
"""Deploys one app of N instances (tasks that sleep) on `agora up` with a large resource override
and reports the time from the POST to every instance running, and the deployment throughput in
tasks per second. Each run uses a fresh data dir under $TMPDIR (so `TMPDIR=/dev/shm` puts the
agent's sandboxes on tmpfs); the cluster is stopped afterwards.

    cargo build --release -p agora && python3 scripts/bench_deploy.py target/release/agora 1000 3
"""
import http.client
import json
import statistics
import sys
import time

from agora_up import agora_up


def request(port: int, method: str, path: str, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    payload = json.dumps(body) if body is not None else None
    connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, (json.loads(data) if data else None)


def running_and_deployments(port: int) -> tuple[int, int]:
    _, app = request(port, "GET", "/v2/apps/bench")
    return app["app"]["tasksRunning"], len(app["app"]["deployments"])


def measure(binary: str, instances: int) -> float:
    resources = "cpus:1000;mem:1000000;disk:1000000;ports:[31000-32000]"
    with agora_up(binary, "--resources", resources) as port:
        deadline = time.perf_counter() + 10
        while True:
            _, state = request(port, "GET", "/master/state")
            if state["activated_slaves"] >= 1 and any(
                    f["name"] == "marathon" for f in state["frameworks"]):
                break
            if time.perf_counter() > deadline:
                raise RuntimeError("agora up did not become ready")
            time.sleep(0.01)
        app = {"id": "/bench", "cmd": "exec sleep 3600", "cpus": 0.01, "mem": 1,
               "instances": instances}
        started = time.perf_counter()
        status, body = request(port, "POST", "/v2/apps", app)
        if status != 201:
            raise RuntimeError(f"POST /v2/apps answered {status}: {body}")
        while True:
            running, deployments = running_and_deployments(port)
            if running == instances and deployments == 0:
                return time.perf_counter() - started
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"only {running} of {instances} running after 600 s")
            time.sleep(0.02)


def main() -> None:
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/agora"
    instances = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    times = [measure(binary, instances) for _ in range(runs)]
    rates = [instances / t for t in times]
    print(f"{instances} instances, POST → all running: min {min(times):.2f} s, "
          f"median {statistics.median(times):.2f} s, max {max(times):.2f} s ({runs} runs)")
    print(f"throughput: median {statistics.median(rates):.0f} tasks/s")


if __name__ == "__main__":
    main()
