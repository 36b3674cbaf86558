"""Regenerate the Python stubs of the v1 contract: ``python scripts/gen_protos.py``.

Writes ``landscape_pb2.py``, ``landscape_pb2.pyi`` and ``landscape_pb2_grpc.py`` beside
``protos/safety_landscape/v1/landscape.proto`` (or into ``--out`` for the staleness test).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent.parent / "protos"
PROTO_FILES = ["safety_landscape/v1/landscape.proto"]


def generate(out_dir: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc  # dev extra

    include = Path(grpc_tools.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *PROTO_FILES,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)  # a flag only as written
    parser.add_argument("--out", type=Path, default=PROTO_ROOT, help="output root (default: protos/)")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    sys.exit(main())
