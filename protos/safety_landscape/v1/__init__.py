"""The v1 gRPC contract: generated from ``landscape.proto`` by ``python scripts/gen_protos.py``.

Do not edit the ``*_pb2*`` files by hand; a test fails when they are stale against the .proto.
"""
