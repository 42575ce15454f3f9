"""`agora up` for the benchmark scripts: a fresh data dir, the port it listens on, and a clean
stop afterwards; any other role started on loopback (`start_role`); a JSON call to one
(`call_json`) and a wait for a condition (`wait_until`)."""
import contextlib
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.request

READY = re.compile(r"listening on https?://([0-9.]+):(\d+)")


def start_role(binary, args):
    """Starts `agora <args>` on 127.0.0.1, quiet and without the caller's AGORA_* settings;
    returns the process and the port of its listening line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    env["AGORA_LOG"] = "error"
    proc = subprocess.Popen([binary, *args, "--bind", "127.0.0.1"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    line = proc.stdout.readline()
    match = READY.search(line)
    if not match:
        raise RuntimeError("no listening line from %s: %r" % (args[0], line))
    # Keep draining stdout so the process never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, int(match.group(2))


def call_json(port, method, path, body=None, timeout=60.0):
    """A request to 127.0.0.1:`port` with `body` as JSON; its JSON answer (None when empty)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        text = answer.read()
        return json.loads(text) if text else None


def wait_until(what, check, timeout=600.0, every=0.2):
    """`check()` every `every` seconds until it is true, which is returned; an error (a
    connection refused, an answer without the field yet) counts as not yet. `what` names the
    wait, or is called for its name when it times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception:  # noqa: BLE001 - whatever it was, the condition does not hold yet
            pass
        time.sleep(every)
    raise RuntimeError("timed out waiting for " + (what() if callable(what) else what))


@contextlib.contextmanager
def agora_up_process(binary: str, *extra: str):
    """Runs `agora up` on a fresh data dir with `extra` flags; yields its port and process."""
    with tempfile.TemporaryDirectory() as data_dir:
        process = subprocess.Popen(
            [binary, "up", "--port", "0", "--bind", "127.0.0.1", "--data-dir", data_dir, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            line = process.stdout.readline()
            port = int(line.split("://")[1].split(":")[1].split()[0])
            # Keep draining stdout so the cluster never blocks on a full pipe.
            threading.Thread(target=process.stdout.read, daemon=True).start()
            yield port, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def agora_up(binary: str, *extra: str):
    """Runs `agora up` on a fresh data dir with `extra` flags; yields its port."""
    with agora_up_process(binary, *extra) as (port, _):
        yield port
