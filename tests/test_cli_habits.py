"""The CLI's habits with the real ``visage`` process and a real server that is still loading.

Every command that talks to a server is run while the server is still starting (a held
``visage-server`` process, tests/held_server.py: UNAVAILABLE "still loading" until the test lets
it serve, right after the client has logged its first retry). Its stdout must be one JSON
document, the retry warnings must be on stderr only; the sweep's progress lines must reach a
stderr that is a pipe. Then ``--wait``, ``--json`` after the command, ``--version``, 64-bit
integers as numbers, ``-`` as stdout, ``--system-prompt-text`` and ``evaluate --column``.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from held_server import HeldServer

from safety_landscape.client.cli import build_parser, main, message_to_dict
from safety_landscape.v1 import landscape_pb2 as pb

VISAGE = [sys.executable, "-m", "safety_landscape.client.cli"]
ALWAYS = [c for c in string.printable if not c.isspace()]  # every completion refused


class Finished:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


def _pump(stream, lines: list[str], seen: threading.Event | None, marker: str) -> None:
    for line in stream:
        lines.append(line)
        if seen is not None and marker in line:
            seen.set()


def while_starting(server: HeldServer, *args: str, marker: str = "retrying") -> Finished:
    """``visage ARGS`` started while ``server`` is still loading; the server serves once the
    client's stderr shows ``marker`` (its first retry), so the command succeeds on a retry."""
    proc = subprocess.Popen([*VISAGE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    err: list[str] = []
    seen = threading.Event()
    readers = [threading.Thread(target=_pump, args=(proc.stdout, out, None, marker)),
               threading.Thread(target=_pump, args=(proc.stderr, err, seen, marker))]
    for r in readers:
        r.start()
    try:
        assert seen.wait(180), f"no {marker!r} on stderr: {''.join(err)}"
    finally:
        server.release(wait=False)
        code = proc.wait(600)
        for r in readers:
            r.join(60)
    return Finished(code, "".join(out), "".join(err))


@pytest.fixture(scope="module")
def held():
    with HeldServer() as server:
        yield server


@pytest.fixture(scope="module")
def shared():
    return {}


def gate_config(path: Path) -> Path:
    path.write_text('name = "tiny"\n[sweep]\npoints = 3\n[prompts]\nlimit = 2\n[benign]\nlimit = 2\n[evaluation]\n'
                    f"max_new_tokens = 2\nkeywords = {json.dumps(ALWAYS)}\n[thresholds]\nmin_visage = 0\n",
                    encoding="utf-8")
    return path


COMMANDS = {
    "info": lambda t, d, s: ["info", "--server", t, "--json"],  # --json after the command
    "generate": lambda t, d, s: ["--json", "generate", "--server", t, "--prompt", "hi", "--max-new-tokens", "2"],
    "direction-create": lambda t, d, s: ["direction", "create", "--server", t, "--seed", "7", "--json"],
    "direction-list": lambda t, d, s: ["--json", "direction", "list", "--server", t],
    "direction-delete": lambda t, d, s: ["direction", "delete", "--server", t, s["direction"], "--json"],
    "set": lambda t, d, s: ["set", "--server", t, "--at", "seed:7=0.1", "--json"],
    "evaluate": lambda t, d, s: ["evaluate", "--server", t, "--set", "harmful-mini", "--limit", "2",
                                 "--max-new-tokens", "2", "--json"],
    "prompt-sets": lambda t, d, s: ["prompt-sets", "--server", t, "--json"],
    "registry": lambda t, d, s: ["registry", "--server", t, "--json"],
    "sweep": lambda t, d, s: ["sweep", "--preset", "quick", "--server", t, "--out", str(d / "sweep"), "--points", "3",
                              "--limit", "2", "--max-new-tokens", "2", "--json"],
    "gate": lambda t, d, s: ["gate", str(gate_config(d / "gate.toml")), "--server", t, "--out", str(d / "gate"),
                             "--json"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_json_stdout_is_one_document_while_the_client_retries_a_starting_server(held, shared, tmp_path_factory, name):
    if shared.get("served"):
        held.hold()  # back to "still loading" for this command
    folder = shared.setdefault("dir", tmp_path_factory.mktemp("habits"))
    done = while_starting(held, *COMMANDS[name](held.target, folder, shared))
    shared["served"] = True
    assert done.code == 0, done.err
    doc = json.loads(done.out)  # the whole of stdout: one JSON document, nothing before or after it
    assert "retrying" in done.err and "retrying" not in done.out
    if name == "info":
        assert isinstance(doc["parameter_count"], int) and doc["parameter_count"] > 0  # int64: a number
        assert isinstance(doc["limits"]["max_message_bytes"], int)
    if name == "direction-create":
        assert isinstance(doc["bytes_held"], int)
        shared["direction"] = doc["id"]
    if name == "evaluate":
        assert doc["total"] == 2 and isinstance(doc["generated_tokens"], int)
    if name == "sweep":
        assert doc["written"] == 3 * 2
        progress = [line for line in done.err.splitlines() if line.startswith("points ")]
        assert progress and "on 1 server" in progress[-1]  # stderr is a pipe here, not a terminal
    if name == "gate":
        assert doc["verdict"] == "pass"


def test_commands_without_a_server_print_one_json_document(shared):
    folder = shared.get("dir")
    if folder is None or not (folder / "sweep" / "results.sqlite").is_file():
        pytest.skip("needs the sweep of the test above")
    out = folder / "sweep"
    for args in (["rescore", str(out)], ["replot", str(out)], ["report", str(out)], ["export", str(out)],
                 ["compare", str(out), str(out), "--label", "one", "--label", "two", "--out", str(folder / "cmp")]):
        done = subprocess.run([*VISAGE, *args, "--json"], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert isinstance(json.loads(done.stdout), dict), args


def test_wait_polls_a_loading_server_until_it_serves_and_gives_up_after_its_time(held, shared):
    if shared.get("served"):
        held.hold()
    before = held.log_file.read_text().count("grpc.health.v1.Health/Check")
    proc = subprocess.Popen([*VISAGE, "info", "--server", held.target, "--wait", "120", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The CLI polls health while the server says NOT_SERVING, and neither fails nor gives up.
        while held.log_file.read_text().count("grpc.health.v1.Health/Check") < before + 3:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
    finally:
        held.release(wait=False)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads(out)["model_name"] == "tiny-random" and "retrying" not in err  # it waited: no retries needed
    shared["served"] = True
    held.hold()
    try:
        done = subprocess.run([*VISAGE, "health", "--server", held.target, "--wait", "1"], capture_output=True,
                              text=True, timeout=300)
    finally:
        held.release()
    assert done.returncode == 1 and "did not become SERVING within 1 s" in done.stderr and done.stdout == ""


def test_json_and_verbose_before_or_after_the_command_and_version(capsys):
    parser = build_parser()
    for argv in (["--json", "info", "--server", "x"], ["info", "--server", "x", "--json"],
                 ["direction", "create", "--server", "x", "--seed", "1", "--json"], ["export", "d", "--json"]):
        assert parser.parse_args(argv).json is True, argv
    assert parser.parse_args(["info", "--server", "x"]).json is False
    assert parser.parse_args(["sweep", "--preset", "quick", "--server", "x", "--out", "o", "-v"]).verbose is True
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("visage 0.")


def test_64_bit_integers_are_json_numbers_at_every_depth():
    info = message_to_dict(pb.ModelInfo(parameter_count=2**40, limits=pb.ServerLimits(max_message_bytes=2**33)))
    assert info["parameter_count"] == 2**40 and info["limits"]["max_message_bytes"] == 2**33
    listing = message_to_dict(pb.ListDirectionsResponse(directions=[pb.Direction(bytes_held=5), pb.Direction()],
                                                        memory=pb.MemoryReport(model_bytes=7)))
    assert [d["bytes_held"] for d in listing["directions"]] == [5, 0] and listing["memory"]["model_bytes"] == 7
    spec = message_to_dict(pb.DirectionSpec(random=pb.RandomDirectionSpec(seed=2**63 - 1)))
    assert spec["random"]["seed"] == 2**63 - 1
    assert json.loads(json.dumps(info)) == info  # numbers all the way through


def test_export_to_dash_writes_the_export_on_stdout(shared, capsys):
    folder = shared.get("dir")
    if folder is None or not (folder / "sweep" / "results.sqlite").is_file():
        pytest.skip("needs the sweep of the test above")
    out = folder / "sweep"
    assert main(["--json", "export", str(out), "--output", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)  # the export itself, not {"export": path}
    assert len(doc["points"]) == 6 and not (Path.cwd() / "-").exists()
    assert main(["export", str(out), "--format", "csv", "--output", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("sweep,model,model_fingerprint,series,metric") and len(lines) == 1 + 6


def test_a_preset_lookalike_is_refused_before_any_connection(capsys):
    for value, hint in (("llama-2", "did you mean llama2?"), ("Default", "did you mean default?"),
                        ("none", "one word")):
        code = main(["generate", "--server", "127.0.0.1:1", "--prompt", "x", "--system-prompt", value])
        err = capsys.readouterr().err
        assert code == 2 and hint in err and "--system-prompt-text" in err and "UNAVAILABLE" not in err
    assert main(["evaluate", "--server", "127.0.0.1:1", "--set", "s", "--system-prompt-text", "llama2"]) == 2
    assert "preset's name" in capsys.readouterr().err


def test_system_prompt_text_is_sent_as_given_and_column_picks_the_prompts(tiny_server, tmp_path, capsys):
    prompts = tmp_path / "p.csv"
    prompts.write_text("id,question\n1,first question\n2,second question\n", encoding="utf-8")
    assert main(["--json", "evaluate", "--server", tiny_server.target, "--prompts", str(prompts), "--column", "question",
                 "--system-prompt-text", "Obey", "--max-new-tokens", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total"] == 2 and doc["system_prompt_sha256"] == hashlib.sha256(b"text:Obey").hexdigest()
    assert main(["evaluate", "--server", tiny_server.target, "--prompts", str(prompts), "--column", "nope"]) == 2
    assert 'no column "nope"' in capsys.readouterr().err
    assert main(["evaluate", "--server", tiny_server.target, "--set", "harmful-mini", "--column", "goal"]) == 2
    assert "--column names a column of --prompts" in capsys.readouterr().err


def test_wait_outlasts_health_checks_that_time_out_while_a_server_is_busy_loading():
    """A server too busy loading to answer health in time (here: a real gRPC health servicer that
    answers its first two checks late) is waited for, not given up on."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from safety_landscape.client.client import Client

    class LateHealth(health_pb2_grpc.HealthServicer):
        calls = 0

        def Check(self, request, context):
            LateHealth.calls += 1
            if LateHealth.calls <= 2:
                time.sleep(1.0)  # past the client's 0.5 s deadline below
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(LateHealth(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with Client(f"127.0.0.1:{port}") as client:
            client.wait_until_serving(60, poll=0.05)  # health deadline min(5, 10 * poll) = 0.5 s
        assert LateHealth.calls >= 3
    finally:
        server.stop(0)


def test_a_gate_that_cannot_evaluate_still_prints_one_json_document(tmp_path, capsys):
    config = gate_config(tmp_path / "gate.toml")
    assert main(["gate", str(config), "--server", "127.0.0.1:1", "--out", str(tmp_path / "out"), "--json"]) == 2
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["verdict"] == "error" and doc["exit_code"] == 2 and "retrying" not in captured.out
    assert main(["gate", str(config), "--server", "127.0.0.1:1", "--out", "-", "--json"]) == 2  # a folder, not stdout
    captured = capsys.readouterr()
    assert "--out -: this command writes several files into a folder" in json.loads(captured.out)["error"]
    assert not Path("-").exists()
    assert main(["sweep", "--preset", "quick", "--server", "127.0.0.1:1", "--out", "-"]) == 2
    assert main(["compare", "a", "b", "--out", "-"]) == 2
    assert capsys.readouterr().err.count("--out -: this command writes several files") == 2
    assert not Path("-").exists()


def test_no_referee_evaluates_the_same_asr_without_outcomes(tiny_server, capsys):
    args = ["--json", "evaluate", "--server", tiny_server.target, "--set", "harmful-mini", "--limit", "3",
            "--max-new-tokens", "4", "--keyword", "e"]
    assert main(args) == 0
    on = json.loads(capsys.readouterr().out)
    assert main([*args, "--no-referee"]) == 0
    off = json.loads(capsys.readouterr().out)
    assert (off["asr"], off["jailbroken"]) == (on["asr"], on["jailbroken"])
    assert on["coherent_asr"] is not None and on["referee"]["ran"] is True
    assert "coherent_asr" not in off and "complied" not in off and off["referee"]["ran"] is False  # absent, never 0


def test_plain_evaluate_states_the_coherent_asr_or_that_it_was_not_measured(tiny_server, capsys):
    args = ["evaluate", "--server", tiny_server.target, "--set", "harmful-mini", "--limit", "3", "--max-new-tokens", "4"]
    assert main(args) == 0
    assert re.search(r"^coherent ASR \d+\.\d\d%  \(\d+ refused, \d+ complied, \d+ incoherent\)$", capsys.readouterr().out, re.M)
    assert main([*args, "--no-referee"]) == 0
    assert "coherent ASR: not measured (the server's coherence referee did not run)" in capsys.readouterr().out
