"""Fixtures for the compatibility tests: a real `agora up` process per test.

The binary comes from $AGORA_BIN (default: target/debug/agora under the repository root). Every
wait is bounded: startup, health check, shutdown, and each test as a whole (a watchdog dumps all
thread stacks and exits the run if a test exceeds TEST_TIMEOUT). The agora process gets SIGTERM
if pytest itself dies (PR_SET_PDEATHSIG), so no cluster is left running behind a crashed run.
"""

import ctypes
import faulthandler
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESOURCES = "cpus:4;mem:4096;ports:[31000-31100]"
STARTUP_TIMEOUT = 20.0  # seconds until the "agora up: ... listening on" line and /health 200
STOP_TIMEOUT = 15.0  # seconds agora gets to exit after SIGTERM before it is SIGKILLed
TEST_TIMEOUT = 120.0  # hard limit per test (the whole suite normally takes a few seconds)
READY_RE = re.compile(r"listening on https?://([0-9.]+):(\d+)")


def agora_bin():
    value = os.environ.get("AGORA_BIN", "target/debug/agora")
    path = Path(value)
    if not path.is_absolute():
        path = Path.cwd() / path if (Path.cwd() / path).exists() else REPO / path
    return path


def _die_with_parent():
    """preexec_fn: SIGTERM agora when the process that started it (pytest) dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:  # not Linux: best effort only
        pass


def http_get(url, timeout=5.0):
    """GET url -> (status, body bytes); HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Agora:
    """A running `agora up` (master + agent in one process)."""

    def __init__(self, proc, host, port, data_dir, stdout_path, stderr_path):
        self.proc = proc
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path

    @property
    def master(self):
        """host:port, the form pymesos wants for its master URI."""
        return "%s:%d" % (self.host, self.port)

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def get(self, path, timeout=5.0):
        return http_get(self.url + path, timeout=timeout)

    def get_json(self, path, timeout=5.0):
        status, body = self.get(path, timeout=timeout)
        assert status == 200, "GET %s -> %s %r" % (path, status, body[:500])
        return json.loads(body)

    def log_tail(self, n=80):
        try:
            lines = Path(self.stderr_path).read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        # The log is colored for a terminal; strip ANSI escapes for the report.
        return "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", line) for line in lines[-n:])


def _kill(proc):
    """SIGKILL agora and whatever else is in its process group (it leads its own session)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def start_agora(tmp_path, extra_args=()):
    binary = agora_bin()
    if not binary.is_file():
        pytest.fail(
            "agora binary not found at %s (set AGORA_BIN or run `cargo build -p agora`)" % binary,
            pytrace=False,
        )
    data_dir = tmp_path / "agora-data"
    data_dir.mkdir()
    stdout_path = tmp_path / "agora.stdout"
    stderr_path = tmp_path / "agora.stderr"
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    env.setdefault("NO_COLOR", "1")
    # AGORA_* variables of the developer's shell would override the flags' defaults.
    for key in [k for k in env if k.startswith("AGORA_")]:
        del env[key]
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [
                str(binary), "up",
                "--port", "0",
                "--bind", "127.0.0.1",
                "--data-dir", str(data_dir),
                "--resources", RESOURCES,
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=str(tmp_path),
            env=env,
            start_new_session=True,  # a Ctrl-C on pytest must not reach agora directly
            preexec_fn=_die_with_parent,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        host = port = None
        while host is None:
            text = stdout_path.read_text(errors="replace")
            m = READY_RE.search(text)
            if m:
                host, port = m.group(1), int(m.group(2))
                break
            if proc.poll() is not None:
                raise RuntimeError("agora exited with %s before it was ready" % proc.returncode)
            if time.monotonic() > deadline:
                raise RuntimeError("no 'listening on' line from agora within %ss" % STARTUP_TIMEOUT)
            time.sleep(0.02)
        assert port > 0, text
        agora = Agora(proc, host, port, data_dir, stdout_path, stderr_path)
        while True:
            try:
                status, _ = agora.get("/health", timeout=1.0)
                if status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError("agora exited with %s before /health was 200" % proc.returncode)
            if time.monotonic() > deadline:
                raise RuntimeError("/health was not 200 within %ss" % STARTUP_TIMEOUT)
            time.sleep(0.05)
        return agora
    except BaseException as e:
        _kill(proc)
        log = stderr_path.read_text(errors="replace")[-4000:] if stderr_path.exists() else ""
        out = stdout_path.read_text(errors="replace") if stdout_path.exists() else ""
        pytest.fail("could not start agora: %s\nstdout:\n%s\nstderr (tail):\n%s" % (e, out, log),
                    pytrace=False)


def stop_agora(agora):
    """SIGTERM, then wait; returns an error message if agora did not stop cleanly."""
    proc = agora.proc
    if proc.poll() is not None:
        return "agora had already exited with %s during the test" % proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill(proc)
        return "agora did not exit within %ss of SIGTERM (killed)" % STOP_TIMEOUT
    if proc.returncode != 0:
        return "agora exited with %s after SIGTERM" % proc.returncode
    return None


def pytest_configure(config):
    # http-parser 0.9.0's pure-Python parser has regexes with invalid escapes (harmless).
    config.addinivalue_line("filterwarnings", r"ignore::DeprecationWarning:.*http_parser")
    config.addinivalue_line(
        "markers", "agora_args(*args): extra command-line flags for the test's `agora up`")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Keeps each phase's report on the item so the fixture can tell whether the test failed.
    report = yield
    setattr(item, "rep_" + report.when, report)
    return report


@pytest.fixture
def agora(request, tmp_path):
    """A fresh single-node cluster (`agora up` on a random port) for one test.

    Extra flags come from the test's marker, e.g. @pytest.mark.agora_args("--kill-grace", "1s").
    """
    marker = request.node.get_closest_marker("agora_args")
    node = start_agora(tmp_path, marker.args if marker else ())
    yield node
    problem = stop_agora(node)
    failed = getattr(request.node, "rep_call", None)
    if (failed is not None and failed.failed) or problem:
        sys.stderr.write("\n---- agora log (tail) ----\n%s\n" % node.log_tail())
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.fixture(autouse=True)
def _pymesos_forgets_credentials():
    """pymesos' MesosSchedulerDriver._send has a mutable default `headers={}`: the
    Authorization one driver puts there is sent by every later driver of the process. A real
    framework runs one driver; here each test starts its own, so the dict is emptied first."""
    from pymesos import MesosSchedulerDriver
    for default in MesosSchedulerDriver._send.__defaults__ or ():
        if isinstance(default, dict):
            default.clear()
    yield


@pytest.fixture(autouse=True)
def _chronos_forgets_legacy_fields():
    """chronos-python 1.2.1's client without an API version extends the class-level
    `ChronosJob.fields` with its legacy `async`: every later client of the process then
    requires it. A real script uses one client; here each test restores the list after."""
    import chronos
    fields = list(chronos.ChronosJob.fields)
    yield
    chronos.ChronosJob.fields[:] = fields


@pytest.fixture(autouse=True)
def _watchdog():
    """Never hang forever: dump every thread's stack and exit if a test takes too long."""
    faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
