"""safety-landscape: measure how close a language model sits to the edge of its safety basin.

The import root of the `safety-landscape` distribution. Its parts live in the repository's
top-level folders: the v1 contract and its generated stubs in ``protos/`` (``safety_landscape.v1``),
the torch-free client in ``client/`` (``safety_landscape.client``), the model-holding gRPC
server in ``server/`` (``safety_landscape.server``, installed with the ``server`` extra) and what
neither side owns in ``common/`` (``safety_landscape.common``: name tables, the prompt-file reader).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
