"""TLS with the unmodified clients: the `marathon` client over https against the cluster's
own CA, and pymesos — which speaks no TLS — through the same port with
`--tls-support-downgrade`, as Mesos' LIBPROCESS_SSL_SUPPORT_DOWNGRADE lets it, and its task
runs. (That executors reach their agent over TLS is the Rust tests' `security/tls.rs`.)"""

import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
from marathon import MarathonClient
from marathon.models import MarathonApp
from pymesos import MesosSchedulerDriver

from compat_util import RecordingScheduler, register, stop_driver, task
from conftest import start_agora, stop_agora

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(directory, *args):
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def make_certificates(directory):
    """A throw-away CA and a certificate for 127.0.0.1 signed by it."""
    openssl(directory, "req", "-x509", *EC, "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "1", "-subj", "/CN=agora compat CA")
    openssl(directory, "req", *EC, "-keyout", "node.key", "-out", "node.csr",
            "-subj", "/CN=node")
    (directory / "node.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    openssl(directory, "x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "node.pem", "-days", "1", "-extfile", "node.ext")
    return directory / "ca.pem", directory / "node.pem", directory / "node.key"


@pytest.fixture
def tls_node(tmp_path):
    ca, cert, key = make_certificates(tmp_path)
    node = start_agora(tmp_path, (
        "--tls-cert", str(cert), "--tls-key", str(key), "--tls-support-downgrade",
    ))
    node.ca = ca
    yield node
    problem = stop_agora(node)
    assert problem is None, problem


def test_clients_reach_a_tls_cluster(tls_node, monkeypatch):
    https = "https://127.0.0.1:%d" % tls_node.port
    # The marathon client (requests) checks the certificate against the test's CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_node.ca))
    client = MarathonClient(https)
    client.create_app("over-tls", MarathonApp(cmd="sleep 60", cpus=0.1, mem=32, instances=1))
    assert [a.id for a in client.list_apps()] == ["/over-tls"]
    # A client that does not trust the CA is refused the handshake.
    with pytest.raises(urllib.error.URLError) as refused:
        urllib.request.urlopen(https + "/v2/apps", timeout=5)
    assert isinstance(refused.value.reason, ssl.SSLError)

    # pymesos over plain HTTP on the same port.
    sched = RecordingScheduler()
    framework = {"user": "root", "name": "plain-pymesos", "failover_timeout": 60.0}
    driver = MesosSchedulerDriver(sched, framework, tls_node.master, timeout=30)
    driver.start()
    try:
        register(sched)
        offer = sched.next_offer()
        driver.launchTasks(offer["id"], [task(offer, "through-downgrade", "echo hello")])
        sched.wait_update(lambda s: s["state"] == "TASK_FINISHED", "the task finished")
    finally:
        stop_driver(driver)
