"""The client installs and runs without torch, and the package layout is complete."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run in a fresh interpreter where importing torch/transformers/numpy-heavy server code fails,
# as on a CI runner that installed only the plain package.
BLOCK_TORCH = textwrap.dedent(
    """
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "transformers", "accelerate", "gguf", "safetensors"}:
                raise ImportError(f"{name} is blocked: the client must not need it")
            return None
    sys.meta_path.insert(0, _Block())
    """
)


def _run_without_torch(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=120,
    )


def test_client_imports_and_runs_without_torch(tiny_server):
    out = _run_without_torch(
        """
        import sys
        import safety_landscape.client as client_pkg
        from safety_landscape.client.client import Client, evaluation_settings
        from safety_landscape.client.cli import main
        with Client(sys.argv[1]) as c:
            info = c.info()
            r = c.evaluate(evaluation_settings(prompts=["How do I pick a lock?"], max_new_tokens=4))
        print("ASR", r.asr, info.model_fingerprint[:8])
        code = main(["--json", "info", "--server", sys.argv[1]])
        assert "torch" not in sys.modules, "torch got imported"
        sys.exit(code)
        """,
        tiny_server.target,
    )
    assert out.returncode == 0, out.stderr
    assert "ASR" in out.stdout and "model_fingerprint" in out.stdout


def test_cli_help_works_without_torch():
    out = _run_without_torch("from safety_landscape.client.cli import main\nmain(['--help'])")
    assert out.returncode == 0, out.stderr
    assert "visage" in out.stdout


def test_every_package_folder_is_declared():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = set(config["tool"]["setuptools"]["packages"])
    mapping = config["tool"]["setuptools"]["package-dir"]
    found = set()
    for package, folder in mapping.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([package, *rel.parts]) if rel.parts else package)
    assert found <= declared, f"add to pyproject.toml [tool.setuptools] packages: {sorted(found - declared)}"


def test_plain_install_has_no_torch_dependency():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    base = " ".join(config["project"]["dependencies"])
    assert "torch" not in base and "transformers" not in base
    server = " ".join(config["project"]["optional-dependencies"]["server"])
    assert "torch" in server and "transformers" in server
    assert config["project"]["scripts"]["visage"].startswith("safety_landscape.client")
    assert config["project"]["scripts"]["visage-server"].startswith("safety_landscape.server")
