"""`agora up` for the benchmark scripts: a fresh data dir, the port it listens on, and a clean
stop afterwards."""
import contextlib
import subprocess
import tempfile
import threading


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
