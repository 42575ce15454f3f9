"""Authentication with the unmodified clients: pymesos with a principal and secret, the
`marathon` client with a user and password (and a bearer token), the `chronos` client with a
user and password. Wrong or missing credentials are refused (401) and change nothing."""

import base64
import json
import urllib.error
import urllib.request

import chronos
import pytest
from marathon import MarathonClient
from marathon.exceptions import MarathonHttpError
from marathon.models import MarathonApp
from pymesos import MesosSchedulerDriver

from compat_util import RecordingScheduler, register, stop_driver, task
from conftest import start_agora, stop_agora

CREDENTIALS = {"credentials": [
    {"principal": "ops", "secret": "ops-secret"},
    {"principal": "analytics", "secret": "analytics-secret"},
]}


@pytest.fixture
def secured(tmp_path):
    """`agora up` that authenticates everything: frameworks, agents, reads and writes."""
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(CREDENTIALS))
    path.chmod(0o600)
    node = start_agora(tmp_path, (
        "--credentials", str(path),
        "--authenticate-frameworks", "--authenticate-agents",
        "--authenticate-http-readwrite", "--authenticate-http-readonly",
    ))
    yield node
    problem = stop_agora(node)
    assert problem is None, problem


def request(node, method, path, body=None, auth=None):
    """-> (status, headers, parsed body)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    req = urllib.request.Request(node.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read()
            return resp.status, resp.headers, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text.decode(errors="replace")
        return e.code, e.headers, parsed


def basic(principal, secret):
    return "Basic " + base64.b64encode(("%s:%s" % (principal, secret)).encode()).decode()


def test_pymesos_with_principal_and_secret(secured):
    sched = RecordingScheduler()
    framework = {"user": "root", "name": "authenticated", "principal": "analytics",
                 "failover_timeout": 60.0}
    driver = MesosSchedulerDriver(sched, framework, secured.master, timeout=30,
                                  principal="analytics", secret="analytics-secret")
    driver.start()
    try:
        framework_id, _ = register(sched)
        offer = sched.next_offer()
        driver.launchTasks(offer["id"], [task(offer, "authenticated-task", "echo hello")])
        sched.wait_update(lambda s: s["state"] == "TASK_FINISHED", "the task finished")
    finally:
        stop_driver(driver)
    state = json.loads(
        urllib.request.urlopen(urllib.request.Request(
            secured.url + "/master/state",
            headers={"Authorization": basic("ops", "ops-secret")}), timeout=10).read())
    names = {f["id"]: f for f in state["frameworks"] + state["completed_frameworks"]}
    assert names[framework_id["value"]]["principal"] == "analytics"


def test_pymesos_with_a_wrong_secret_is_refused(secured):
    sched = RecordingScheduler()
    framework = {"user": "root", "name": "intruder", "principal": "analytics"}
    driver = MesosSchedulerDriver(sched, framework, secured.master, timeout=10,
                                  principal="analytics", secret="guessed")
    driver.start()
    try:
        # pymesos hands its subscription thread's failure to the main thread.
        with pytest.raises(RuntimeError, match="401"):
            register(sched, timeout=5)
    finally:
        stop_driver(driver, quiet=True)
    _, _, frameworks = request(secured, "GET", "/master/frameworks",
                               auth=basic("ops", "ops-secret"))
    assert "intruder" not in [f["name"] for f in frameworks["frameworks"]]


def test_marathon_client_with_user_and_password_or_token(secured):
    client = MarathonClient(secured.url, username="ops", password="ops-secret")
    client.create_app("authenticated", MarathonApp(cmd="sleep 60", cpus=0.1, mem=32,
                                                   instances=1))
    assert [a.id for a in client.list_apps()] == ["/authenticated"]

    stranger = MarathonClient(secured.url, username="ops", password="guessed")
    with pytest.raises(MarathonHttpError):
        stranger.create_app("intruder", MarathonApp(cmd="sleep 60", cpus=0.1, mem=32))
    anonymous = MarathonClient(secured.url)
    with pytest.raises(MarathonHttpError):
        anonymous.list_apps()

    # A token from the sign-in API, as DC/OS' `token=` header.
    status, _, answer = request(secured, "POST", "/acs/api/v1/auth/login",
                                {"uid": "ops", "password": "ops-secret"})
    assert status == 200, answer
    tokened = MarathonClient(secured.url, auth_token=answer["token"])
    assert [a.id for a in tokened.list_apps()] == ["/authenticated"]
    assert [a.id for a in client.list_apps()] == ["/authenticated"], "nothing else created"


def chronos_job(name):
    return {"name": name, "command": "true", "schedule": "R/2030-01-01T00:00:00Z/P1D",
            "owner": "ops@example.com", "disabled": False, "cpus": 0.1, "mem": 32}


def test_chronos_client_with_user_and_password(secured):
    client = chronos.connect([secured.master], username="ops", password="ops-secret")
    client.add(chronos_job("nightly"))
    assert [j["name"] for j in client.list()] == ["nightly"]
    stranger = chronos.connect([secured.master], username="ops", password="guessed")
    with pytest.raises(chronos.ChronosAPIError):
        stranger.add(chronos_job("intruder"))
    assert [j["name"] for j in client.list()] == ["nightly"]


def test_refusals_speak_each_apis_language(secured):
    for method, path, body in [
        ("GET", "/master/state", None),
        ("POST", "/v2/apps", {"id": "/x", "cmd": "true"}),
        ("POST", "/scheduler/iso8601", {"name": "x", "command": "true", "schedule": "R//PT1H"}),
        ("POST", "/v1/jobs", {"id": "x", "run": {"cmd": "true", "cpus": 0.1, "mem": 32}}),
        ("POST", "/api/v1", {"type": "GET_STATE"}),
    ]:
        status, headers, answer = request(secured, method, path, body)
        assert status == 401, (path, answer)
        assert headers["WWW-Authenticate"].startswith("Basic"), path
        if not path.startswith(("/master", "/api")):
            assert "message" in answer, (path, answer)
    status, _, _ = request(secured, "GET", "/health")
    assert status == 200, "health is open"
