"""The web UI in a real headless Chromium (Debian's, driven by selenium through chromedriver):
every page loads, an app is deployed, scaled, restarted and destroyed through the UI, the
dashboard changes without a reload, a task's output is tailed live, a job is run from its page,
and the pages fit a phone's width. Screenshots of the dashboard and an app page are saved in
each test's temporary directory (their paths are printed).
"""

import json
import os
import shutil
import time
import urllib.error
import urllib.request

import pytest

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException,
                                        WebDriverException)
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("AGORA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("AGORA_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 30


@pytest.fixture
def browser():
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("chromium and chromedriver are needed (scripts/install-test-deps.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


def send(agora, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(agora.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read()
        return json.loads(text) if text else None


def wait_for(driver, what, check, timeout=WAIT):
    """Polls check(driver) until it is truthy; fails naming what was awaited."""
    # A page being replaced (after a form post) leaves elements stale for a moment; Chromium
    # may say so as an inspector error about a node of the document going away.
    ignored = (StaleElementReferenceException, NoSuchElementException)

    def looked(d):
        try:
            return check(d)
        except WebDriverException as error:
            if "does not belong to the document" in str(error):
                return False
            raise
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2,
                             ignored_exceptions=ignored).until(looked)
    except Exception:
        pytest.fail("timed out waiting for %s; page:\n%s" % (what, driver.find_element(
            By.TAG_NAME, "body").text[:3000]), pytrace=False)


def cross_site_post(agora, path, body):
    req = urllib.request.Request(agora.url + path, data=body.encode(), method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Origin": "http://elsewhere.example", "Sec-Fetch-Site": "cross-site"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def app_tasks(agora, app_id):
    return agora.get_json("/v2/apps%s/tasks" % app_id)["tasks"]


def settled(agora, app_id, count):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        tasks = [t for t in app_tasks(agora, app_id) if t["state"] == "TASK_RUNNING"]
        deployments = agora.get_json("/v2/deployments")
        if len(tasks) == count and not deployments:
            return tasks
        time.sleep(0.2)
    pytest.fail("%s did not settle at %d tasks" % (app_id, count), pytrace=False)


def test_every_page_loads(agora, browser):
    send(agora, "POST", "/v2/apps", {"id": "/shop/web", "cmd": "echo hi; sleep 600",
                                     "cpus": 0.1, "mem": 32, "instances": 1})
    send(agora, "POST", "/scheduler/iso8601", {"name": "report", "command": "echo report",
                                               "schedule": "R/2040-01-01T00:00:00Z/P1D",
                                               "cpus": 0.1, "mem": 16})
    task = settled(agora, "/shop/web", 1)[0]
    state = agora.get_json("/master/state")
    agent = state["slaves"][0]
    marathon = next(f for f in state["frameworks"] if f["name"] == "marathon")
    pages = [
        ("/", "Dashboard", "Allocation over time"),
        ("/ui/agents", "Agents", agent["id"]),
        ("/ui/agents/" + agent["id"], "Agent", "Attributes"),
        ("/ui/frameworks", "Frameworks", "marathon"),
        ("/ui/frameworks/" + marathon["id"], "Framework marathon", "Dominant share"),
        ("/ui/apps", "Apps", "/shop/web"),
        ("/ui/apps/shop/web", "App /shop/web", "Versions"),
        ("/ui/jobs", "Jobs", "report"),
        ("/ui/jobs/report", "Job report", "No runs yet."),
        ("/ui/tasks", "Tasks", task["id"]),
        ("/ui/tasks/" + task["id"], "Task", "Status updates"),
        ("/ui/tasks/%s/browse" % task["id"], "Sandbox", "stdout"),
    ]
    for path, title, text in pages:
        browser.get(agora.url + path)
        assert title in browser.title, (path, browser.title)
        body = browser.find_element(By.TAG_NAME, "body").text
        assert text in body, (path, body[:2000])
        assert "Cannot show this page" not in body, (path, body[:2000])
    # Navigation reaches every section from the header.
    browser.get(agora.url + "/")
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "header nav a")]
    assert [l.replace(agora.url, "") for l in links] == [
        "/", "/ui/agents", "/ui/frameworks", "/ui/apps", "/ui/jobs", "/ui/tasks"]
    # An unknown app is a page saying so, not an error of the server.
    browser.get(agora.url + "/ui/apps/nope")
    assert "does not exist" in browser.find_element(By.TAG_NAME, "body").text


def test_an_app_is_deployed_scaled_restarted_and_destroyed_through_the_ui(agora, browser, tmp_path):
    browser.get(agora.url + "/ui/apps")
    assert "No apps yet." in browser.find_element(By.TAG_NAME, "body").text
    form = browser.find_element(By.CSS_SELECTOR, "#new-app form")
    form.find_element(By.NAME, "id").send_keys("/hello")
    form.find_element(By.NAME, "cmd").send_keys(
        "echo serving on $PORT0; exec python3 -m http.server $PORT0")
    instances = form.find_element(By.NAME, "instances")
    instances.clear()
    instances.send_keys("1")
    form.submit()
    wait_for(browser, "the app's page", lambda d: "/ui/apps/hello" in d.current_url)
    assert "Deploying /hello." in browser.find_element(By.CSS_SELECTOR, ".flash.notice").text
    settled(agora, "/hello", 1)

    # Scale to 2 with the page's form.
    browser.get(agora.url + "/ui/apps/hello")
    field = browser.find_element(By.CSS_SELECTOR, "#scale-form input[name=instances]")
    field.clear()
    field.send_keys("2")
    browser.find_element(By.CSS_SELECTOR, "#scale-form button").click()
    wait_for(browser, "the scale notice",
             lambda d: "Scaling /hello to 2." in d.find_element(By.TAG_NAME, "body").text)
    settled(agora, "/hello", 2)
    browser.get(agora.url + "/ui/apps/hello")
    assert "2 running" in browser.find_element(By.ID, "instances").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "table tbody tr")) >= 2
    shot = tmp_path / "app.png"
    browser.save_screenshot(str(shot))
    print("screenshot of an app page: %s" % shot)

    # Restart replaces both instances.
    before = {t["id"] for t in app_tasks(agora, "/hello")}
    browser.find_element(By.XPATH, "//button[text()='Restart']").click()
    wait_for(browser, "the restart notice",
             lambda d: "Restarting /hello." in d.find_element(By.TAG_NAME, "body").text)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        now = {t["id"] for t in app_tasks(agora, "/hello") if t["state"] == "TASK_RUNNING"}
        # Done when the deployment is: the old instances are still being killed (each drains
        # for a second first) after the new ones run.
        if len(now) == 2 and not (now & before) and not agora.get_json("/v2/deployments"):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the restart did not replace both instances")

    # Destroy asks first.
    browser.get(agora.url + "/ui/apps/hello")
    browser.find_element(By.XPATH, "//button[text()='Destroy']").click()
    alert = wait_for(browser, "the confirmation", expected_conditions.alert_is_present())
    assert "Destroy /hello" in alert.text
    alert.accept()
    wait_for(browser, "the apps list", lambda d: d.current_url.endswith("/ui/apps?notice=Destroying%20%2Fhello."))
    deadline = time.monotonic() + WAIT
    while agora.get_json("/v2/apps")["apps"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert agora.get_json("/v2/apps")["apps"] == []

    # A post from another site is refused (the browser says where it comes from).
    status, _ = cross_site_post(agora, "/ui/apps/hello", "action=destroy")
    assert status == 403

    # A definition the API refuses comes back as the API's words.
    browser.get(agora.url + "/ui/apps")
    form = browser.find_element(By.CSS_SELECTOR, "#new-app form")
    form.find_element(By.NAME, "definition").send_keys('{"id": "/bad", "cmd": "true", "cpus": -1}')
    form.submit()
    error = wait_for(browser, "the error", lambda d: d.find_element(By.CSS_SELECTOR, ".flash.error"))
    assert "cpus" in error.text, error.text


def test_the_dashboard_changes_without_a_reload(agora, browser, tmp_path):
    browser.get(agora.url + "/")
    browser.execute_script("window.agoraMarker = 'same page';")
    # Read through a wait: the live part may be swapped in between finding it and reading it.
    wait_for(browser, "no task running", lambda d: d.find_element(By.ID, "tasks-running").text == "0")
    # The stream sends the live part once on connecting; count the updates after that.
    wait_for(browser, "the live stream", lambda d: d.execute_script(
        "return document.body.dataset.liveUpdates"))
    before = int(browser.execute_script("return document.body.dataset.liveUpdates"))
    send(agora, "POST", "/v2/apps", {"id": "/live", "cmd": "sleep 600", "cpus": 0.5,
                                     "mem": 64, "instances": 3})
    wait_for(browser, "3 running tasks on the dashboard",
             lambda d: d.find_element(By.ID, "tasks-running").text == "3")
    assert browser.execute_script("return window.agoraMarker") == "same page", "reloaded"
    assert int(browser.execute_script("return document.body.dataset.liveUpdates")) > before
    wait_for(browser, "the CPU gauge", lambda d: "1.5 / 4 cpus" in d.find_element(
        By.CSS_SELECTOR, "[data-gauge=cpu]").text)
    wait_for(browser, "the deployment in the recent events",
             lambda d: "deployment_success" in d.find_element(By.ID, "events").text)
    shot = tmp_path / "dashboard.png"
    browser.save_screenshot(str(shot))
    print("screenshot of the dashboard: %s" % shot)


@pytest.mark.agora_args("--kill-grace", "1s")
def test_a_tasks_output_is_tailed_live(agora, browser):
    send(agora, "POST", "/v2/apps", {
        "id": "/talk", "cpus": 0.1, "mem": 32, "instances": 1,
        "cmd": "echo first line; echo to stderr >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.3; done"})
    task = settled(agora, "/talk", 1)[0]
    browser.get(agora.url + "/ui/tasks/" + task["id"])
    assert "running" in browser.find_element(By.ID, "task-state").text
    wait_for(browser, "the first line", lambda d: "first line" in d.find_element(By.ID, "tail-stdout").text)
    wait_for(browser, "stderr", lambda d: "to stderr" in d.find_element(By.ID, "tail-stderr").text)
    seen = browser.find_element(By.ID, "tail-stdout").text.count("tick")
    wait_for(browser, "more output appended",
             lambda d: d.find_element(By.ID, "tail-stdout").text.count("tick") >= seen + 3)
    assert browser.find_element(By.ID, "tail-stdout").text.count("first line") == 1, "appended once"
    # The sandbox browser lists the output files and shows one.
    browser.get(agora.url + "/ui/tasks/%s/browse" % task["id"])
    browser.find_element(By.LINK_TEXT, "stdout").click()
    wait_for(browser, "the file", lambda d: "first line" in d.find_element(By.CSS_SELECTOR, "pre.tail").text)


def test_a_job_runs_from_its_page(agora, browser):
    send(agora, "POST", "/scheduler/iso8601", {"name": "report", "command": "echo report",
                                               "schedule": "R/2040-01-01T00:00:00Z/P1D",
                                               "cpus": 0.1, "mem": 16})
    browser.get(agora.url + "/ui/jobs/report")
    browser.find_element(By.XPATH, "//button[text()='Run now']").click()
    wait_for(browser, "the notice", lambda d: "report is queued to run now." in d.find_element(
        By.TAG_NAME, "body").text)

    def finished(d):
        d.get(agora.url + "/ui/jobs/report")
        return d.find_element(By.ID, "successes").text == "1" and "finished" in d.find_element(
            By.TAG_NAME, "body").text
    wait_for(browser, "a finished run in the history", finished)


def test_pages_fit_a_narrow_screen(agora, browser):
    send(agora, "POST", "/v2/apps", {"id": "/a/rather/long/app/name", "cmd": "sleep 600",
                                     "cpus": 0.1, "mem": 32, "instances": 1})
    settled(agora, "/a/rather/long/app/name", 1)
    browser.set_window_size(390, 844)
    for path in ("/", "/ui/apps", "/ui/apps/a/rather/long/app/name", "/ui/tasks", "/ui/agents"):
        browser.get(agora.url + path)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (path, overflow)


def test_a_stuck_deployment_is_overridden_or_rolled_back_from_the_app_page(agora, browser):
    send(agora, "POST", "/v2/apps", {"id": "/big", "cmd": "sleep 600", "cpus": 0.1,
                                     "mem": 16, "instances": 1})
    settled(agora, "/big", 1)
    # More than the agent holds: the deployment cannot finish.
    send(agora, "PUT", "/v2/apps/big", {"instances": 500})
    browser.get(agora.url + "/ui/apps/big")
    assert "deploying" in browser.find_element(By.ID, "app-status").text

    # Without force the app is locked; with it the change goes through.
    field = browser.find_element(By.CSS_SELECTOR, "#scale-form input[name=instances]")
    field.clear()
    field.send_keys("400")
    browser.find_element(By.XPATH, "//button[text()='Scale']").click()
    error = wait_for(browser, "the lock", lambda d: d.find_element(By.CSS_SELECTOR, ".flash.error"))
    assert "locked" in error.text and "Override with force" in error.text, error.text
    field = browser.find_element(By.CSS_SELECTOR, "#scale-form input[name=instances]")
    field.clear()
    field.send_keys("400")
    browser.find_element(By.CSS_SELECTOR, "#scale-form input[name=force]").click()
    browser.find_element(By.XPATH, "//button[text()='Scale']").click()
    wait_for(browser, "the forced scale",
             lambda d: "Scaling /big to 400." in d.find_element(By.TAG_NAME, "body").text)
    assert agora.get_json("/v2/apps/big")["app"]["instances"] == 400

    # Roll the deployment back from its row: the app returns to what it ran before.
    browser.get(agora.url + "/ui/apps/big")
    browser.find_element(By.XPATH, "//button[text()='Roll back']").click()
    wait_for(browser, "the rollback notice",
             lambda d: "rolled back" in d.find_element(By.TAG_NAME, "body").text)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        app = agora.get_json("/v2/apps/big")["app"]
        if app["instances"] == 500 and agora.get_json("/v2/deployments"):
            break
        time.sleep(0.2)
    # (The forced change superseded the first; rolling it back restores 500, still stuck.)
    assert agora.get_json("/v2/apps/big")["app"]["instances"] == 500
    # Stop leaves it where it stands.
    browser.get(agora.url + "/ui/apps/big")
    browser.find_element(By.XPATH, "//button[text()='Stop']").click()
    wait_for(browser, "the confirmation", expected_conditions.alert_is_present()).accept()
    wait_for(browser, "the stop notice",
             lambda d: "is stopped." in d.find_element(By.TAG_NAME, "body").text)
    assert agora.get_json("/v2/deployments") == []
