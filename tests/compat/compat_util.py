"""Helpers shared by the pymesos tests: a recording Scheduler and bounded waits."""

import contextlib
import getpass
import queue
import threading
import time

from pymesos import MesosSchedulerDriver, Scheduler

WAIT = 20.0  # default bound for any single wait on the cluster


class RecordingScheduler(Scheduler):
    """Puts every callback's arguments on a queue; the test thread consumes them."""

    def __init__(self):
        self.registrations = queue.Queue()
        self.reregistrations = queue.Queue()
        self.offers = queue.Queue()
        self.rescinds = queue.Queue()
        self.updates = queue.Queue()
        self.messages = queue.Queue()
        self.errors = queue.Queue()
        # ("executor", executor_id, agent_id, status) or ("agent", agent_id)
        self.failures = queue.Queue()
        self.all_updates = []  # every status, in arrival order, for assertions and reports
        self.on_message = None  # optional hook: fn(driver, executor_id, agent_id, data)
        self.heartbeats = queue.Queue()

    def registered(self, driver, framework_id, master_info):
        self.registrations.put((framework_id, master_info))

    def reregistered(self, driver, master_info):
        self.reregistrations.put(master_info)

    def resourceOffers(self, driver, offers):
        for offer in offers:
            self.offers.put(offer)

    def offerRescinded(self, driver, offer_id):
        self.rescinds.put(offer_id)

    def statusUpdate(self, driver, status):
        self.all_updates.append(status)
        self.updates.put(status)

    def frameworkMessage(self, driver, executor_id, agent_id, data):
        self.messages.put((executor_id, agent_id, data))
        if self.on_message is not None:
            self.on_message(driver, executor_id, agent_id, data)

    def executorLost(self, driver, executor_id, agent_id, status):
        self.failures.put(("executor", executor_id, agent_id, status))

    def slaveLost(self, driver, agent_id):
        self.failures.put(("agent", agent_id))

    def processHeartBeat(self, driver):
        self.heartbeats.put(time.monotonic())

    def error(self, driver, message):
        self.errors.put(message)

    # --- waits -------------------------------------------------------------------------------

    def check_errors(self):
        try:
            err = self.errors.get_nowait()
        except queue.Empty:
            return
        raise AssertionError("scheduler got an ERROR event: %r" % (err,))

    def next_offer(self, timeout=WAIT):
        return get(self.offers, timeout, "an offer", self)

    def wait_update(self, pred, what, timeout=WAIT, keep=None):
        """Returns the first status update satisfying pred; others go to `keep` (a list)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    "no status update matching %s within %ss; updates seen: %s"
                    % (what, timeout, summarize(self.all_updates))
                )
            try:
                status = self.updates.get(timeout=min(left, 0.5))
            except queue.Empty:
                self.check_errors()
                continue
            if pred(status):
                return status
            if keep is not None:
                keep.append(status)


def get(q, timeout, what, sched=None):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no %s within %ss" % (what, timeout))
        try:
            return q.get(timeout=min(left, 0.5))
        except queue.Empty:
            if sched is not None:
                sched.check_errors()


def summarize(updates):
    return [
        (u.get("task_id", {}).get("value"), u.get("state"), u.get("reason"), u.get("message"))
        for u in updates
    ]


def scalar(resources, name):
    return sum(r["scalar"]["value"] for r in resources if r["name"] == name)


def wait_for(what, check, timeout=WAIT):
    """`check()`'s first true value, polled until `timeout`; else the test fails naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s" % what)


def task(offer, task_id, cmd, cpus=0.1, mem=32.0):
    """A command task on `offer`'s agent, as pymesos' launchTasks takes it."""
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
        ],
        "command": {"value": cmd},
    }


def framework_info(name, framework_id=None):
    info = {"user": getpass.getuser(), "name": name, "hostname": "localhost"}
    if framework_id is not None:
        info["id"] = {"value": framework_id}
    return info


@contextlib.contextmanager
def running_driver(sched, master, name, framework_id=None, failover=False, join_timeout=15.0,
                   **driver_kwargs):
    """Starts an unmodified MesosSchedulerDriver; on exit stops it and joins it.

    driver.stop() sends TEARDOWN unless `failover` (then the framework stays registered and a
    new driver can re-subscribe with its id, given as `framework_id`). pymesos' HTTP timeout is
    its `timeout` argument (default: a day), so a short one keeps every call bounded.
    driver_kwargs go to MesosSchedulerDriver (e.g. implicit_acknowledgements=False).
    """
    driver = MesosSchedulerDriver(
        sched, framework_info(name, framework_id), master, timeout=30, **driver_kwargs)
    driver.start()
    try:
        yield driver
    except BaseException:
        stop_driver(driver, join_timeout, quiet=True)
        raise
    stop_driver(driver, join_timeout, failover=failover)


def stop_driver(driver, join_timeout=15.0, quiet=False, failover=False):
    """driver.stop() (TEARDOWN unless failover) and a bounded driver.join(); idempotent."""
    driver.stop(failover=failover)
    joiner = threading.Thread(target=driver.join, daemon=True)
    joiner.start()
    joiner.join(join_timeout)
    if joiner.is_alive() and not quiet:
        raise AssertionError("pymesos driver thread did not stop within %ss" % join_timeout)


def register(sched, timeout=WAIT):
    framework_id, master_info = get(sched.registrations, timeout, "registration", sched)
    return framework_id, master_info
