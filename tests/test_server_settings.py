"""The server's settings schema: every flag and ``VISAGE_*`` variable read from one declaration,
bad values refused with exit code 2 and a message naming the flag or variable and the value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from safety_landscape.server.cli import EXIT_BAD_CONFIG, build_parser, config_from_args, main
from safety_landscape.server.config import Limits, ServerConfig
from safety_landscape.server.config_parser import SettingError, check_values, setting_fields

FIELDS = {sf.flag: sf for sf in setting_fields()}

# (flag, a value it refuses): one of each kind of check (type, bounds, choices, boolean, item format).
BAD_VALUES = [
    ("--max-batch-size", "abc"),
    ("--max-batch-size", "0"),
    ("--max-abs-coefficient", "ten"),
    ("--metrics-port", "70000"),
    ("--queue-size", "-1"),
    ("--grace-seconds", "-5"),
    ("--direction-storage", "disk"),
    ("--log-format", "xml"),
    ("--prompt-set", "no-equals-sign"),
]


def test_every_setting_keeps_its_flag_variable_and_default():
    expected = {
        "--max-batch-size": ("VISAGE_MAX_BATCH_SIZE", 64), "--max-prompts": ("VISAGE_MAX_PROMPTS", 1024),
        "--queue-size": ("VISAGE_QUEUE_SIZE", 64), "--queue-per-tenant": ("VISAGE_QUEUE_PER_TENANT", 16),
        "--prompt-set": ("VISAGE_PROMPT_SETS", ()), "--model": ("VISAGE_MODEL", "tiny-random"),
        "--listen": ("VISAGE_LISTEN", "127.0.0.1:50051"), "--require-auth": ("VISAGE_REQUIRE_AUTH", False),
        "--open-health": ("VISAGE_OPEN_HEALTH", True), "--grace-seconds": ("VISAGE_GRACE_SECONDS", 30.0),
        "--port-file": ("VISAGE_PORT_FILE", ""), "--max-message-bytes": ("VISAGE_MAX_MESSAGE_BYTES", 16 * 1024 * 1024),
    }
    for flag, (env, default) in expected.items():
        assert (FIELDS[flag].env, FIELDS[flag].default) == (env, default), flag
    assert config_from_args(build_parser().parse_args([]), environ={}) == ServerConfig()


def test_help_lists_every_flag_and_variable():
    text = build_parser().format_help()
    for sf in setting_fields():
        assert sf.env in text, sf.env
        if sf.spec.cli:
            assert sf.flag in text, sf.flag
    assert "VISAGE_TOKENS" in text  # environment only: no flag shows a token in the process list
    assert "--tokens " not in text


@pytest.mark.parametrize(("flag", "value"), BAD_VALUES)
def test_a_bad_flag_exits_2_naming_the_flag_and_the_value(flag, value, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([flag, value])
    assert exited.value.code == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert flag in err and repr(value) in err


@pytest.mark.parametrize(("flag", "value"), [*BAD_VALUES, ("--require-auth", "maybe")])
def test_a_bad_variable_exits_2_naming_the_variable_and_the_value(flag, value, monkeypatch, capsys):
    env = FIELDS[flag].env
    monkeypatch.setenv(env, value)
    assert main([]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert f"visage-server: {env}: invalid value {value!r}" in err
    assert "Traceback" not in err


def test_the_installed_command_refuses_a_bad_variable_without_a_traceback():
    out = subprocess.run(
        [sys.executable, "-m", "safety_landscape.server.cli"],
        capture_output=True, text=True, timeout=120, env={"VISAGE_MAX_BATCH_SIZE": "abc", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 2
    assert "VISAGE_MAX_BATCH_SIZE" in out.stderr and "'abc'" in out.stderr and "Traceback" not in out.stderr


def test_a_flag_wins_over_its_variable_and_variables_are_typed():
    environ = {
        "VISAGE_MAX_BATCH_SIZE": "5", "VISAGE_QUEUE_SIZE": "9", "VISAGE_OPEN_HEALTH": "off",
        "VISAGE_PROMPT_SETS": "a=x.csv, b=y.txt:benign", "VISAGE_TOKENS": "alice:t1", "VISAGE_MAX_ABS_COEFFICIENT": "2.5",
    }
    config = config_from_args(build_parser().parse_args(["--max-batch-size", "7"]), environ=environ)
    assert config.limits == Limits(max_batch_size=7, max_queued_jobs=9, max_abs_coefficient=2.5)
    assert config.open_health is False and config.tokens_env == "alice:t1"
    assert config.prompt_sets == (("a", "x.csv"), ("b", "y.txt:benign"))
    flags = ["--prompt-set", "c=z.csv", "--prompt-set", "d=w.csv", "--open-health"]
    config = config_from_args(build_parser().parse_args(flags), environ=environ)
    assert config.prompt_sets == (("c", "z.csv"), ("d", "w.csv")) and config.open_health is True


def test_a_config_built_in_code_meets_the_same_bounds():
    check_values(ServerConfig())
    with pytest.raises(SettingError, match=r"--max-batch-size: invalid value 0: must be >= 1"):
        check_values(ServerConfig(limits=Limits(max_batch_size=0)))
    with pytest.raises(SettingError, match="--direction-storage: invalid value 'disk'"):
        check_values(ServerConfig(direction_storage="disk"))
