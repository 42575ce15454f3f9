"""The jobs API driven by the real `chronos-python` 1.2.1 client: adding scheduled and dependent
jobs, listing and searching, running on demand (the dependent job follows), updating a job read
back from the API, the graph and statistics, killing and deleting, an error for a bad schedule,
and the 2.x paths the client uses without an API version."""

import datetime
import zoneinfo

import chronos
import pytest

from compat_util import wait_for


def connect(agora, version="v1"):
    return chronos.connect([agora.master], scheduler_api_version=version)


def job(name, **extra):
    body = {
        "name": name,
        "command": "echo %s" % name,
        "owner": "ops@example.com",
        "disabled": False,
        "cpus": 0.1,
        "mem": 32,
    }
    body.update(extra)
    return body


def test_a_job_chain_through_the_client(agora):
    client = connect(agora)
    assert client.add(job("extract", schedule="R/2030-01-01T00:00:00Z/P1D")) is None
    client.add(job("load", parents=["extract"]))
    assert sorted(j["name"] for j in client.list()) == ["extract", "load"]
    assert [j["name"] for j in client.search(name="ext")] == ["extract"]

    client.run("extract")
    history = wait_for(
        "the dependent job to run",
        lambda: client.job_stat("load")["taskStatHistory"],
    )
    assert history[0]["taskState"] == "TASK_FINISHED"
    extract = next(j for j in client.list() if j["name"] == "extract")
    assert extract["successCount"] == 1 and extract["errorCount"] == 0
    assert "link,extract,load" in client.scheduler_graph()
    assert {row["jobNameLabel"] for row in client.scheduler_stat_99th()} == {"extract", "load"}
    client.scheduler_stat_mean()

    # An update sends back what it read, counts included; they are ignored.
    extract["command"] = "echo changed"
    client.update(extract)
    changed = next(j for j in client.list() if j["name"] == "extract")
    assert changed["command"] == "echo changed"
    assert changed["successCount"] == 1

    client.delete_tasks("extract")
    client.delete("load")
    client.delete("extract")
    assert client.list() == []


def test_deleting_a_parent_keeps_its_children_as_chronos_does(agora):
    """A deleted dependent job's children take its parents; a deleted scheduled job's children
    take its schedule and time zone, and run when it would have."""
    client = connect(agora)
    # Paris' local time, as Chronos reads a start in the job's scheduleTimeZone.
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    start = datetime.datetime.now(paris) + datetime.timedelta(seconds=6)
    schedule = "R/%s/PT1H" % start.strftime("%Y-%m-%dT%H:%M:%S")
    client.add(job("nightly", schedule=schedule, scheduleTimeZone="Europe/Paris"))
    client.add(job("stage", parents=["nightly"]))
    client.add(job("publish", parents=["stage"]))
    client.add(job("notify", parents=["stage", "nightly"]))

    client.delete("stage")
    jobs = {j["name"]: j for j in client.list()}
    assert sorted(jobs) == ["nightly", "notify", "publish"]
    assert jobs["publish"]["parents"] == ["nightly"]
    assert jobs["notify"]["parents"] == ["nightly"], "nightly once"
    graph = client.scheduler_graph()
    assert "link,nightly,publish" in graph and "link,nightly,notify" in graph, graph
    assert "stage" not in graph, graph

    client.delete("nightly")
    jobs = {j["name"]: j for j in client.list()}
    assert sorted(jobs) == ["notify", "publish"]
    for name in ("notify", "publish"):
        assert not jobs[name].get("parents"), jobs[name]
        assert jobs[name]["schedule"] == schedule, jobs[name]
        assert jobs[name]["scheduleTimeZone"] == "Europe/Paris", jobs[name]
    assert "link," not in client.scheduler_graph()
    # Nobody runs them by hand: their schedule does, at nightly's next slot.
    for name in ("notify", "publish"):
        history = wait_for(
            "%s to run on the schedule it took" % name,
            lambda: client.job_stat(name)["taskStatHistory"],
            timeout=30,
        )
        assert history[0]["taskState"] == "TASK_FINISHED", history


def test_bad_input_raises_with_the_message(agora, caplog):
    client = connect(agora)
    with pytest.raises(chronos.ChronosAPIError):
        client.add(job("bad", schedule="R/never/P1D"))
    # The client logs the server's message, then gives up on "no remaining servers".
    assert any("schedule: invalid schedule" in r.getMessage() for r in caplog.records)
    with pytest.raises(chronos.ChronosAPIError):
        client.add(job("orphan", parents=["ghost"]))
    assert client.list() == []


def test_the_2x_paths_without_an_api_version(agora):
    client = connect(agora, version=None)
    client.add(job("legacy", schedule="R/2030-01-01T00:00:00Z/P1D", **{"async": False}))
    legacy = client.list()[0]
    legacy["description"] = "updated with PUT"
    client.update(legacy)
    assert client.list()[0]["description"] == "updated with PUT"
    client.run("legacy")
    wait_for("the run", lambda: client.job_stat("legacy")["taskStatHistory"])
    assert client.metrics()
