#!/usr/bin/env bash
# The test command: installs what is missing, then lint, type-check and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff" >&2
.venv/bin/ruff check monitor adapters tests bench
.venv/bin/ruff format --check monitor adapters tests bench
echo "== mypy --strict" >&2
.venv/bin/mypy
echo "== pytest" >&2
# Two workers (pytest-xdist): most tests wait on servers, browsers and sockets, so two run
# side by side in about two thirds of the time on two cores. Every test starts its own servers
# on free ports in temp dirs, so they do not share anything. `-n 0` runs them one at a time.
# pyproject's addopts has --dist worksteal and tests/conftest.py puts the slow ones first.
exec .venv/bin/pytest -n "${HEATMON_TEST_WORKERS:-2}" "$@"
