"""A ``--model`` given as a Hugging Face Hub id (``meta-llama/Meta-Llama-3-8B-Instruct``), found in
the local Hugging Face cache; the server never downloads anything at run time. A revision (a
branch, tag or commit) is ``ORG/NAME@REVISION`` or ``--revision``.

The cache is ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub`` (the
layout ``hf download`` writes: ``models--ORG--NAME/snapshots/<commit>/``, ``refs/main``), read
with ``huggingface_hub.snapshot_download(local_files_only=True)``. A model that is not there
is NotFound with the command that fetches it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import NotFound

__all__ = ["cached_repo_ids", "hub_cache_dir", "looks_like_hub_id", "resolve_hub_model", "split_revision"]

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def looks_like_hub_id(name: str) -> bool:
    """``ORG/NAME`` (one slash, no leading dot, tilde or slash): a Hub id rather than a path."""
    return _HUB_ID.fullmatch(name) is not None and ".." not in name


def split_revision(name: str) -> tuple[str, str]:
    """``ORG/NAME@REVISION`` -> (``ORG/NAME``, ``REVISION``); anything else -> (name, "")."""
    head, at, revision = name.rpartition("@")
    if at and revision and looks_like_hub_id(head):
        return head, revision
    return name, ""


def cached_repo_ids() -> list[str]:
    """The model ids in the local cache (its ``models--ORG--NAME`` folders), for "did you mean"."""
    cache = hub_cache_dir()
    if not cache.is_dir():
        return []
    return sorted(folder.name.removeprefix("models--").replace("--", "/", 1)
                  for folder in cache.glob("models--*--*") if folder.is_dir())


def hub_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home).expanduser() / "hub"


def resolve_hub_model(repo_id: str, revision: str | None = None) -> Path:
    """The snapshot folder of ``repo_id`` (at ``revision``: a branch, tag or commit; None: main)
    in the local cache; NotFound with the download command."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hub_cache_dir()
    try:
        folder = snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError) as exc:
        at = f" at revision {revision!r}" if revision else ""
        fetch = f" --revision {revision}" if revision else ""
        raise NotFound(
            f"model {repo_id!r}{at} is not in the local Hugging Face cache ({cache}); the server downloads nothing. "
            f"Fetch it first, with the same HF_HOME: hf download {repo_id}{fetch} --exclude '*.bin' '*.pth' 'original/*'"
        ) from exc
    return Path(str(folder))
