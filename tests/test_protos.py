"""The v1 contract: generated stubs are fresh, every declaration is documented, the package is versioned.

Reads ``protos/safety_landscape/v1/landscape.proto`` as text (no protoc needed except for the
staleness check, which runs ``scripts/gen_protos.py``'s ``generate`` into a temporary folder).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos" / "safety_landscape" / "v1"
PROTO = PROTO_DIR / "landscape.proto"
GEN_SCRIPT = ROOT / "scripts" / "gen_protos.py"
GENERATED = ("landscape_pb2.py", "landscape_pb2.pyi", "landscape_pb2_grpc.py")

# Declarations that must carry a comment. Enum values are SCREAMING_CASE `NAME = N;`; fields are
# `[repeated|optional] type name = N;` (a type may be qualified, or a map<k, v>).
_DECLARATIONS = [
    ("service", re.compile(r"^\s*service\s+(\w+)\s*\{")),
    ("rpc", re.compile(r"^\s*rpc\s+(\w+)\s*\(")),
    ("message", re.compile(r"^\s*message\s+(\w+)\s*\{")),
    ("enum", re.compile(r"^\s*enum\s+(\w+)\s*\{")),
    ("oneof", re.compile(r"^\s*oneof\s+(\w+)\s*\{")),
    ("enum value", re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s*=\s*-?\d+\s*(\[[^\]]*\])?\s*;")),
    (
        "field",
        re.compile(r"^\s*(?:repeated\s+|optional\s+)?(?:map\s*<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*\d+\s*(\[[^\]]*\])?\s*;"),
    ),
]


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_protos", GEN_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _header(lines: list[str]) -> str:
    """The file's opening comment block (before ``syntax``): it never enters generated code."""
    out = []
    for line in lines:
        if line.strip().startswith("syntax"):
            break
        out.append(line)
    return "\n".join(out)


def undocumented(text: str) -> list[str]:
    """``"line N: kind name: source"`` for every declaration without a comment.

    Documented means: the line right before it is a ``//`` comment, or the line ends with a
    trailing ``//`` comment. A service may instead be described in the file header (a header
    line starting with its name): protoc's gRPC plugin copies service and rpc comments into
    the docstrings of landscape_pb2_grpc.py, so service docs live in the header to keep the
    generated code unchanged by documentation edits.
    """
    lines = text.splitlines()
    header = _header(lines)
    missing = []
    for number, line in enumerate(lines, start=1):
        code = line.split("//", 1)[0]
        if not code.strip():
            continue
        for kind, pattern in _DECLARATIONS:
            match = pattern.match(code)
            if match is None:
                continue
            name = match.group(1)
            if kind == "field" and name in {"rpc", "option", "reserved"}:
                break
            trailing = "//" in line and line.split("//", 1)[1].strip() != ""
            previous = lines[number - 2].strip() if number >= 2 else ""
            preceding = previous.startswith("//") and previous.strip("/ ").strip() != ""
            in_header = kind == "service" and re.search(rf"^//\s+{re.escape(name)}\b.*\w.*\w", header, re.M)
            if not (trailing or preceding or in_header):
                missing.append(f"line {number}: {kind} {name}: {line.strip()}")
            break
    return missing


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="the dev extra (grpcio-tools) is needed to regenerate the stubs")
    _load_generator().generate(tmp_path)
    fresh_dir = tmp_path / "safety_landscape" / "v1"
    stale = []
    for name in GENERATED:
        fresh = fresh_dir / name
        assert fresh.is_file(), f"the generator did not write {name}"
        if fresh.read_bytes() != (PROTO_DIR / name).read_bytes():
            stale.append(name)
    assert not stale, (
        f"generated stubs {stale} under protos/safety_landscape/v1/ do not match landscape.proto: "
        "run `python scripts/gen_protos.py` and commit the result"
    )


def test_every_declaration_is_documented() -> None:
    missing = undocumented(PROTO.read_text())
    assert not missing, "undocumented declarations in landscape.proto (add a // comment):\n" + "\n".join(missing)


def test_documentation_check_catches_a_bare_field() -> None:
    text = (
        "// A message.\nmessage M {\n  // Documented.\n  int32 a = 1;\n  string b = 2;\n"
        "  repeated pkg.T c = 3;  // trailing\n}\n"
        "enum E {\n  E_UNSPECIFIED = 0;  // default\n  E_ONE = 1;\n}\n"
    )
    assert undocumented(text) == ["line 5: field b: string b = 2;", "line 8: enum E: enum E {", "line 10: enum value E_ONE: E_ONE = 1;"]


def test_declarations_are_all_seen() -> None:
    """The parser recognises the contract's declarations (guards the documentation check itself)."""
    text = PROTO.read_text()
    kinds: dict[str, int] = {}
    for line in text.splitlines():
        code = line.split("//", 1)[0]
        for kind, pattern in _DECLARATIONS:
            if pattern.match(code):
                kinds[kind] = kinds.get(kind, 0) + 1
                break
    assert kinds["service"] == len(re.findall(r"^service ", text, re.M)) == 3
    assert kinds["rpc"] == text.count("  rpc ")
    assert kinds["message"] == len(re.findall(r"^message ", text, re.M))
    assert kinds["enum"] == len(re.findall(r"^enum ", text, re.M))
    code = "\n".join(line.split("//", 1)[0] for line in text.splitlines())
    declared = len(re.findall(r"=\s*\d+\s*;", code))
    assert kinds["field"] + kinds["enum value"] == declared


def test_package_is_versioned() -> None:
    text = PROTO.read_text()
    assert re.search(r"^package\s+safety_landscape\.v1\s*;", text, re.M), "landscape.proto must declare package safety_landscape.v1"
    assert PROTO.parent.name == "v1", "the v1 contract must live under a v1/ folder"


def test_generated_module_exposes_every_service() -> None:
    from safety_landscape.v1 import landscape_pb2, landscape_pb2_grpc

    assert hasattr(landscape_pb2_grpc, "LandscapeServiceStub")
    assert hasattr(landscape_pb2_grpc, "DirectionServiceStub")
    assert hasattr(landscape_pb2_grpc, "CandidateServiceStub")
    services = landscape_pb2.DESCRIPTOR.services_by_name
    assert set(services) == {"LandscapeService", "DirectionService", "CandidateService"}
    assert landscape_pb2.DESCRIPTOR.package == "safety_landscape.v1"
