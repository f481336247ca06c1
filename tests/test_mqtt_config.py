"""The committed Mosquitto example is what the generator makes; options and commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from monitor.commands.gateway import build_gateway
from monitor.config import load_config, parse_config
from monitor.errors import ConfigError
from monitor.mqtt.acl import render_acl
from monitor.mqtt.options import parse_options
from monitor.mqtt.sink import MqttSink
from monitor.plugins import PluginContext, sink_class

DEPLOY = Path(__file__).parent.parent / "deploy" / "mosquitto"


def test_committed_acl_example_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mqtt", "acl", "--config", str(DEPLOY / "heatmon.example.toml")]) == 0
    out = capsys.readouterr().out
    assert out == (DEPLOY / "acl.example").read_text(encoding="utf-8")
    # each gateway writes only its own patients' samples; nurse-ben reads only p-e904
    ben = out.split("user nurse-ben\n")[1].split("\n\n")[0]
    assert "p-7f3a" not in ben and "p-b21c" not in ben
    assert "topic read heatmon/v1/patients/p-e904/alerts" in ben
    home = out.split("user gw-home-7f3a\n")[1].split("\n\n")[0]
    assert home.splitlines() == [
        "topic write heatmon/v1/patients/p-7f3a/samples",
        "topic read heatmon/v1/patients/p-7f3a/errors",
    ]


def test_sink_is_registered_and_password_comes_from_environment(tmp_path: Path) -> None:
    config = load_config(
        DEPLOY / "heatmon.example.toml", environ={"HEATMON_MQTT_PASSWORD": "s3cret"}
    )
    assert sink_class("mqtt") is MqttSink
    opts = parse_options(config.sinks["mqtt"])
    assert opts.password is not None and opts.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(opts)
    sink = MqttSink.from_options(
        config.sinks["mqtt"], context=PluginContext(config=config, instance="clinic-1")
    )
    assert sink.name == "mqtt"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"topic_prefix": "heatmon/+/v1"}, "topic_prefix"),
        ({"port": 0}, "port"),
        ({"acl": {"gateways": {"gw": ["p/1"]}}}, "contains '/'"),
        ({"acl": {"caregivers": {"bad user": ["p1"]}}}, "login"),
        ({"hots": "x"}, "hots"),
    ],
)
def test_bad_options_name_the_key(options: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=r"sinks\.mqtt") as info:
        parse_options(options)
    assert key in str(info.value)


def test_gateway_command_builds_from_config_with_any_source(tmp_path: Path) -> None:
    config = parse_config(
        {
            "patients": [{"id": "p1"}],
            "sources": {
                "simulator": {"patients": [{"patient": "p1", "scenario": "hot_day_aerobic"}]}
            },
            "sinks": {"mqtt": {"username": "gw-a"}},
        },
        environ={},
    )
    gateway = build_gateway(config, source="simulator", outbox=tmp_path / "gw.sqlite")
    assert gateway.buffered == 0
    with pytest.raises(ConfigError, match=r"sinks\.mqtt"):
        build_gateway(
            parse_config({}, environ={}), source="simulator", outbox=tmp_path / "x.sqlite"
        )


def test_acl_lists_home_assistant_only_when_enabled() -> None:
    plain = render_acl(parse_options({"acl": {"caregivers": {"c": ["p1"]}}}))
    assert "homeassistant" not in plain
    ha = render_acl(parse_options({"homeassistant": True, "acl": {"caregivers": {"c": ["p1"]}}}))
    assert "topic read homeassistant/sensor/heatmon_p1/#" in ha


def test_home_assistant_nodes_are_distinct_for_distinct_pseudonyms() -> None:
    import re

    from monitor.mqtt.homeassistant import node_id

    ids = ["a.b", "a_b", "a._b", "a_.b", "a__b", "a-b", "p-7f3a"]
    nodes = [node_id(p) for p in ids]
    assert len(set(nodes)) == len(ids)
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]+", n) for n in nodes)
    assert node_id("p-7f3a") == "heatmon_p-7f3a"
