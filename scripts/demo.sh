#!/usr/bin/env bash
# The main job: installs what is missing, then runs `heatmon demo` with its embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/heatmon demo "$@"
