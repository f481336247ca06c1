"""docker-compose.yml: valid against the Compose specification's JSON schema, and every
variable, port and service name the app reads is set.

The schema is the current one of the Compose specification (``schema/compose-spec.json`` of
the compose-spec/compose-spec repository, Apache-2.0), as the ``check-jsonschema`` package
(a dev dependency) ships and updates it. Debian's ``docker-compose`` 1.29 (installed by
``scripts/setup.sh``) runs ``docker-compose config`` as a second, independent check that
also does the variable interpolation.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from monitor.config import parse_config
from monitor.plugins import PluginContext, sink_class, source_class
from monitor.web.sink import WebSink

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKER_COMPOSE = Path("/usr/bin/docker-compose")
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env and (env[name] or not op or not op.startswith(":")):
            return env[name]
        if op and op.endswith("-"):
            return arg
        raise AssertionError(f"docker-compose.yml: ${{{name}}} is not set: {arg}")

    return VARIABLE.sub(sub, text).replace("$$", "$")


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    text = COMPOSE.read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(interpolate(text, env_example() if env is None else env))
    return data


def compose_spec_validator() -> jsonschema.protocols.Validator:
    """A validator for the Compose specification's schema (with format checks)."""
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text(encoding="utf-8"))
    assert schema["title"] == "Compose Specification"
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_errors(data: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in compose_spec_validator().iter_errors(data)
    ]


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    assert schema_errors(compose()) == []


def test_the_schema_check_catches_mistakes_and_knows_current_keys() -> None:
    bad = compose()
    bad["services"]["heatmon"]["healthcheck"]["intervall"] = "10s"
    bad["services"]["grafana"]["depends_on"]["influxdb"]["condition"] = "service_ready"
    errors = schema_errors(bad)
    assert any("intervall" in e for e in errors), errors
    assert any("service_ready" in e for e in errors), errors
    # A key newer than Debian's docker-compose 1.29 schema (Compose v2.20+): accepted.
    newer = compose()
    newer["services"]["heatmon"]["healthcheck"]["start_interval"] = "2s"
    assert schema_errors(newer) == []


def test_docker_compose_accepts_the_file() -> None:
    if not DOCKER_COMPOSE.exists():
        pytest.fail("docker-compose is missing: run scripts/setup.sh")
    proc = subprocess.run(
        [str(DOCKER_COMPOSE), "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr


def test_every_variable_is_set_or_has_a_default() -> None:
    env = env_example()
    for m in VARIABLE.finditer(COMPOSE.read_text(encoding="utf-8")):
        name, op = m.group(1), m.group(2)
        assert name in env or (op is not None and op.endswith("-")), f"${{{name}}} is not set"
    with pytest.raises(AssertionError, match="INFLUXDB_ADMIN_PASSWORD"):
        compose({k: v for k, v in env.items() if k != "INFLUXDB_ADMIN_PASSWORD"})


def test_every_service_has_a_healthcheck_and_its_mounts_exist() -> None:
    services = compose()["services"]
    assert {"influxdb", "mosquitto", "grafana", "heatmon", "simulated-patients"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"


def heatmon_config(service: dict[str, Any], config_path: str) -> tuple[Any, dict[str, str]]:
    environ = {k: str(v) for k, v in service["environment"].items()}
    mounts = dict(v.split(":")[1::-1] for v in service["volumes"] if v.startswith("./"))
    text = (ROOT / mounts[config_path]).read_text(encoding="utf-8")
    return parse_config(tomllib.loads(text), where=config_path, environ=environ), environ


def test_heatmon_reads_ports_hosts_and_secrets_that_compose_sets() -> None:
    data = compose()
    services = data["services"]
    heatmon = services["heatmon"]
    config, environ = heatmon_config(heatmon, "/etc/heatmon/heatmon.toml")
    # The dashboard listens where compose publishes it and where the healthcheck looks.
    context = PluginContext(config=config, instance="t")
    sink = WebSink.from_options(config.sinks["web"], context=context)
    port = sink.config.port
    assert sink.config.host == "0.0.0.0"
    published = [p.split(":") for p in heatmon["ports"]]
    assert [str(port), str(port)] in published
    assert environ["HEATMON_WEB_PORT"] == str(port)
    # Every server it talks to is a compose service.
    influx = config.sinks["influxdb"]
    host = re.match(r"http://(\w+):8086$", influx["url"])
    assert host is not None and host.group(1) in services
    assert config.sinks["mqtt"]["host"] in services
    assert environ["HEATMON_INFLUXDB_URL"] == influx["url"]
    assert influx["bucket"] == environ["INFLUXDB_BUCKET"]
    # Secrets come from the environment, never from the file.
    assert "HEATMON_MQTT_PASSWORD" in environ and "password" not in influx
    assert environ["HEATMON_CAREGIVER_PASSWORD"]
    patients = {p.id for p in config.patients}
    assert set(re.findall(r'"([^"]+)"', environ["HEATMON_CAREGIVER_PATIENTS"])) == patients


def test_simulated_patients_publish_as_the_gateway_user() -> None:
    services = compose()["services"]
    sim = services["simulated-patients"]
    config, environ = heatmon_config(sim, "/etc/heatmon/simulator.toml")
    assert config.sinks["mqtt"]["host"] in services
    assert config.sinks["mqtt"]["username"] == "gateway"
    assert environ["HEATMON_MQTT_PASSWORD"] == env_example()["MQTT_GATEWAY_PASSWORD"]
    acl = (ROOT / "docker" / "mosquitto" / "acl").read_text(encoding="utf-8")
    block = acl.split("user gateway", 1)[1].split("\nuser ", 1)[0]
    rules = [line for line in block.splitlines() if line.startswith("topic ")]
    assert rules == ["topic write heatmon/v1/patients/+/samples"]


def test_grafana_gets_what_its_provisioning_reads() -> None:
    grafana = compose()["services"]["grafana"]
    provisioning = (
        ROOT / "dashboards" / "grafana" / "provisioning" / "datasources" / "heatmon.yaml"
    ).read_text(encoding="utf-8")
    for name in re.findall(r"\$\{([A-Z_]+)\}", provisioning):
        assert name in grafana["environment"], name
    (token_file,) = re.findall(r"\$__file\{([^}]+)\}", provisioning)
    mounts = [v.split(":")[1] for v in grafana["volumes"]]
    assert any(token_file.startswith(m + "/") for m in mounts)
    init = (ROOT / "docker" / "influxdb" / "init-tokens.sh").read_text(encoding="utf-8")
    assert Path(token_file).name in init


@pytest.mark.parametrize(
    ("service", "config_path"),
    [
        ("heatmon", "/etc/heatmon/heatmon.toml"),
        ("simulated-patients", "/etc/heatmon/simulator.toml"),
    ],
)
def test_every_plugin_in_the_container_configs_accepts_its_options(
    service: str, config_path: str
) -> None:
    config, _ = heatmon_config(compose()["services"][service], config_path)
    context = PluginContext(config=config, instance="compose-test")
    for name, options in config.sinks.items():
        sink_class(name).from_options(options, context=context)
    for name, options in config.sources.items():
        source_class(name).from_options(options, context=context)
    assert config.sinks


SHELL_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)(:?[-=?+])?")
HEATMON_ENTRYPOINT = ROOT / "docker" / "heatmon" / "entrypoint.sh"


def shell_reads(script: str) -> set[str]:
    """Variables a shell script reads without a default and does not set itself."""
    assigned = set(re.findall(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=", script, re.M))
    code = "\n".join(line.split("#", 1)[0] for line in script.splitlines())
    reads = {m.group(1) for m in SHELL_VARIABLE.finditer(code) if m.group(2) is None}
    return reads - assigned - {"@", "1"}


def test_every_variable_the_entrypoint_reads_is_set() -> None:
    script = HEATMON_ENTRYPOINT.read_text(encoding="utf-8")
    reads = shell_reads(script)
    assert {"HEATMON_INFLUXDB_URL", "INFLUXDB_BUCKET"} <= reads, reads
    heatmon = compose()["services"]["heatmon"]
    assert reads <= set(heatmon["environment"]), sorted(reads - set(heatmon["environment"]))
    # Variables read with a default are used for what compose sets.
    defaulted = {m.group(1) for m in SHELL_VARIABLE.finditer(script) if m.group(2)}
    assert {"HEATMON_CAREGIVER_PASSWORD", "HEATMON_CAREGIVER_PATIENTS"} <= defaulted
    assert {"HEATMON_CAREGIVER_PASSWORD", "HEATMON_CAREGIVER_PATIENTS"} <= set(
        heatmon["environment"]
    )
    with pytest.raises(AssertionError):
        assert shell_reads('echo "$NOT_SET_ANYWHERE"') <= set(heatmon["environment"])


@pytest.mark.parametrize(
    ("service", "config_path"),
    [
        ("heatmon", "/etc/heatmon/heatmon.toml"),
        ("simulated-patients", "/etc/heatmon/simulator.toml"),
    ],
)
def test_every_heatmon_variable_in_compose_reaches_the_configuration(
    service: str, config_path: str
) -> None:
    """``HEATMON_<SECTION>_<KEY>`` only works for a section the configuration has: a name
    that matches none would be ignored without a word."""
    config, environ = heatmon_config(compose()["services"][service], config_path)
    script = HEATMON_ENTRYPOINT.read_text(encoding="utf-8")
    sections = {"monitor", "engine", "web", *config.sinks, *config.sources}
    for name in environ:
        if not name.startswith("HEATMON_") or name in script:
            continue
        section, _, key = name.removeprefix("HEATMON_").lower().partition("_")
        assert section in sections and key, f"{service}: {name} matches no configured section"
    secrets = [n for n in environ if n.endswith(("_PASSWORD", "_TOKEN"))]
    assert secrets and all(environ[n] for n in secrets), secrets


def published(service: dict[str, Any]) -> set[int]:
    """Container ports a service publishes (``[ip:]host:container``)."""
    return {int(str(p).rsplit(":", 1)[1]) for p in service.get("ports", [])}


def test_every_port_the_app_talks_to_is_where_the_server_listens() -> None:
    services = compose()["services"]
    listener = re.search(
        r"^listener\s+(\d+)",
        (ROOT / "docker" / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8"),
        re.M,
    )
    assert listener is not None
    mqtt_port = int(listener.group(1))
    assert mqtt_port in published(services["mosquitto"])
    for service, path in (
        ("heatmon", "/etc/heatmon/heatmon.toml"),
        ("simulated-patients", "/etc/heatmon/simulator.toml"),
    ):
        config, _ = heatmon_config(services[service], path)
        assert int(config.sinks["mqtt"]["port"]) == mqtt_port, service
    config, environ = heatmon_config(services["heatmon"], "/etc/heatmon/heatmon.toml")
    influx_port = int(str(config.sinks["influxdb"]["url"]).rsplit(":", 1)[1])
    assert influx_port == 8086 and influx_port in published(services["influxdb"])
    # The healthchecks look where the services listen.
    web_port = int(environ["HEATMON_WEB_PORT"])
    assert "$${HEATMON_WEB_PORT}" in COMPOSE.read_text(encoding="utf-8")
    assert web_port in published(services["heatmon"])
    grafana_check = " ".join(services["grafana"]["healthcheck"]["test"])
    (grafana_port,) = map(int, re.findall(r"127\.0\.0\.1:(\d+)/", grafana_check))
    assert grafana_port in published(services["grafana"])
