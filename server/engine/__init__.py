"""The server's engine: pure Python and torch logic behind the gRPC service (no grpc imports)."""
