"""The repository is self-contained: what its documents and comments cite is in the repository.

A user's clone has only the repository. So every repository path that a tracked text file names
(``server/engine/chat.py``, ``docs/method.md``, ``examples/reproduction/*.toml``, a relative
Markdown link) must exist, and no file may point at one machine's folders (a home or work
directory) or at notes kept outside the clone.

What counts as a cited path is kept narrow on purpose, so that the check has no false alarms: a
path that starts at one of the repository's top-level folders and ends in a file name with an
extension (or in ``/`` for a folder), and the target of a relative Markdown link. Paths inside a
package (``engine/weights.py`` in a table about ``server/``), output folders (``runs/...``) and
placeholders (``harmful_behaviors.csv``) are not checked.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()

# The repository's top-level folders: a cited path starting with one of them is a repository path.
TOP_FOLDERS = (".ci", "bench", "client", "common", "deploy", "docs", "examples", "protos", "recipes", "scripts",
               "server", "tests")
SCANNED_SUFFIXES = {".md", ".py", ".pyi", ".toml", ".sh", ".proto", ".yaml", ".yml", ".txt", ".cfg", ".ini"}
SCANNED_NAMES = {"Dockerfile"}  # not .gitignore: the folders it names need not exist
GENERATED = re.compile(r"_pb2(_grpc)?\.pyi?$")  # protoc output: its text comes from the .proto
SKIPPED_FOLDERS = {".git", ".venv", "build", "dist", "runs", "visage-gate", "__pycache__", ".mypy_cache",
                   ".ruff_cache", ".pytest_cache"}

# A repository path: a top folder at a word start (not inside a longer path), then path characters,
# ending in a file name with an extension or in "/" (a folder). Globs (``*``) are allowed.
_TOP = "|".join(re.escape(t) for t in TOP_FOLDERS)
_PATH = re.compile(rf"(?<![\w./~$-])((?:{_TOP})/(?:[\w.*-]+/)*(?:[\w*-][\w.*-]*\.[A-Za-z]\w*|))(?![\w/-])")
_MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
# One machine's folders, and notes that live beside the repository rather than in it.
_MACHINE = re.compile(
    r"(?<![\w.-])/(?:work|home|Users)/\w[^\s`'\")\]]*|[A-Za-z]:\\Users\\\S*|\.\./shared\b|\bshared/(?:reference|data|seeds)/"
)
_OUTSIDE_NOTES = ("METHOD.md", "DESIGN.md", "STYLE.md")


def _text_files() -> list[Path]:
    """The tracked text files (every file under the root when this is not a git checkout)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        paths = [ROOT / p for p in listed.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        paths = []
        for folder, dirs, files in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in SKIPPED_FOLDERS and not d.endswith(".egg-info")]
            paths += [Path(folder) / f for f in files]
    return [p for p in paths
            if p.is_file() and p != THIS and not GENERATED.search(p.name)
            and (p.suffix in SCANNED_SUFFIXES or p.name in SCANNED_NAMES)]


def _exists(cited: str, base: Path) -> bool:
    target = base / cited.rstrip("/")
    if "*" in cited:
        return bool(glob.glob(str(target)))
    return target.is_dir() if cited.endswith("/") else target.exists()


def _missing_citations(path: Path, text: str) -> list[str]:
    where = path.relative_to(ROOT)
    missing = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for cited in _PATH.findall(line):
            if not _exists(cited, ROOT):
                missing.append(f"{where}:{lineno}: {cited}")
        if path.suffix != ".md":
            continue
        for link in _MD_LINK.findall(line):
            target = link.split("#", 1)[0]
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
                continue  # an anchor in the same page, a URL, or a site path
            if not _exists(target, path.parent):
                missing.append(f"{where}:{lineno}: link {link}")
    return missing


def _machine_paths(path: Path, text: str) -> list[str]:
    where = path.relative_to(ROOT)
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        hits = [m.group(0) for m in _MACHINE.finditer(line)]
        hits += [name for name in _OUTSIDE_NOTES if name in line and not (ROOT / name).exists()]
        found += [f"{where}:{lineno}: {hit}" for hit in hits]
    return found


@pytest.fixture(scope="module")
def texts() -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8", errors="replace") for p in _text_files()}


def test_the_scan_sees_the_documents_and_the_code(texts):
    names = {p.relative_to(ROOT).as_posix() for p in texts}
    assert {"README.md", "docs/method.md", "docs/design.md", "protos/safety_landscape/v1/landscape.proto"} <= names
    assert any(n.startswith("server/") and n.endswith(".py") for n in names)


def test_every_cited_repository_path_exists(texts):
    missing = [m for path, text in texts.items() for m in _missing_citations(path, text)]
    assert not missing, "cited paths that are not in the repository:\n" + "\n".join(missing)


def test_no_file_points_at_a_machine_or_outside_the_repository(texts):
    found = [f for path, text in texts.items() for f in _machine_paths(path, text)]
    assert not found, (
        "paths of one machine, or notes outside the repository (cite docs/method.md or docs/design.md, "
        "name data files by their file name):\n" + "\n".join(found)
    )


@pytest.mark.parametrize(
    ("line", "cited"),
    [
        ("see `server/engine/chat.py` and docs/method.md section 3", ["server/engine/chat.py", "docs/method.md"]),
        ("specs in `examples/reproduction/`; plots in `docs/reproduction/*.png`",
         ["examples/reproduction/", "docs/reproduction/*.png"]),
        ("the file `safety_landscape/client/sweep/data/fluency.txt` and runs/aligned", []),
        ("`engine/weights.py` owns it; see tests/", ["tests/"]),
    ],
)
def test_what_counts_as_a_cited_path(line, cited):
    assert _PATH.findall(line) == cited


def test_a_missing_path_and_a_machine_path_are_reported():
    fake = ROOT / "docs" / "example.md"
    machine_path = "/" + "home/alice/advbench/harmful_behaviors.csv"  # built here: this file is not scanned
    text = f"See `server/no_such_module.py`, [gone](no-such-page.md) and `{machine_path}`.\n"
    assert _missing_citations(fake, text) == [
        "docs/example.md:1: server/no_such_module.py",
        "docs/example.md:1: link no-such-page.md",
    ]
    assert _machine_paths(fake, text) == [f"docs/example.md:1: {machine_path}"]
