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
exec .venv/bin/pytest "$@"
