"""``visage`` reads a command line only as written and fails in words: on real servers (one open, one
that requires a token), every failure is one line on stderr with the documented exit code, never a
traceback, and with ``--json`` one JSON document on stdout.

- A flag is never read as a prefix of another (``--max-new-token`` is not ``--max-new-tokens``),
  and an unknown flag is named with the closest known one ("did you mean"), before any other
  error (``--sever`` is not reported as a missing ``--server``), at every level of subcommands;
  every argument parser of the client, bench/ and recipes/ is the strict one.
- A missing token file (info, health, sweep) is a setup error (exit 2) named as one; a token the
  server refuses is said to be refused, with what to do (not "bring the server up"), for one
  server and for a sweep's fleet; no token where one is required says so.
- A reader that stops early (``visage info | head -2``) ends the command quietly (exit 0).
- Exit codes: 2 usage and setup, 1 the server refused or failed the work, as docs/sweeps.md says.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from serving import running_server

from safety_landscape.client.cli import build_parser, main
from safety_landscape.common.command_line import StrictArgumentParser

ROOT = Path(__file__).resolve().parent.parent
VISAGE = [sys.executable, "-m", "safety_landscape.client.cli"]
UNREACHABLE = "127.0.0.1:1"  # nothing listens there: a command that connects would fail with UNAVAILABLE


@pytest.fixture(scope="module")
def guarded():
    """A real tiny-random server that requires a bearer token (the tenant "alice", token "tok-alice")."""
    with running_server(tokens_env="alice:tok-alice") as server:
        yield server


def client_lines(err: str) -> list[str]:
    """The client's lines on stderr (the in-process server logs there too)."""
    return [line for line in err.splitlines() if line.startswith("visage")]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    return code, captured.out, captured.err


@pytest.mark.parametrize(("argv", "said"), [
    (["info", "--sever", UNREACHABLE], "unknown flag --sever (did you mean --server?)"),
    (["evaluate", "--server", UNREACHABLE, "--set", "s", "--max-new-token", "2"],
     "unknown flag --max-new-token (did you mean --max-new-tokens?)"),
    (["generate", "--server", UNREACHABLE, "--prompt", "x", "--max-new", "2"],
     "unknown flag --max-new (did you mean --max-new-tokens?)"),
    (["--jsn", "info", "--server", UNREACHABLE], "unknown flag --jsn (did you mean --json?)"),
    (["direction", "create", "--server", UNREACHABLE, "--sed", "1"], "unknown flag --sed (did you mean --seed?)"),
    (["sweep", "--preset", "quick", "--server", UNREACHABLE, "--out", "o", "--range", "-0.5", "0.5", "--poitns", "3"],
     "unknown flag --poitns (did you mean --points?)"),
    (["export", "d", "--fromat", "csv"], "unknown flag --fromat (did you mean --format?)"),
])
def test_an_unknown_flag_is_named_with_the_closest_known_one_never_read_as_another(capsys, argv, said):
    code, out, err = run(capsys, *argv)
    assert code == 2 and said in err and out == ""
    assert "required" not in err and "UNAVAILABLE" not in err  # nothing else blamed, nothing connected
    code, out, _ = run(capsys, "--json", *argv)
    assert code == 2 and json.loads(out) == {"error": said, "exit_code": 2}


def test_values_that_look_like_flags_stay_values_and_prefixes_are_refused_everywhere():
    args = build_parser().parse_args(["sweep", "--preset", "quick", "--server", "x", "--out", "o", "--range", "-0.5",
                                      "0.5", "--base", "seed:1=-0.25"])
    assert args.range == [-0.5, 0.5] and args.base == ["seed:1=-0.25"]

    def parsers(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    every = list(parsers(build_parser()))
    assert len(every) > 15 and all(isinstance(p, StrictArgumentParser) and not p.allow_abbrev for p in every)


def test_every_argument_parser_of_the_client_bench_and_recipes_is_the_strict_one():
    plain = []
    for folder in ("client", "bench", "recipes", "common"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "ArgumentParser"):
                    plain.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not plain, f"argparse.ArgumentParser reads flag prefixes; use StrictArgumentParser: {plain}"


@pytest.mark.parametrize("command", [["info"], ["health"], ["sweep", "--preset", "quick", "--out", "OUT"]])
def test_a_missing_token_file_is_a_setup_error_in_one_line(capsys, tmp_path, command):
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    argv += ["--server", UNREACHABLE, "--token-file", str(tmp_path / "absent.token")]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "absent.token: no such file" in err and "--token-file" in err and "UNAVAILABLE" not in err
    code, out, _ = run(capsys, *argv, "--json")
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2 and "absent.token: no such file" in doc["error"]


def test_a_refused_token_is_said_to_be_refused_with_what_to_do(capsys, guarded, tmp_path):
    bad = tmp_path / "bad.token"
    bad.write_text("tok-mallory\n")
    for argv in (["info", "--server", guarded.target, "--token-file", str(bad)],
                 ["sweep", "--preset", "quick", "--server", guarded.target, "--token-file", str(bad),
                  "--out", str(tmp_path / "q")]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "" and len(client_lines(err)) == 1, err
        assert f"the server refused the token ({guarded.target}: invalid token)" in err
        assert "--token-file" in err and "bring it up" not in err and "Remove it from --server" not in err
        code, out, _ = run(capsys, *argv, "--json")
        assert code == 2 and "refused the token" in json.loads(out)["error"]
    code, _, err = run(capsys, "health", "--server", guarded.target)  # health is open; info is not
    assert code == 0
    code, _, err = run(capsys, "info", "--server", guarded.target)
    assert code == 2 and f"{guarded.target} requires a bearer token and none was given" in err
    good = tmp_path / "good.token"
    good.write_text("tok-alice\n")
    assert run(capsys, "info", "--server", guarded.target, "--token-file", str(good))[0] == 0


def test_a_reader_that_stops_early_ends_the_command_quietly(guarded, tmp_path):
    good = tmp_path / "good.token"
    good.write_text("tok-alice\n")
    # The reading end is closed before the command writes a byte: its first write meets a broken pipe.
    proc = subprocess.Popen([*VISAGE, "info", "--server", guarded.target, "--token-file", str(good)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_exit_codes_and_json_failures_as_documented(capsys, tiny_server, tmp_path):
    # 1: the server refused the work (an unknown prompt set), and a server that cannot be reached.
    code, out, err = run(capsys, "--json", "evaluate", "--server", tiny_server.target, "--set", "nope")
    doc = json.loads(out)
    assert code == 1 and doc["exit_code"] == 1 and "unknown prompt set" in doc["error"] and "nope" in err
    # 2: input the command cannot use (a store folder that does not exist; an --at it cannot read).
    for argv in (["rescore", str(tmp_path / "none")], ["export", str(tmp_path / "none")],
                 ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c")],
                 ["evaluate", "--server", tiny_server.target, "--set", "harmful-mini", "--at", "seed=1"]):
        code, out, err = run(capsys, *argv, "--json")
        assert code == 2 and json.loads(out)["exit_code"] == 2 and err.startswith("visage: "), argv
    # The gate's usage error keeps the gate's document.
    code, out, _ = run(capsys, "--json", "gate", "config.toml")
    assert code == 2 and json.loads(out) == {"error": "the following arguments are required: --server (or set "
                                                      "VISAGE_SERVER)", "exit_code": 2, "verdict": "error"}
