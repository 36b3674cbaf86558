"""Shared fixtures: a real tiny-random server on a loopback port (see ``serving.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from serving import running_server


@pytest.fixture(scope="module")
def tiny_server():
    """One real tiny-random server per test module (CPU, float32, port 0)."""
    with running_server() as server:
        yield server


@pytest.fixture
def client(tiny_server):
    with tiny_server.client() as c:
        yield c
