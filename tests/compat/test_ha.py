"""Real clients against masters elected in ZooKeeper: Debian's ZooKeeper started here on a
loopback port, two `agora master --zk` processes and an `agora agent --master zk://...`.

- pymesos 0.3.15 given `zk://` finds the leader through kazoo (its MasterDetector), and when
  the leader is killed re-subscribes to the new one under the same framework id, its offers
  coming again;
- the `marathon` and `chronos` clients pointed at the standby work: the standby proxies.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import chronos
import pytest
from marathon import MarathonApp, MarathonClient

from pymesos import MesosSchedulerDriver

from compat_util import RecordingScheduler, framework_info, get, register, stop_driver
from conftest import READY_RE, REPO, _die_with_parent, _kill, agora_bin, http_get

sys.path.insert(0, str(REPO / "scripts"))
from zookeeper import start_zookeeper  # noqa: E402  (the scripts' harness, shared)

WAIT = 30.0


class Node:
    def __init__(self, proc, port, name, log):
        self.proc, self.port, self.name, self.log = proc, port, name, log

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "http://" + self.address

    def state_status(self):
        """The status of /master/state, not following a standby's redirect."""
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            conn.sendall(b"GET /master/state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = conn.recv(64).decode("latin-1")
        finally:
            conn.close()
        return int(head.split()[1])


def start_node(tmp_path, name, args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    env.setdefault("NO_COLOR", "1")
    out_path, err_path = tmp_path / (name + ".stdout"), tmp_path / (name + ".stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [str(agora_bin()), *args, "--port", "0", "--bind", "127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=str(tmp_path), env=env,
            start_new_session=True, preexec_fn=_die_with_parent)
    deadline = time.monotonic() + WAIT
    while True:
        m = READY_RE.search(out_path.read_text(errors="replace"))
        if m:
            return Node(proc, int(m.group(2)), name, err_path)
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill(proc)
            pytest.fail("%s did not start:\n%s" % (name, err_path.read_text(errors="replace")),
                        pytrace=False)
        time.sleep(0.02)


def wait_for(what, check, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.1)


def leads(node):
    try:
        return node.state_status() == 200
    except OSError:
        return False


@pytest.fixture
def ha(tmp_path):
    """ZooKeeper, two masters (the first leading) and an agent following their leader."""
    zookeeper, zk_port = start_zookeeper(
        str(tmp_path), start_new_session=True, preexec_fn=_die_with_parent)
    zk = "zk://127.0.0.1:%d/agora" % zk_port
    nodes = []
    try:
        master_args = ["--zk", zk, "--zk-session-timeout", "2s"]
        first = start_node(tmp_path, "master-1", ["master", "--data-dir", str(tmp_path / "m1"),
                                                  *master_args])
        nodes.append(first)
        wait_for("the first master to lead", lambda: leads(first))
        second = start_node(tmp_path, "master-2", ["master", "--data-dir", str(tmp_path / "m2"),
                                                   *master_args])
        nodes.append(second)
        agent = start_node(tmp_path, "agent", [
            "agent", "--master", zk, "--work-dir", str(tmp_path / "agent"),
            "--resources", "cpus:4;mem:2048;ports:[33300-33320]",
            "--proxy-http-port", "0", "--dns-port", "0"])
        nodes.append(agent)
        yield zk, first, second
    finally:
        for node in nodes:
            _kill(node.proc)
        _kill(zookeeper)


def test_pymesos_follows_the_leader_through_zookeeper_and_keeps_its_framework_id(ha):
    zk, first, second = ha
    sched = RecordingScheduler()
    framework = dict(framework_info("compat-ha"), failover_timeout=3600.0)
    driver = MesosSchedulerDriver(sched, framework, zk, timeout=30)
    driver.start()
    try:
        framework_id, master_info = register(sched)
        assert master_info["port"] == first.port, master_info
        get(sched.offers, WAIT, "an offer from the first leader", sched)

        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
        wait_for("the standby to lead", lambda: leads(second))
        # pymesos' detector (kazoo) sees the new leader and subscribes there with its id.
        master_info = get(sched.reregistrations, WAIT, "re-registration", sched)
        assert master_info["port"] == second.port, master_info
        offer = get(sched.offers, WAIT, "an offer from the new leader", sched)
        assert offer["framework_id"] == framework_id, offer
        state = json.loads(http_get(second.url + "/master/state")[1])
        active = [f["id"] for f in state["frameworks"] if f.get("active")]
        assert framework_id["value"] in active, state["frameworks"]
        sched.check_errors()
    finally:
        stop_driver(driver, quiet=True)


def test_the_marathon_and_chronos_clients_work_through_a_standby(ha):
    _, first, second = ha
    marathon = MarathonClient(second.url)
    marathon.create_app("ha-app", MarathonApp(cmd="sleep 1000", cpus=0.1, mem=16, instances=1))
    apps = [app.id for app in marathon.list_apps()]
    assert "/ha-app" in apps, apps
    # Created through the standby, it is the leader's.
    status, body = http_get(first.url + "/v2/apps/ha-app")
    assert status == 200, body

    client = chronos.connect([second.address], scheduler_api_version="v1")
    client.add({"name": "ha-job", "command": "true", "schedule": "R/2030-01-01T00:00:00Z/P1D",
                "epsilon": "PT30S", "owner": "ops@example.com", "disabled": False,
                "cpus": 0.1, "mem": 16})
    names = [job["name"] for job in client.list()]
    assert "ha-job" in names, names
    status, body = http_get(first.url + "/scheduler/job/ha-job")
    assert status == 200, body
