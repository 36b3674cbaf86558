"""The operator's registry file re-read on SIGHUP by a real ``visage-server`` process: new and
changed entries are used at once, a direction built from an entry before the reload keeps its
weights under its own id, and a file that no longer parses changes nothing."""

from __future__ import annotations

import signal

from model_folders import write_checkpoint
from serving import ServerProcess, wait_for

from safety_landscape.client import client as C

PROMPTS = ["Hello there", "Tell me a story"]
GREEDY = C.generation(6)


def texts(resp):
    return [c.text for c in resp.completions]


def test_sighup_rereads_the_registry_and_keeps_the_directions_built_before(tmp_path):
    write_checkpoint(tmp_path / "second", seed=1)
    write_checkpoint(tmp_path / "third", seed=2)
    registry = tmp_path / "registry.toml"
    registry.write_text('[checkpoints]\na = "second"\n')
    with ServerProcess("--registry", str(registry), "--device", "cpu", "--dtype", "float32") as server:
        with C.Client(server.wait_serving()) as c:
            before = c.create_direction(C.interpolation_direction("a"))
            at_before = texts(c.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(before.id, 1.0)])))
            registry.write_text('[checkpoints]\na = "third"\nb = "second"\n')
            server.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: {e.name for e in c.list_registry()} == {"a", "b"}, timeout=120.0, what="the reload")
            after = c.create_direction(C.interpolation_direction("a"))
            assert after.id != before.id and after.fingerprint != before.fingerprint  # "a" is now "third"
            assert c.create_direction(C.interpolation_direction("b")).fingerprint == before.fingerprint
            # The direction built from the old entry still names the old weights.
            assert texts(c.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(before.id, 1.0)]))) == at_before
            registry.write_text("[checkpoints\n")  # broken: the entries stay as they were
            server.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "registry not reloaded" in server.log(), timeout=120.0, what="the refusal in the log")
            assert {e.name for e in c.list_registry()} == {"a", "b"}
        assert server.terminate() == 0
