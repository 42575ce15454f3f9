"""A ZooKeeper server for benchmarks and tests: Debian's package (`zookeeper`, installed by
scripts/install-test-deps.sh), started standalone on a free loopback port in a directory of
the caller's, no system service."""
import os
import socket
import subprocess
import time

ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_zookeeper(directory, tick_ms=250, heap="256m", **popen):
    """Starts the server with its data in `directory`; returns (process, port) once it answers
    `ruok`. `popen` goes to subprocess.Popen (e.g. preexec_fn)."""
    port = free_port()
    data = os.path.join(directory, "zk-data")
    os.makedirs(data)
    config = os.path.join(directory, "zoo.cfg")
    with open(config, "w") as f:
        f.write("tickTime=%d\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                "admin.enableServer=false\nminSessionTimeout=%d\nmaxSessionTimeout=60000\n"
                "4lw.commands.whitelist=ruok\n" % (tick_ms, data, port, 2 * tick_ms))
    proc = subprocess.Popen(
        ["java", "-Xmx" + heap, "-cp", ZOOKEEPER_JAR, "-Dzookeeper.log.dir=" + directory,
         "org.apache.zookeeper.server.quorum.QuorumPeerMain", config],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("ZooKeeper exited at start (is Debian's zookeeper installed?)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.settimeout(1)
                conn.sendall(b"ruok")
                if conn.recv(4) == b"imok":
                    return proc, port
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError("ZooKeeper did not answer within a minute")
