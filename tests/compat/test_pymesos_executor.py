"""A custom executor on pymesos' MesosExecutorDriver (executor.py), driven by a pymesos scheduler.

Round trip per task: LAUNCH -> executor sends TASK_RUNNING and a framework message -> the
scheduler's frameworkMessage replies with driver.sendFrameworkMessage(executor_id, agent_id, data)
-> the executor's frameworkMessage finishes the task with TASK_FINISHED carrying data. A second
task with the same executor id must go to the same, already running executor process.

`data` fields (TaskInfo.data, TaskStatus.data, MESSAGE data) are base64 on the wire; pymesos
passes them through as base64 strings, so both sides use pymesos.encode_data/decode_data.
"""

import json
import os
import sys
import time
from pathlib import Path

from pymesos import decode_data, encode_data

from compat_util import RecordingScheduler, get, register, running_driver, summarize
from executor import FINISHED_MESSAGE

EXECUTOR_ID = "compat-executor"
EXECUTOR_PY = Path(__file__).resolve().parent / "executor.py"
TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
            "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"}


def unpack(data):
    return json.loads(decode_data(data).decode("utf-8"))


def pack(obj):
    return encode_data(json.dumps(obj).encode("utf-8"))


def executor_info():
    # The same ExecutorInfo for every task: Mesos requires an identical one to reuse a running
    # executor. sys.executable is the venv's python, which has pymesos.
    return {
        "executor_id": {"value": EXECUTOR_ID},
        "name": "pymesos compat executor",
        "command": {"value": "%s %s" % (sys.executable, EXECUTOR_PY)},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 64.0}},
        ],
    }


def task(offer, task_id):
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "executor": executor_info(),
        "data": encode_data(("payload-" + task_id).encode("utf-8")),
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32.0}},
        ],
    }


def process_gone(pid):
    """True if pid no longer exists or is a zombie."""
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def container_pid(agora, executor_id):
    """The host pid of an executor's container (its init, which lives as long as the executor):
    the executor's own os.getpid() is its pid inside the container's pid namespace."""
    for container in agora.get_json("/containers"):
        if container["executor_id"] == executor_id:
            return container["status"]["executor_pid"]
    raise AssertionError("no container for executor %s" % executor_id)


def replying_scheduler(actions):
    """A RecordingScheduler whose frameworkMessage answers each executor "hello".

    actions: task id -> "finish" (default) | "exit" | "wait", passed to the executor.
    """
    sched = RecordingScheduler()
    sched.replies = []

    def reply(driver, executor_id, agent_id, data):
        # Runs on the driver's thread, as a real framework's frameworkMessage would.
        msg = unpack(data)
        if msg.get("type") == "hello":
            payload = "pong-" + msg["task"]
            sched.replies.append(payload)
            driver.sendFrameworkMessage(executor_id, agent_id, pack({
                "type": "reply", "task": msg["task"], "payload": payload,
                "action": actions.get(msg["task"], "finish"),
            }))

    sched.on_message = reply
    return sched


def launch_and_greet(sched, driver, offer, task_id):
    """Launches task_id on the executor; returns (RUNNING info, hello message)."""
    driver.launchTasks(offer["id"], [task(offer, task_id)], filters={"refuse_seconds": 1.0})
    running = sched.wait_update(
        lambda s: s["task_id"]["value"] == task_id and s["state"] in {"TASK_RUNNING"} | TERMINAL,
        "%s running" % task_id)
    assert running["state"] == "TASK_RUNNING", summarize(sched.all_updates)
    assert running["agent_id"] == offer["agent_id"], running
    assert running.get("source") == "SOURCE_EXECUTOR", running
    assert running.get("executor_id") == {"value": EXECUTOR_ID}, running
    info = unpack(running["data"])
    assert info["task"] == task_id
    # TaskInfo.data reached the executor unchanged.
    assert decode_data(info["task_data"]) == ("payload-" + task_id).encode(), info

    executor_id, agent_id, data = get(sched.messages, 20, "framework message", sched)
    assert executor_id == {"value": EXECUTOR_ID}
    assert agent_id == offer["agent_id"]
    hello = unpack(data)
    assert hello == {"type": "hello", "task": task_id, "pid": info["pid"]}
    return info


def next_offer_with_executor(sched, agent_id):
    offer = sched.next_offer()
    assert offer["agent_id"] == agent_id
    # Offers list the framework's executors running on that agent.
    assert {"value": EXECUTOR_ID} in offer.get("executor_ids", []), offer
    return offer


def test_custom_executor_message_round_trip_and_executor_reuse(agora):
    sched = replying_scheduler({"exec-task-kill": "wait"})
    results = {}
    with running_driver(sched, agora.master, "compat-executor") as driver:
        framework_id, _ = register(sched)
        offer = sched.next_offer()
        assert not offer.get("executor_ids"), offer
        agent_id = offer["agent_id"]

        for n, task_id in enumerate(["exec-task-1", "exec-task-2"]):
            if n > 0:
                offer = next_offer_with_executor(sched, agent_id)
            info = launch_and_greet(sched, driver, offer, task_id)
            finished = sched.wait_update(
                lambda s: s["task_id"]["value"] == task_id and s["state"] in TERMINAL,
                "%s finished" % task_id)
            assert finished["state"] == "TASK_FINISHED", summarize(sched.all_updates)
            assert finished.get("message") == FINISHED_MESSAGE, finished
            done = unpack(finished["data"])
            assert done == {"task": task_id, "pid": info["pid"], "reply": "pong-" + task_id}
            results[task_id] = info

        first, second = results["exec-task-1"], results["exec-task-2"]
        # Both tasks went to the one executor process that was started for the first.
        assert first["pid"] == second["pid"], (first, second)
        assert sched.replies == ["pong-exec-task-1", "pong-exec-task-2"]
        pid = first["pid"]
        host_pid = container_pid(agora, EXECUTOR_ID)
        assert not process_gone(host_pid)

        # A task of a custom executor is killed by the executor (KILL event -> TASK_KILLED).
        offer = next_offer_with_executor(sched, agent_id)
        info = launch_and_greet(sched, driver, offer, "exec-task-kill")
        assert info["pid"] == pid
        driver.killTask({"value": "exec-task-kill"})
        killed = sched.wait_update(
            lambda s: s["task_id"]["value"] == "exec-task-kill" and s["state"] in TERMINAL,
            "exec-task-kill killed")
        assert killed["state"] == "TASK_KILLED", summarize(sched.all_updates)
        assert killed.get("source") == "SOURCE_EXECUTOR", killed

        # The executor's environment and process (what pymesos' executor driver relies on).
        env = first["env"]
        assert env["MESOS_FRAMEWORK_ID"] == framework_id["value"]
        assert env["MESOS_EXECUTOR_ID"] == EXECUTOR_ID
        assert env["MESOS_AGENT_ENDPOINT"] == agora.master, env  # host:port, no scheme
        assert env["MESOS_DIRECTORY"] and os.path.isdir(env["MESOS_DIRECTORY"]), env
        assert env["MESOS_SANDBOX"] == env["MESOS_DIRECTORY"], env
        assert os.path.realpath(first["cwd"]) == os.path.realpath(env["MESOS_DIRECTORY"])
        # Its own process group (pymesos' shutdown does os.killpg(0, SIGKILL)).
        assert first["pgid"] not in (os.getpgid(0), os.getpgid(agora.proc.pid)), first

        # The agent knows exactly one executor for the framework, with that sandbox.
        state = agora.get_json("/slave(1)/state")
        fws = [f for f in state["frameworks"] if f["id"] == framework_id["value"]]
        assert len(fws) == 1, state["frameworks"]
        executors = fws[0]["executors"]
        assert [e["id"] for e in executors] == [EXECUTOR_ID], executors
        assert executors[0]["directory"] == env["MESOS_DIRECTORY"], executors[0]
        assert sched.failures.empty(), sched.failures.get()
        sched.check_errors()

    # driver.stop() sent TEARDOWN: the agent shuts the executor down (SHUTDOWN event; the pymesos
    # executor driver stops and the process exits).
    deadline = time.monotonic() + 15
    while not process_gone(host_pid):
        assert time.monotonic() < deadline, "executor pid %d still alive after TEARDOWN" % host_pid
        time.sleep(0.1)
    stderr = (Path(env["MESOS_DIRECTORY"]) / "stderr").read_text()
    assert "INFO compat-executor: shutdown" in stderr, stderr[-2000:]


def test_executor_exit_is_reported_as_executor_lost(agora):
    sched = replying_scheduler({"doomed": "exit"})
    with running_driver(sched, agora.master, "compat-executor-exit") as driver:
        register(sched)
        offer = sched.next_offer()
        info = launch_and_greet(sched, driver, offer, "doomed")
        host_pid = container_pid(agora, EXECUTOR_ID)

        # The executor exits (status 3) with its task still running: the scheduler gets a
        # FAILURE event for the executor (pymesos -> executorLost, which reads `status`) ...
        kind, executor_id, agent_id, status = get(sched.failures, 20, "executorLost", sched)
        assert (kind, executor_id, agent_id) == ("executor", {"value": EXECUTOR_ID},
                                                 offer["agent_id"])
        assert isinstance(status, int) and status != 0, status
        # ... and the task ends with a failure state from the agent.
        failed = sched.wait_update(
            lambda s: s["task_id"]["value"] == "doomed" and s["state"] in TERMINAL,
            "doomed terminal")
        assert failed["state"] in ("TASK_FAILED", "TASK_LOST"), failed
        assert "uuid" in failed, failed  # from the agent: must be acknowledged
        assert process_gone(host_pid), info
        sched.check_errors()
