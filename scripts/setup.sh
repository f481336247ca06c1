#!/usr/bin/env bash
# Installs everything heatmon needs on a fresh Debian machine: the Debian packages of the
# real parts (Mosquitto, InfluxDB 1.x, VictoriaMetrics, PostgreSQL, Chromium) and a virtualenv in .venv
# with heatmon and its dev tools. Safe to run again; it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(python3-venv mosquitto influxdb victoria-metrics chromium curl docker-compose postgresql)
# Node.js and npm install the dashboard's charting library; any install of them will do
# (Debian's packages, or NodeSource's nodejs which bundles npm).
command -v npm >/dev/null 2>&1 || DEBS+=(nodejs npm)
need=()
for pkg in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing Debian packages: ${need[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    "$PY" -m venv .venv
fi
stamp=.venv/.heatmon-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing heatmon and its dependencies into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip >&2
    .venv/bin/python -m pip install -q -e ".[dev]" >&2
    touch "$stamp"
fi

# The dashboard's charting library (uPlot), pinned by dashboards/web/package-lock.json.
web=dashboards/web
if [ ! -d "$web/node_modules/uplot" ] || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
    echo "setup: installing the dashboard's JavaScript dependencies (npm ci)" >&2
    (cd "$web" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
