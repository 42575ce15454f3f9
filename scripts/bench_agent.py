#!/usr/bin/env python3
"""What a running task costs the agent, and what its executor costs: a real master and a real
agent (separate processes, release build), one Marathon app of N instances (`sleep`), the
agent's memory (RSS and PSS), descriptors and threads before and with the tasks running, and
the two processes agora runs beside each task — the executor and the container process that
made its namespaces and cgroup — each with its PSS, RSS, descriptors and threads (the task's
own `sleep` is not counted).

    cargo build --release -p agora
    python3 scripts/bench_agent.py target/release/agora --tasks 1000

PSS (proportional set size, /proc/PID/smaps_rollup) shares each page among the processes that
map it: the executors all map one binary, so their PSS is what each adds, where RSS counts the
shared pages in every one of them.
"""
import argparse
import json
import os
import shutil
import tempfile
import time

from agora_up import call_json, start_role, wait_until


def kb(pid, field, path="status"):
    with open("/proc/%d/%s" % (pid, path)) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def usage(pid):
    """RSS and PSS in KB, open descriptors and threads of one process."""
    return {
        "rss_kb": kb(pid, "VmRSS"),
        "pss_kb": kb(pid, "Pss", "smaps_rollup"),
        "fds": len(os.listdir("/proc/%d/fd" % pid)),
        "threads": kb(pid, "Threads"),
    }


def processes():
    """Every process: pid → (parent pid, argv)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                argv = f.read().split(b"\0")
            with open("/proc/%s/stat" % entry) as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry)] = (parent, argv)
    return found


def per_task_processes():
    """For each running task (a `sleep`): its executor (the task's parent) and the executor's
    container process (its parent, which made the task's namespaces and cgroup). The agent's
    executor launcher and the warm containers made ahead of tasks are not counted."""
    table = processes()
    pairs = []
    for pid, (parent, argv) in table.items():
        executor = table.get(parent, (0, []))[1]
        if argv and argv[0].endswith(b"sleep") and executor[1:2] == [b"executor"]:
            pairs.append((parent, table[parent][0]))
    return pairs


def executors():
    """Every `agora executor` process (the launcher, containers, executors)."""
    return [pid for pid, (_, argv) in processes().items()
            if len(argv) > 1 and argv[1] == b"executor"]


def mean(rows):
    return {key: round(sum(row[key] for row in rows) / max(len(rows), 1), 1)
            for key in ("rss_kb", "pss_kb", "fds", "threads")}


def settle(pid, seconds=15.0):
    """The agent's usage once it has been quiet a while (its RSS unchanged for `seconds`: more
    than the 10 s an idle thread of tokio's blocking pool lives, so the threads that launched
    the tasks are gone)."""
    last, since = None, time.monotonic()
    while time.monotonic() - since < seconds:
        now = usage(pid)["rss_kb"]
        if now != last:
            last, since = now, time.monotonic()
        time.sleep(0.5)
    return usage(pid)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-agent-", dir=args.dir)
    processes = []
    try:
        master, port = start_role(args.binary, [
            "master", "--port", "0", "--data-dir", os.path.join(root, "master")])
        processes.append(master)
        agent, _ = start_role(args.binary, [
            "agent", "--master", "127.0.0.1:%d" % port, "--port", "0",
            "--work-dir", os.path.join(root, "agent"),
            "--resources", "cpus:1000;mem:1000000;disk:1000000;ports:[31000-32000]"])
        processes.append(agent)
        wait_until("the agent", lambda: call_json(port, "GET", "/metrics/snapshot")
                   .get("master/slaves_active") == 1)
        before = settle(agent.pid)
        idle = len(executors())  # the launcher and the warm containers
        app = {"id": "/bench", "cmd": "exec sleep 3600", "cpus": 0.01, "mem": 1,
               "instances": args.tasks}
        started = time.monotonic()
        call_json(port, "POST", "/v2/apps", app)
        wait_until("every task running",
                   lambda: call_json(port, "GET", "/v2/apps/bench")["app"]["tasksRunning"]
                   == args.tasks)
        running_s = time.monotonic() - started
        after = settle(agent.pid)
        pairs = per_task_processes()
        executor_use = [usage(executor) for executor, _ in pairs]
        container_use = [usage(container) for _, container in pairs]
        out = {
            "tasks": args.tasks,
            "all_running_s": round(running_s, 1),
            "agent_before": before,
            "agent_with_tasks": after,
            "agent_per_task": {
                "rss_kb": round((after["rss_kb"] - before["rss_kb"]) / args.tasks, 1),
                "pss_kb": round((after["pss_kb"] - before["pss_kb"]) / args.tasks, 1),
                "fds": round((after["fds"] - before["fds"]) / args.tasks, 2),
                "threads": round((after["threads"] - before["threads"]) / args.tasks, 3),
            },
            "tasks_seen": len(pairs),
            "executor_mean": mean(executor_use),
            "container_process_mean": mean(container_use),
        }
        print(json.dumps(out, indent=2), flush=True)
        call_json(port, "DELETE", "/v2/apps/bench")
        # Stopping the agent sooner would leave the executors waiting for it to come back.
        wait_until("the executors gone", lambda: len(executors()) <= idle, timeout=300)
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=60)
            except Exception:
                process.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
