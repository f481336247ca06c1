# heatmon: the service, its dashboard (with the charting library from npm) and the CLI.
# Build: docker compose build heatmon. Bluetooth from a container: see README "Dashboards
# and docker-compose" (host network and the host's D-Bus socket).
#
# The image installs the wheel, as an operator would and as tests/test_packaging.py does:
# the dashboard (dashboards/web with uPlot) and the JSON Schemas travel inside the package
# (setup.py copies the dashboard into monitor/web/static), so nothing of the checkout is
# needed at run time.
FROM node:20-bookworm-slim AS web-assets
WORKDIR /src/dashboards/web
COPY dashboards/web/package.json dashboards/web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md LICENSE ./
COPY monitor ./monitor
COPY adapters ./adapters
COPY dashboards/web ./dashboards/web
COPY --from=web-assets /src/dashboards/web/node_modules ./dashboards/web/node_modules
RUN pip wheel --no-cache-dir --no-deps -w /dist .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends bluez dbus curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/heatmon heatmon
COPY --from=wheel /dist /tmp/dist
RUN pip install /tmp/dist/heatmon-*.whl && rm -rf /tmp/dist
COPY docker/heatmon/entrypoint.sh /usr/local/bin/heatmon-entrypoint
USER heatmon
WORKDIR /var/lib/heatmon
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --retries=5 CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/heatmon-entrypoint"]
CMD ["heatmon", "run", "--config", "/etc/heatmon/heatmon.toml"]
