"""Configuration: one TOML file, validated at start, errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config, parse_config
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_the_commented_sample_is_valid() -> None:
    config = load_config(ROOT / "heatmon.sample.toml", environ={})
    assert [p.id for p in config.patients] == ["p-7f3a", "p-91c2"]
    assert config.profile("p-7f3a") is not None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"patients": [{"id": "p1", "threshold_rise_c": -1}]}, "patients.0.threshold_rise_c"),
        ({"patients": [{"id": "a/b"}]}, "patients.0.id"),
        ({"patients": [{"id": "p1", "colour": "red"}]}, "patients.0.colour"),
        ({"patients": [{"id": "p1"}, {"id": "p1"}]}, "repeated: p1"),
        (
            {"devices": [{"address": "x", "patient": "nobody", "role": "heart_rate"}]},
            "devices[0].patient 'nobody'",
        ),
        ({"engine": {"step_s": 0}}, "engine.step_s"),
        ({"monitor": {"log_level": "LOUD"}}, "monitor.log_level"),
    ],
)
def test_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(data, environ={})


def test_environment_overrides_secrets() -> None:
    config = parse_config(
        {"sinks": {"influxdb": {"url": "http://x", "token": "in-file"}}},
        environ={"HEATMON_INFLUXDB_TOKEN": "from-env", "HEATMON_MONITOR_INSTANCE": "m2"},
    )
    assert config.sinks["influxdb"]["token"] == "from-env"
    assert config.monitor.instance == "m2"


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "h.toml"
    bad.write_text("[monitor\n")
    with pytest.raises(ConfigError, match=r"h\.toml: not valid TOML"):
        load_config(bad, environ={})
    for deep in ("x = " + "[" * 50_000 + "]" * 50_000, "x = " + "{a=" * 3_000 + "1" + "}" * 3_000):
        bad.write_text(deep + "\n")
        with pytest.raises(ConfigError, match=r"h\.toml: arrays or tables nested too deeply"):
            load_config(bad, environ={})


def test_run_check_reports_errors_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "h.toml"
    bad.write_text('[[patients]]\nid = "p1"\nage = 300\n')
    r = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(bad), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2
    assert "patients.0.age" in r.stderr


def run_check(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """``heatmon run --check`` in this process (the exit code path is tested above), with
    the configuration's directory as the working directory."""
    monkeypatch.chdir(path.parent)
    code = main(["run", "--config", str(path), "--check"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[sinks.kafka]\n", "sinks.kafka: unknown sink 'kafka'"),
        ('[sinks.jsonl]\npaht = "x.jsonl"\n', "sinks.jsonl.paht"),
        ('[sinks.influxdb]\nbatch_size = "many"\n', "sinks.influxdb.batch_size"),
        ('[sinks.mqtt]\nhost = "127.0.0.1"\nport = "1883x"\n', "sinks.mqtt.port"),
        ("[sinks.web]\nport = 99999\n", "port"),
        ("[sources.simulator]\nspeed = -5\n", "sources.simulator.speed"),
        ('[sinks.jsonl]\nenabled = "no"\n', "sinks.jsonl.enabled must be true or false"),
        ('[engine]\nestimator = "crystal_ball"\n', "engine.estimator"),
        ("[engine]\nstale_after_s = 1e9\n", "engine.stale_after_s"),
    ],
)
def test_run_check_refuses_what_run_refuses_naming_the_key(
    tmp_path: Path,
    toml: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "heatmon.toml"
    path.write_text('[monitor]\ndata_dir = "var"\n\n[[patients]]\nid = "p1"\n\n' + toml)
    code, out, err = run_check(path, capsys, monkeypatch)
    assert code == 2, out + err
    assert message in err
    assert not (tmp_path / "var").exists(), "--check must not create files or connect"


def refused_by_check(
    tmp_path: Path,
    sections: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """What ``heatmon run --check`` says on stderr of a configuration of one patient and
    ``sections``, which it must refuse (exit code 2)."""
    path = tmp_path / "heatmon.toml"
    path.write_text('[monitor]\ndata_dir = "var"\n\n[[patients]]\nid = "p1"\n\n' + sections)
    code, out, err = run_check(path, capsys, monkeypatch)
    assert code == 2, out + err
    return err


BLE_DEVICE = '[[devices]]\naddress = "C8:2B:96:00:11:22"\npatient = "p1"\nrole = "heart_rate"\n'


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("scan_timeout_s = nan", "sources.ble.scan_timeout_s: Input should be a finite number"),
        ("connect_timeout_s = inf", "sources.ble.connect_timeout_s: Input should be a finite"),
        ("connect_timeout_s = 1e308", "sources.ble.connect_timeout_s: Input should be less"),
        ("reconnect_max_s = 1e9", "sources.ble.reconnect_max_s: Input should be less than or"),
        ("connect_attempts = 10000000000", "sources.ble.connect_attempts: Input should be less"),
        ("connect_attempts = inf", "sources.ble.connect_attempts: Input should be a finite"),
        ("scan_timeout_s = 0", "sources.ble.scan_timeout_s: Input should be greater than 0"),
        ("reconnect_base_s = 10\nreconnect_max_s = 1", "reconnect_max_s: Value error, must be >="),
        ("scan_timeout = 3", "sources.ble.scan_timeout: Extra inputs are not permitted (known:"),
    ],
)
def test_ble_options_out_of_range_are_refused_naming_the_key(
    tmp_path: Path,
    option: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``nan`` timeout ends every scan and connect at once; an endless one, or a reconnect
    wait of years, means a wearable that dropped out is never looked for again."""
    err = refused_by_check(
        tmp_path, BLE_DEVICE + f"\n[sources.ble]\n{option}\n", capsys, monkeypatch
    )
    assert message in err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("session_ttl_s = inf", "web.session_ttl_s: Input should be a finite number"),
        ("session_ttl_s = 1e30", "web.session_ttl_s: Input should be less than or equal to"),
        ("login_window_s = inf", "web.login_window_s: Input should be a finite number"),
        ("history_minutes = nan", "web.history_minutes"),
        ("[web.history]\ntimeout_s = nan", "web.history.timeout_s"),
    ],
)
def test_web_options_that_are_endless_are_refused_naming_the_key(
    tmp_path: Path,
    option: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``session_ttl_s = inf`` was taken, then every answer that sets a cookie (the login
    page's CSRF token, the login) was a 500: ``Max-Age`` cannot be infinite."""
    sections = f"[sinks.web]\nenabled = true\n\n[web]\n{option}\n"
    assert message in refused_by_check(tmp_path, sections, capsys, monkeypatch)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (BLE_DEVICE + "\n[sources.ble]\nconnect_attempts = true\n", "sources.ble.connect_attempts"),
        ("[engine]\nstep_s = true\n", "engine.step_s"),
        ("[sinks.influxdb]\nbatch_size = false\n", "sinks.influxdb.batch_size"),
        ('[[patients]]\nid = "p2"\nthreshold_rise_c = true\n', "threshold_rise_c"),
    ],
)
def test_true_or_false_where_a_number_belongs_is_refused_naming_the_key(
    tmp_path: Path,
    sections: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pydantic's lax mode took ``connect_attempts = true`` as 1 and ``step_s = true`` as a
    1-s window: a slip in the file ran with a value nobody wrote."""
    err = refused_by_check(tmp_path, sections, capsys, monkeypatch)
    assert message in err and "true/false is not a value for this key" in err, err


def test_run_check_accepts_the_sample_without_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = tmp_path / "heatmon.toml"
    sample.write_text((ROOT / "heatmon.sample.toml").read_text(encoding="utf-8"))
    code, out, err = run_check(sample, capsys, monkeypatch)
    assert code == 0, err
    assert "ok (2 patients" in out
    assert "sources: ble, sinks: jsonl, influxdb, thresholds)" in out  # mqtt, web: disabled


def test_an_oversized_or_binary_configuration_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * (5 * 1024 * 1024) + b"\n")
    with pytest.raises(ConfigError, match="larger than 4 MiB"):
        load_config(big, environ={})
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b'[monitor]\ninstance = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary, environ={})


def test_run_names_a_sink_that_cannot_start(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    path = tmp_path / "heatmon.toml"
    path.write_text(f'[sinks.jsonl]\npath = "{tmp_path / "a-file" / "events.jsonl"}"\n')
    r = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert "sinks.jsonl: could not start (" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_configuration_at_the_patient_bound_is_checked_in_linear_time() -> None:
    """MAX_PATIENTS (100,000) patients fit in a 2.8-MB file, within MAX_CONFIG_BYTES: the
    check for repeated ids counted each id in the whole list (10,000: 3 s, 20,000: 14 s,
    100,000: more than 5 min at 100 % CPU before ``heatmon run`` or ``--check`` said
    anything). A generous bound; the check is one pass now."""
    import time

    from monitor.config import MAX_PATIENTS

    patients = [{"id": f"p{i:06d}"} for i in range(MAX_PATIENTS)]
    started = time.monotonic()
    config = parse_config({"patients": patients}, environ={})
    assert len(config.patients) == MAX_PATIENTS
    assert config.profile(f"p{MAX_PATIENTS - 1:06d}") is not None
    patients[-1] = {"id": "p000007"}
    with pytest.raises(ConfigError, match="repeated: p000007"):
        parse_config({"patients": patients}, environ={})
    assert time.monotonic() - started < 60
