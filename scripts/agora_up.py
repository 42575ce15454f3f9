"""`agora up` for the benchmark scripts: a fresh data dir, the port it listens on, and a clean
stop afterwards; and any other role started on loopback (`start_role`)."""
import contextlib
import os
import re
import subprocess
import tempfile
import threading

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
