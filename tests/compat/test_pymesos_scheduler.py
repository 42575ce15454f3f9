"""An unmodified pymesos 0.3.15 MesosSchedulerDriver against `agora up`.

Everything the driver does goes over the real Mesos v1 scheduler API: SUBSCRIBE (raw socket,
RecordIO stream), ACCEPT/LAUNCH, DECLINE with filters, REVIVE, KILL, ACKNOWLEDGE (implicit),
RECONCILE and TEARDOWN (driver.stop()). What is asserted is Mesos' behaviour, as pymesos and
the reference (shared/reference/mesos-v1-api.md) describe it.
"""

import base64
import queue
import time
import urllib.parse

import pytest

from compat_util import RecordingScheduler, get, register, running_driver, scalar, summarize, task

TERMINAL = {
    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
    "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
}


def assert_agent_update(status, agent_id):
    """An update that came from the agent: it must carry a 16-byte uuid to acknowledge."""
    assert status["agent_id"] == agent_id, status
    assert "uuid" in status, "agent-generated update without uuid: %r" % (status,)
    assert len(base64.b64decode(status["uuid"], validate=True)) == 16, status
    assert status.get("source") == "SOURCE_EXECUTOR", status
    assert isinstance(status.get("timestamp"), (int, float)), status


def assert_torn_down(agora, framework_id):
    """After driver.stop() (TEARDOWN) the master lists the framework as completed."""
    deadline = time.monotonic() + 10
    while True:
        state = agora.get_json("/master/state")
        active = [f["id"] for f in state.get("frameworks", [])]
        done = [f["id"] for f in state.get("completed_frameworks", [])]
        if framework_id not in active and framework_id in done:
            return
        assert time.monotonic() < deadline, (
            "framework %s not torn down: active=%s completed=%s" % (framework_id, active, done)
        )
        time.sleep(0.1)


def test_offers_have_mesos_shape_and_decline_filters_hold_until_revive(agora):
    sched = RecordingScheduler()
    with running_driver(sched, agora.master, "compat-offers") as driver:
        framework_id, master_info = register(sched)
        assert set(framework_id) == {"value"} and framework_id["value"], framework_id
        # pymesos builds master_info from its own /version call and the master address.
        assert master_info["port"] == agora.port
        assert master_info["version"] == "1.11.0", master_info

        offer = sched.next_offer()
        assert offer["framework_id"] == framework_id, offer
        assert set(offer["id"]) == {"value"} and offer["id"]["value"], offer
        assert set(offer["agent_id"]) == {"value"} and offer["agent_id"]["value"], offer
        assert isinstance(offer["hostname"], str) and offer["hostname"], offer
        # pymesos does not set MULTI_ROLE or RESERVATION_REFINEMENT: no allocation_info, and
        # resources in the "pre-refinement" format with a `role`.
        assert "allocation_info" not in offer, offer
        resources = {r["name"]: r for r in offer["resources"]}
        assert sorted(resources) == ["cpus", "disk", "mem", "ports"], offer["resources"]
        assert resources["cpus"] == {
            "name": "cpus", "type": "SCALAR", "scalar": {"value": 4.0}, "role": "*"
        }
        assert isinstance(resources["cpus"]["scalar"]["value"], float)
        assert resources["mem"] == {
            "name": "mem", "type": "SCALAR", "scalar": {"value": 4096.0}, "role": "*"
        }
        assert resources["ports"] == {
            "name": "ports", "type": "RANGES",
            "ranges": {"range": [{"begin": 31000, "end": 31100}]}, "role": "*",
        }
        disk = resources["disk"]
        assert disk["type"] == "SCALAR" and disk["role"] == "*" and disk["scalar"]["value"] > 0
        for r in offer["resources"]:
            assert "allocation_info" not in r and "reservations" not in r, r

        # Declined with a long filter: the agent must not be offered again (allocation rounds
        # run every second) until the framework revives.
        driver.declineOffer(offer["id"], filters={"refuse_seconds": 3600.0})
        try:
            again = sched.offers.get(timeout=3.5)
        except queue.Empty:
            pass
        else:
            raise AssertionError("offer despite refuse_seconds=3600: %r" % (again,))

        driver.reviveOffers()
        revived = sched.next_offer(timeout=5)
        assert revived["id"] != offer["id"], "offer ids must not be reused"
        assert revived["agent_id"] == offer["agent_id"]
        assert scalar(revived["resources"], "cpus") == 4.0

        # A short filter expires by itself: the resources come back without a REVIVE.
        started = time.monotonic()
        driver.declineOffer(revived["id"], filters={"refuse_seconds": 1.0})
        back = sched.next_offer(timeout=6)
        assert time.monotonic() - started >= 0.9, "offered again before refuse_seconds elapsed"
        assert scalar(back["resources"], "cpus") == 4.0
        assert sched.rescinds.empty()
        sched.check_errors()
    assert_torn_down(agora, framework_id["value"])


def test_command_tasks_run_to_completion_and_their_stdout_is_readable(agora):
    sched = RecordingScheduler()
    n = 5
    with running_driver(sched, agora.master, "compat-tasks") as driver:
        framework_id, _ = register(sched)
        offer = sched.next_offer()
        tasks = [task(offer, "hello-%d" % i, "echo hello-%d" % i) for i in range(n)]
        driver.launchTasks(offer["id"], tasks)

        states = {t["task_id"]["value"]: [] for t in tasks}
        deadline = time.monotonic() + 30
        while any(not s or s[-1] not in TERMINAL for s in states.values()):
            left = deadline - time.monotonic()
            assert left > 0, "tasks did not finish: %s" % summarize(sched.all_updates)
            status = sched.wait_update(lambda s: True, "any", timeout=left)
            tid = status["task_id"]["value"]
            assert tid in states, status
            assert_agent_update(status, offer["agent_id"])
            states[tid].append(status["state"])
        # Reliable, in-order delivery, one update at a time per task (each acknowledged by
        # pymesos' implicit acknowledgements before the next one is sent).
        for tid, seen in states.items():
            assert seen == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], (tid, seen)

        # The sandbox of each command executor (executor id == task id) is in the agent's v0
        # state; its stdout is readable through /files/read.
        state = agora.get_json("/slave(1)/state")
        executors = {}
        for fw in state.get("frameworks", []) + state.get("completed_frameworks", []):
            if fw["id"] != framework_id["value"]:
                continue
            for ex in fw.get("executors", []) + fw.get("completed_executors", []):
                executors[ex["id"]] = ex
        assert sorted(executors) == sorted(states), executors
        for i in range(n):
            directory = executors["hello-%d" % i]["directory"]
            path = urllib.parse.quote(directory + "/stdout")
            data = agora.get_json("/files/read?path=%s&offset=0" % path)
            assert data["offset"] == 0, data
            assert "hello-%d\n" % i in data["data"], data
            others = ["hello-%d\n" % j for j in range(n) if j != i]
            assert not any(o in data["data"] for o in others), data
            # offset=-1 is how tools learn the size (the web UI's pailer does this).
            size = agora.get_json("/files/read?path=%s&offset=-1" % path)
            assert size == {"offset": len(data["data"].encode()), "data": ""}, size
        sched.check_errors()
    assert_torn_down(agora, framework_id["value"])


def test_kill_and_reconcile(agora):
    sched = RecordingScheduler()
    with running_driver(sched, agora.master, "compat-kill") as driver:
        framework_id, _ = register(sched)
        offer = sched.next_offer()
        driver.launchTasks(offer["id"], [task(offer, "long-1", "sleep 60")])
        running = sched.wait_update(
            lambda s: s["state"] in {"TASK_RUNNING"} | TERMINAL, "long-1 running")
        assert running["state"] == "TASK_RUNNING", summarize(sched.all_updates)
        assert_agent_update(running, offer["agent_id"])

        # Implicit reconciliation: the latest state of every non-terminal task, from the master.
        driver.reconcileTasks([])
        rec = sched.wait_update(
            lambda s: s.get("reason") == "REASON_RECONCILIATION", "implicit reconciliation")
        assert rec["task_id"] == {"value": "long-1"}, rec
        assert rec["state"] == "TASK_RUNNING", rec
        assert rec.get("source") == "SOURCE_MASTER", rec
        assert "uuid" not in rec, "master-generated updates must not be acknowledged: %r" % rec

        # Explicit reconciliation: a known task gets its state, an unknown one TASK_LOST (the
        # framework is not PARTITION_AWARE, so not TASK_UNKNOWN/TASK_GONE).
        driver.reconcileTasks([{"task_id": {"value": "long-1"}},
                               {"task_id": {"value": "no-such-task"}}])
        got = {}
        while len(got) < 2:
            s = sched.wait_update(
                lambda s: s.get("reason") == "REASON_RECONCILIATION", "explicit reconciliation")
            got[s["task_id"]["value"]] = s
        assert got["long-1"]["state"] == "TASK_RUNNING", got
        assert got["no-such-task"]["state"] == "TASK_LOST", got
        assert all("uuid" not in s for s in got.values()), got

        # Kill: TASK_KILLED, and no TASK_KILLING (pymesos lacks TASK_KILLING_STATE).
        started = time.monotonic()
        driver.killTask({"value": "long-1"})
        killed = sched.wait_update(
            lambda s: s["task_id"]["value"] == "long-1" and s["state"] in TERMINAL, "long-1 killed")
        assert killed["state"] == "TASK_KILLED", summarize(sched.all_updates)
        assert_agent_update(killed, offer["agent_id"])
        assert time.monotonic() - started < 10, "kill took too long"
        states = [s["state"] for s in sched.all_updates if s["task_id"]["value"] == "long-1"]
        assert "TASK_KILLING" not in states, states
        sched.check_errors()
    assert_torn_down(agora, framework_id["value"])


def test_framework_failover_keeps_its_tasks(agora):
    # First driver: launch a task, then stop with failover=True (no TEARDOWN): the framework
    # stays registered for its failover_timeout (pymesos sets 100 s) and keeps its tasks.
    sched = RecordingScheduler()
    with running_driver(sched, agora.master, "compat-failover", failover=True) as driver:
        framework_id, _ = register(sched)
        offer = sched.next_offer()
        driver.launchTasks(offer["id"], [task(offer, "survivor", "sleep 60")])
        running = sched.wait_update(
            lambda s: s["state"] in {"TASK_RUNNING"} | TERMINAL, "survivor running")
        assert running["state"] == "TASK_RUNNING", summarize(sched.all_updates)
        sched.check_errors()

    fid = framework_id["value"]
    deadline = time.monotonic() + 10
    while True:
        state = agora.get_json("/master/state")
        fw = [f for f in state.get("frameworks", []) if f["id"] == fid]
        assert len(fw) == 1, "framework gone after failover stop: %s" % state.get("frameworks")
        if fw[0].get("connected") is False:
            break
        assert time.monotonic() < deadline, "framework still connected: %r" % fw[0]
        time.sleep(0.1)
    assert fw[0].get("active") is False, fw[0]
    assert [t["id"] for t in fw[0].get("tasks", [])] == ["survivor"], fw[0]

    # A new driver with the framework id re-subscribes: pymesos calls reregistered().
    sched2 = RecordingScheduler()
    with running_driver(sched2, agora.master, "compat-failover", framework_id=fid) as driver2:
        master_info = get(sched2.reregistrations, 20, "re-registration", sched2)
        assert master_info["port"] == agora.port
        assert sched2.registrations.empty()
        driver2.reconcileTasks([{"task_id": {"value": "survivor"}}])
        rec = sched2.wait_update(
            lambda s: s.get("reason") == "REASON_RECONCILIATION", "reconciliation")
        assert rec["task_id"] == {"value": "survivor"} and rec["state"] == "TASK_RUNNING", rec
        driver2.killTask({"value": "survivor"})
        killed = sched2.wait_update(
            lambda s: s["task_id"]["value"] == "survivor" and s["state"] in TERMINAL, "killed")
        assert killed["state"] == "TASK_KILLED", summarize(sched2.all_updates)
        sched2.check_errors()
    assert_torn_down(agora, fid)


def test_explicit_acknowledgements_gate_the_next_update(agora):
    # With implicit_acknowledgements=False the agent must not send a task's next update before
    # the previous one is acknowledged (retries start only after --status-update-retry, 10 s).
    sched = RecordingScheduler()
    with running_driver(sched, agora.master, "compat-acks",
                        implicit_acknowledgements=False) as driver:
        framework_id, _ = register(sched)
        offer = sched.next_offer()
        driver.launchTasks(offer["id"], [task(offer, "acked", "echo acked")])
        expected = ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
        for n, state in enumerate(expected):
            status = sched.wait_update(lambda s: True, state)
            assert status["task_id"] == {"value": "acked"}, status
            assert status["state"] == state, summarize(sched.all_updates)
            assert_agent_update(status, offer["agent_id"])
            if n == 0:
                # Unacknowledged: nothing else may arrive for this task.
                try:
                    extra = sched.updates.get(timeout=1.5)
                except queue.Empty:
                    pass
                else:
                    raise AssertionError("update before the ACKNOWLEDGE: %r" % (extra,))
            driver.acknowledgeStatusUpdate(status)
        sched.check_errors()
    assert_torn_down(agora, framework_id["value"])


@pytest.mark.agora_args("--heartbeat-interval", "300ms")
def test_heartbeats_reach_the_scheduler(agora):
    sched = RecordingScheduler()
    with running_driver(sched, agora.master, "compat-heartbeat"):
        register(sched)
        first = get(sched.heartbeats, 5, "HEARTBEAT")
        second = get(sched.heartbeats, 5, "second HEARTBEAT")
        assert second > first
        sched.check_errors()


def test_used_offers_are_harmless_to_decline_and_fail_launches(agora):
    # Frameworks race with rescinds and their own earlier calls: a stale offer id is not an HTTP
    # error (pymesos would raise on a non-2xx), declining is a no-op, and launching on it gives
    # each task TASK_LOST / REASON_INVALID_OFFERS from the master (not PARTITION_AWARE).
    sched = RecordingScheduler()
    with running_driver(sched, agora.master, "compat-stale-offers") as driver:
        framework_id, _ = register(sched)
        offer = sched.next_offer()
        driver.declineOffer(offer["id"], filters={"refuse_seconds": 3600.0})
        driver.declineOffer(offer["id"])  # again: still 202
        driver.launchTasks(offer["id"], [task(offer, "too-late", "echo never")])
        lost = sched.wait_update(lambda s: True, "too-late lost")
        assert lost["task_id"] == {"value": "too-late"}, lost
        assert lost["state"] == "TASK_LOST", lost
        assert lost.get("reason") == "REASON_INVALID_OFFERS", lost
        assert lost.get("source") == "SOURCE_MASTER", lost
        assert "uuid" not in lost, lost
        state = agora.get_json("/master/state")
        fw = [f for f in state["frameworks"] if f["id"] == framework_id["value"]]
        assert fw and not fw[0].get("tasks"), fw
        sched.check_errors()
    assert_torn_down(agora, framework_id["value"])
