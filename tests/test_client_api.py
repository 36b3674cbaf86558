"""The client's public API: the names ``safety_landscape.client`` exports, each resolving to the
object its home module defines and documented with an example, every public module declaring
``__all__``, and an import of the whole client that pulls in neither torch nor any server code."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import safety_landscape.client as client_pkg

EXPORTS = [
    "BaseTerm", "CancelledError", "Capability", "Client", "Completion", "DeadlineExceededError", "DirectionInfo",
    "DirectionList", "DirectionRecipe", "Evaluation", "FailedPreconditionError", "FleetError", "Generation", "Grid",
    "InternalError", "InvalidArgumentError", "NotFoundError", "PermissionDeniedError", "PointDetail",
    "PointEvaluation", "PointRecord", "PromptSetInfo", "PromptSource", "RegistryEntry", "ResourceExhaustedError",
    "ResultStore", "RpcFailed", "Run", "Scores", "Series", "ServerInfo", "SpecError", "StoreError", "SweepResult",
    "SweepSpec", "Timeouts", "TlsConfig", "UnauthenticatedError", "UnavailableError", "ValidationError",
    "VisageError", "WeightState", "adapter_direction", "chat_format", "evaluation_settings", "figure_1d",
    "figure_side_by_side", "figures_2d", "generation", "interpolation_direction", "load_run", "load_spec",
    "perturbation", "preset", "random_direction", "run_gate", "run_sweep", "save_figure", "spec_from_dict",
    "sweep_landscape", "system_prompt", "write_comparison",
]


def _client_modules() -> list[str]:
    names = ["safety_landscape.client"]
    for info in pkgutil.walk_packages(client_pkg.__path__, "safety_landscape.client."):
        names.append(info.name)
    return names


def test_the_exported_names_are_pinned():
    assert client_pkg.__all__ == EXPORTS  # sorted, and changed only on purpose
    for name in EXPORTS:
        value = getattr(client_pkg, name)
        assert value.__module__.startswith("safety_landscape.client"), name
        home = importlib.import_module(value.__module__)
        assert getattr(home, name) is value, f"{name} is not {value.__module__}.{name}"


def _example_block(doc: str) -> bool:
    """A reST literal block after a line ending in "Example::" (or "Examples::"), or a doctest."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line.rstrip().endswith(("Example::", "Examples::")):
            body = [x for x in lines[i + 1:] if x.strip()]
            indent = len(line) - len(line.lstrip())
            if body and len(body[0]) - len(body[0].lstrip()) > indent:
                return True
        if line.lstrip().startswith(">>> "):
            return True
    return False


def test_every_exported_name_has_a_docstring_with_an_example():
    missing = []
    for name in EXPORTS:
        value = getattr(client_pkg, name)
        doc = value.__dict__.get("__doc__") if isinstance(value, type) else value.__doc__  # its own, not a base's
        generated = isinstance(value, type) and doc and doc.startswith(f"{name}(")  # the dataclass signature
        if not doc or generated or not _example_block(doc):
            missing.append(name)
    assert not missing, f"no docstring with an Example:: block: {', '.join(missing)}"
    assert _example_block(client_pkg.__doc__)


def test_exports_are_importable_by_name():
    from safety_landscape.client import Client, ResultStore, run_gate, run_sweep  # noqa: F401

    assert "Client" in dir(client_pkg)
    try:
        client_pkg.not_a_name  # noqa: B018
    except AttributeError as exc:
        assert "not_a_name" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_every_public_module_declares_all():
    for name in [*_client_modules(), "safety_landscape.common.names", "safety_landscape.common.prompt_files"]:
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{name} has no __all__"
        for item in exported:
            assert hasattr(module, item), f"{name}.__all__ lists {item!r}, which it does not define"


def test_the_client_imports_neither_torch_nor_server_code():
    code = (
        "import importlib, pkgutil, sys\n"
        "import safety_landscape.client as pkg\n"
        "for info in pkgutil.walk_packages(pkg.__path__, 'safety_landscape.client.'):\n"
        "    importlib.import_module(info.name)\n"
        "for name in pkg.__all__:\n"
        "    getattr(pkg, name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith('safety_landscape.server'))\n"
        "print('imported:', bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
