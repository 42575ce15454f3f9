#!/usr/bin/env bash
# The one command that runs every check: it installs what the tests need (a Python venv with
# the real client libraries), then runs formatting, lints, the Rust test suite (unit, property
# and multi-process integration tests) and the compatibility tests against real clients.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "installing test dependencies"
bash scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "building the agora binary"
cargo build --locked -p agora

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi

step "compatibility tests with real clients, and the web UI in headless Chromium"
AGORA_BIN="$PWD/target/debug/agora" timeout 600 .venv/bin/python -m pytest -q tests/compat
