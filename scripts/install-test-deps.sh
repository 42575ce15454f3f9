#!/usr/bin/env bash
# Installs what the tests need: Debian's haproxy (the HAProxy bridge's tests run it) and
# zookeeper (the masters' election tests run it), and
# what the Python compatibility tests (tests/compat) need into $REPO/.venv:
#   - pytest, the `marathon` 0.13.0 client for the services API and `chronos-python` 1.2.1
#     for the jobs API
#   - selenium 4.51.0 for the web UI's tests in Debian's headless Chromium (chromium and
#     chromium-driver from Debian; selenium is told where the driver is, so it never downloads
#     one)
#   - pymesos 0.3.15 with http-parser 0.9.0's pure-Python parser (the C extension of
#     http-parser does not build on Python >= 3.11, so only its `http_parser/*.py` files are
#     copied into site-packages and pymesos is installed with --no-deps), plus six and addict,
#     and kazoo 2.10.0, which pymesos uses to find the leading master in ZooKeeper (zk://).
# Idempotent: a venv that already has everything is left alone. Quiet on success; on failure
# the log of the failing step is printed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PY="$VENV/bin/python"
PYMESOS_VERSION="0.3.15"
HTTP_PARSER_VERSION="0.9.0"
MARATHON_VERSION="0.13.0"
CHRONOS_VERSION="1.2.1"
SELENIUM_VERSION="4.51.0"
KAZOO_VERSION="2.10.0"

LOG="$(mktemp -t install-test-deps.XXXXXX.log)"
WORK="$(mktemp -d -t install-test-deps.XXXXXX)"
cleanup() { rm -rf "$WORK" "$LOG"; }
trap cleanup EXIT

# run CMD...: runs quietly, shows the log and fails if the command fails.
run() {
    if ! "$@" >>"$LOG" 2>&1; then
        echo "install-test-deps: command failed: $*" >&2
        cat "$LOG" >&2
        exit 1
    fi
}

# Debian packages the Rust integration tests run for real: HAProxy (the discovery bridge), the
# fetcher's extractors and the test CA's openssl.
missing=""
for tool in haproxy:haproxy tar:tar unzip:unzip xz:xz-utils gzip:gzip openssl:openssl; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing="$missing ${tool#*:}"
done
# The Docker tests' image is Debian's static busybox in an empty root.
dpkg -s busybox-static >/dev/null 2>&1 || missing="$missing busybox-static"
# The web UI's tests drive Debian's Chromium through its chromedriver.
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
# Masters elected in ZooKeeper: Debian's server (and its Java runtime), which the tests start
# themselves on loopback ports; no system service is set up (that is `zookeeperd`).
[ -f /usr/share/java/zookeeper.jar ] || missing="$missing zookeeper"
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update
    # shellcheck disable=SC2086 # one word per package
    run apt-get install -y --no-install-recommends $missing
fi

# The check that everything is in place (also used as the final verification): pymesos imports,
# is the expected version, and its HTTP parser is http-parser's pure-Python one.
verify() {
    "$PY" - "$PYMESOS_VERSION" "$MARATHON_VERSION" "$CHRONOS_VERSION" "$SELENIUM_VERSION" \
        "$KAZOO_VERSION" <<'EOF'
import sys
import importlib.metadata as md

want = sys.argv[1]
import marathon  # noqa: F401
if md.version("marathon") != sys.argv[2]:
    sys.exit(f"marathon {md.version('marathon')} installed, want {sys.argv[2]}")
import chronos  # noqa: F401
if md.version("chronos-python") != sys.argv[3]:
    sys.exit(f"chronos-python {md.version('chronos-python')} installed, want {sys.argv[3]}")
import selenium  # noqa: F401
if md.version("selenium") != sys.argv[4]:
    sys.exit(f"selenium {md.version('selenium')} installed, want {sys.argv[4]}")
import kazoo.client  # noqa: F401
if md.version("kazoo") != sys.argv[5]:
    sys.exit(f"kazoo {md.version('kazoo')} installed, want {sys.argv[5]}")
import pytest  # noqa: F401
import six  # noqa: F401
import addict  # noqa: F401
import pymesos
from pymesos import MesosSchedulerDriver, MesosExecutorDriver  # noqa: F401
import pymesos.process as process
import http_parser.pyparser as pyparser

have = md.version("pymesos")
if have != want:
    sys.exit(f"pymesos {have} installed, want {want}")
if process.HttpParser is not pyparser.HttpParser:
    sys.exit(f"pymesos uses {process.HttpParser!r}, not the pure-Python http_parser.pyparser")
try:
    import http_parser.parser  # noqa: F401  (the C extension must not be there)
except ImportError:
    pass
else:
    sys.exit("http_parser's C extension is importable; expected the pure-Python parser only")
EOF
}

# A venv is usable if its interpreter runs (a pyenv upgrade can leave a dangling one behind).
if [ -x "$PY" ] && "$PY" -c 'import sys' >/dev/null 2>&1 && verify >/dev/null 2>&1; then
    exit 0
fi

make_venv() { # make_venv PYTHON
    rm -rf "$VENV"
    "$1" -m venv "$VENV" >>"$LOG" 2>&1 && "$VENV/bin/python" -m pip --version >>"$LOG" 2>&1
}

if ! { [ -x "$PY" ] && "$PY" -m pip --version >/dev/null 2>&1; }; then
    # Prefer the python3 on PATH (pyenv's 3.11 on the dev machines); fall back to Debian's, which
    # needs the python3-venv package for `-m venv` to work.
    if ! make_venv python3; then
        if ! { [ -x /usr/bin/python3 ] && make_venv /usr/bin/python3; }; then
            export DEBIAN_FRONTEND=noninteractive
            run apt-get update
            run apt-get install -y python3-venv
            if ! make_venv /usr/bin/python3; then
                echo "install-test-deps: could not create a venv at $VENV" >&2
                cat "$LOG" >&2
                exit 1
            fi
        fi
    fi
fi

PIP=("$PY" -m pip --disable-pip-version-check --no-input -q)

run "${PIP[@]}" install pytest six addict "marathon==$MARATHON_VERSION" \
    "chronos-python==$CHRONOS_VERSION" "selenium==$SELENIUM_VERSION" "kazoo==$KAZOO_VERSION"

# http-parser: pure-Python package only, copied from the sdist (no C build).
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if ! "$PY" -c 'import http_parser.pyparser' >/dev/null 2>&1; then
    run "${PIP[@]}" download --no-deps --no-binary :all: "http-parser==$HTTP_PARSER_VERSION" -d "$WORK"
    run tar -xzf "$WORK/http-parser-$HTTP_PARSER_VERSION.tar.gz" -C "$WORK"
    rm -rf "$SITE/http_parser"
    mkdir -p "$SITE/http_parser"
    # Only the .py modules: the sdist also ships C sources, a darwin .so and stale .pyc files.
    cp "$WORK/http-parser-$HTTP_PARSER_VERSION"/http_parser/*.py "$SITE/http_parser/"
fi

run "${PIP[@]}" install --no-deps "pymesos==$PYMESOS_VERSION"

if ! verify >>"$LOG" 2>&1; then
    echo "install-test-deps: verification failed" >&2
    cat "$LOG" >&2
    exit 1
fi
