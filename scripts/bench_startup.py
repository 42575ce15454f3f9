#!/usr/bin/env python3
"""Measures `agora up` from process start to the first `/health` 200 and to the first active
agent, over several runs, and prints min / median / max in milliseconds.

    cargo build --release -p agora && python3 scripts/bench_startup.py target/release/agora
"""
import http.client
import json
import statistics
import sys
import time

from agora_up import agora_up


def measure(binary: str) -> tuple[float, float]:
    started = time.perf_counter()
    with agora_up(binary) as port:
        healthy = agent = None
        deadline = started + 10
        while time.perf_counter() < deadline and agent is None:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                if healthy is None:
                    connection.request("GET", "/health")
                    if connection.getresponse().status == 200:
                        healthy = time.perf_counter() - started
                else:
                    connection.request("GET", "/master/state")
                    state = json.loads(connection.getresponse().read())
                    if state["activated_slaves"] >= 1:
                        agent = time.perf_counter() - started
                connection.close()
            except OSError:
                pass
            time.sleep(0.001)
        if healthy is None or agent is None:
            raise RuntimeError("agora up did not become ready within 10 s")
        return healthy * 1000, agent * 1000


def main() -> None:
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/agora"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    results = [measure(binary) for _ in range(runs)]
    for name, values in (("start → /health 200", [r[0] for r in results]), ("start → agent active", [r[1] for r in results])):
        print(f"{name}: min {min(values):.1f} ms, median {statistics.median(values):.1f} ms, max {max(values):.1f} ms ({runs} runs)")


if __name__ == "__main__":
    main()
