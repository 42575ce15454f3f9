"""The `marathon` 0.13.0 Python client against agora's services API (`/v2`), unmodified."""

import collections
import collections.abc
import functools
import time

# marathon 0.13.0 predates Python 3.10, which moved Iterable to collections.abc; anyone running
# the client on a current Python needs this alias (the client's code is otherwise unchanged).
if not hasattr(collections, "Iterable"):
    collections.Iterable = collections.abc.Iterable

from marathon import MarathonClient
from marathon.models import MarathonApp

import compat_util

WAIT = 30.0
# Deployments take longer than the suite's default wait.
wait_for = functools.partial(compat_util.wait_for, timeout=WAIT)


def settled(client, app_id, count):
    def check():
        if client.list_deployments():
            return None
        tasks = client.list_tasks(app_id)
        running = [t for t in tasks if t.state == "TASK_RUNNING"]
        return tasks if len(running) == count == len(tasks) else None
    return wait_for("%s with %d running tasks" % (app_id, count), check)


def test_app_lifecycle_with_the_marathon_client(agora):
    client = MarathonClient(agora.url)
    assert client.ping().strip() in (b"pong", "pong", b'"pong"', '"pong"')
    info = client.get_info()
    assert info.name == "marathon"

    app = client.create_app("/compat/web", MarathonApp(cmd="exec sleep 600", cpus=0.1, mem=32, instances=2,
                                                       labels={"team": "compat"}))
    assert app.id == "/compat/web"
    assert app.port_definitions[0].port == 10000
    tasks = settled(client, "/compat/web", 2)
    assert all(t.service_ports == [10000] for t in tasks)
    assert all(t.started_at is not None for t in tasks)

    listed = client.list_apps()
    assert [a.id for a in listed] == ["/compat/web"]
    assert client.get_app("/compat/web").instances == 2

    result = client.scale_app("/compat/web", instances=3)
    assert "deploymentId" in result
    settled(client, "/compat/web", 3)

    # A definition change rolls every task over to the new version.
    old_ids = {t.id for t in client.list_tasks("/compat/web")}
    current = client.get_app("/compat/web")
    current.cmd = "echo v2; exec sleep 600"
    client.update_app("/compat/web", current)
    tasks = settled(client, "/compat/web", 3)
    assert not old_ids & {t.id for t in tasks}
    assert len(client.list_versions("/compat/web")) == 3

    # Kill one task: it is replaced. Kill with scale: the app shrinks.
    victim = tasks[0].id
    client.kill_task("/compat/web", victim)
    wait_for("the killed task replaced",
             lambda: victim not in {t.id for t in client.list_tasks("/compat/web")} and
             len([t for t in client.list_tasks("/compat/web") if t.state == "TASK_RUNNING"]) == 3)
    client.kill_given_tasks([client.list_tasks("/compat/web")[0].id], scale=True)
    settled(client, "/compat/web", 2)
    assert client.get_app("/compat/web").instances == 2

    client.restart_app("/compat/web")
    settled(client, "/compat/web", 2)

    client.delete_app("/compat/web")
    wait_for("app deleted", lambda: client.list_apps() == [])


def test_event_stream_in_the_marathon_client(agora):
    import threading

    client = MarathonClient(agora.url)
    seen = []
    done = threading.Event()

    def read():
        try:
            for event in client.event_stream():
                seen.append(type(event).__name__)
                if type(event).__name__ == "MarathonDeploymentSuccess":
                    break
        except Exception as error:  # surfaced by the assertions below
            seen.append("error: %r" % (error,))
        finally:
            done.set()

    threading.Thread(target=read, daemon=True).start()
    wait_for("the event stream to attach", lambda: agora.get("/v2/info")[0] == 200, timeout=5)
    time.sleep(0.5)
    client.create_app("/events", MarathonApp(cmd="exec sleep 600", cpus=0.1, mem=16, instances=1))
    assert done.wait(WAIT), "no deployment_success event; saw %r" % (seen,)
    assert seen[:2] == ["MarathonApiPostEvent", "MarathonDeploymentInfo"], seen
    assert "MarathonStatusUpdateEvent" in seen and seen[-1] == "MarathonDeploymentSuccess", seen


def test_health_checks_with_the_marathon_client(agora):
    import threading

    from marathon.models import MarathonHealthCheck

    client = MarathonClient(agora.url)
    seen = []
    done = threading.Event()

    def read():
        try:
            for event in client.event_stream(event_types=["health_status_changed_event"]):
                seen.append(event)
                break
        except Exception as error:  # surfaced by the assertions below
            seen.append("error: %r" % (error,))
        finally:
            done.set()

    threading.Thread(target=read, daemon=True).start()
    time.sleep(0.5)
    check = MarathonHealthCheck(protocol="COMMAND", command={"value": "test -n \"$MESOS_TASK_ID\""},
                                interval_seconds=1, timeout_seconds=1, grace_period_seconds=10,
                                max_consecutive_failures=3)
    client.create_app("/checked", MarathonApp(cmd="exec sleep 600", cpus=0.1, mem=16, instances=1,
                                              health_checks=[check]))

    def healthy():
        tasks = client.list_tasks("/checked")
        return tasks if tasks and tasks[0].health_check_results and tasks[0].health_check_results[0].alive else None
    tasks = wait_for("a healthy task", healthy)
    result = tasks[0].health_check_results[0]
    assert result.consecutive_failures == 0 and result.first_success is not None
    assert client.get_app("/checked").tasks_healthy == 1
    assert client.get_app("/checked").health_checks[0].protocol == "COMMAND"
    embedded = client.get_app("/checked", embed_task_stats=True, embed_readiness=True,
                              embed_last_task_failure=True)
    counts = embedded.task_stats.total_summary.stats.counts
    assert (counts.running, counts.healthy) == (1, 1)
    assert embedded.task_stats.with_latest_config.stats.life_time.average_seconds >= 0
    assert embedded.readiness_check_results == []

    assert done.wait(WAIT), "no health_status_changed_event"
    event = seen[0]
    assert not isinstance(event, str), event
    assert event.alive is True and event.app_id == "/checked" and event.task_id == tasks[0].id


def test_groups_with_the_marathon_client(agora):
    from marathon.models import MarathonGroup

    client = MarathonClient(agora.url)
    group = MarathonGroup(id="/compat-group", apps=[
        MarathonApp(id="/compat-group/db", cmd="exec sleep 600", cpus=0.1, mem=16, instances=1),
        MarathonApp(id="/compat-group/web", cmd="exec sleep 600", cpus=0.1, mem=16, instances=1,
                    dependencies=["/compat-group/db"]),
    ])
    result = client.create_group(group)
    assert "deploymentId" in result
    settled(client, "/compat-group/web", 1)

    groups = client.list_groups()
    assert [g.id for g in groups] == ["/compat-group"]
    fetched = client.get_group("/compat-group")
    assert sorted(a.id for a in fetched.apps) == ["/compat-group/db", "/compat-group/web"]
    assert fetched.apps[1].dependencies == ["/compat-group/db"]

    client.scale_group("/compat-group", 2)
    settled(client, "/compat-group/db", 2)
    settled(client, "/compat-group/web", 2)

    client.delete_group("/compat-group")
    wait_for("group deleted", lambda: client.list_apps() == [] and client.list_groups() == [])


def test_event_subscriptions_with_the_marathon_client(agora):
    client = MarathonClient(agora.url)
    url = "http://127.0.0.1:9/callback"
    assert client.create_event_subscription(url)["eventType"] == "subscribe_event"
    assert client.list_event_subscriptions() == [url]
    assert client.delete_event_subscription(url)["eventType"] == "unsubscribe_event"
    assert client.list_event_subscriptions() == []


def test_metrics_with_the_marathon_client(agora):
    client = MarathonClient(agora.url)
    metrics = client.get_metrics()
    assert metrics["version"] == "4.0.0"
    assert "services/apps" in metrics["gauges"]
    assert metrics["gauges"]["master/elected"]["value"] == 1
    assert "services/launched_total" in metrics["counters"]
