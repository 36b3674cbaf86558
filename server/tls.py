"""Server TLS and mutual TLS credentials from PEM files.

``server_credentials(cert, key)`` serves TLS; with ``client_ca_file`` it serves mutual TLS: every
client must present a certificate signed by that CA (grpc rejects the handshake otherwise). A
missing, unreadable or non-PEM file is a ValueError naming the file and the flag/env var to fix,
so a misconfigured server fails at start rather than at the first call.
"""

from __future__ import annotations

import os

import grpc

__all__ = ["read_pem", "server_credentials"]

PathLike = str | os.PathLike[str]


def read_pem(path: PathLike, what: str) -> bytes:
    """Read a PEM file; ``what`` (e.g. "TLS certificate (--tls-cert / VISAGE_TLS_CERT)") names it."""
    where = os.fspath(path)
    try:
        with open(where, "rb") as fh:
            data = fh.read()
    except FileNotFoundError as exc:
        raise ValueError(f"{what} {where}: no such file") from exc
    except IsADirectoryError as exc:
        raise ValueError(f"{what} {where}: is a directory, expected a PEM file") from exc
    except OSError as exc:
        raise ValueError(f"{what} {where}: cannot read it ({exc.strerror or exc})") from exc
    if b"-----BEGIN " not in data:
        raise ValueError(f"{what} {where}: not a PEM file (no '-----BEGIN' line)")
    return data


def server_credentials(
    cert_file: PathLike, key_file: PathLike, client_ca_file: PathLike | None = None
) -> grpc.ServerCredentials:
    """TLS credentials for ``server.add_secure_port``; mutual TLS when ``client_ca_file`` is given."""
    cert = read_pem(cert_file, "TLS certificate (--tls-cert / VISAGE_TLS_CERT)")
    key = read_pem(key_file, "TLS private key (--tls-key / VISAGE_TLS_KEY)")
    if b"PRIVATE KEY-----" not in key:
        raise ValueError(f"TLS private key {os.fspath(key_file)}: holds no PRIVATE KEY block")
    if b"CERTIFICATE-----" not in cert:
        raise ValueError(f"TLS certificate {os.fspath(cert_file)}: holds no CERTIFICATE block")
    client_ca = None
    if client_ca_file is not None:
        client_ca = read_pem(client_ca_file, "client CA (--tls-client-ca / VISAGE_TLS_CLIENT_CA)")
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
