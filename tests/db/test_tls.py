"""TLS to a real PostgreSQL over TCP, as RDS enforces it, and the connect timeout.

A server of the tests' own listens on loopback with a certificate made here, signed by a
certificate authority made here, for 127.0.0.1 only; it refuses any connection over TCP
without TLS.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import database, free_port, invoke, one_error_line, require, server_folder


@dataclass
class TlsServer:
    port: int
    authority: Path  # the CA file a client trusts

    def url(self, host: str = "127.0.0.1", **query: str) -> str:
        tail = "&".join(f"{k}={v}" for k, v in query.items())
        return f"postgresql://postgres@{host}:{self.port}/postgres?{tail}"


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(authority, certificate, key): a CA and a server certificate for 127.0.0.1 only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def certificate(subject: str, key, issuer, issuer_key, extensions):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "totesys test CA")])
    ca = certificate(
        "totesys test CA", ca_key, ca_name, ca_key, [(x509.BasicConstraints(True, None), True)]
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = certificate(
        "127.0.0.1",
        key,
        ca_name,
        ca_key,
        [(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)],
    )
    paths = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return paths


def _server_binaries() -> Path | None:
    """Debian's PostgreSQL server, which is built with TLS (the embedded one is not)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsServer]:
    binaries = _server_binaries()
    require(binaries is not None, "the TLS tests need Debian's postgresql server package")
    with server_folder("tls") as folder:
        yield from _tls_server(binaries, folder)


def _tls_server(binaries: Path, folder: Path) -> Iterator[TlsServer]:
    pgdata = folder / "data"
    # PostgreSQL never runs as root: as root, run it as the package's own user
    user = "postgres" if os.geteuid() == 0 else None

    as_user = {"user": user, "group": user, "extra_groups": []} if user else {}

    def run(*args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, cwd=folder, **as_user)
        assert done.returncode == 0, f"{args[0]}: {done.stderr}"

    if user:
        shutil.chown(folder, user)
    run(str(binaries / "initdb"), "-D", str(pgdata), "--auth=trust", "-U", "postgres")
    authority, certificate, key = _certificates(folder)
    for path in (certificate, key):
        target = pgdata / path.name
        shutil.copy(path, target)
        target.chmod(0o600)
        if user:
            shutil.chown(target, user)
    (pgdata / "pg_hba.conf").write_text(
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\n"
        "hostnossl all all 127.0.0.1/32 reject\n"
    )
    port = free_port()
    options = f"-h 127.0.0.1 -p {port} -k {folder} -c ssl=on"
    pg_ctl = (str(binaries / "pg_ctl"), "-D", str(pgdata))
    run(*pg_ctl, "-w", "-o", options, "-l", str(folder / "log"), "start")
    try:
        yield TlsServer(port, authority)
    finally:
        run(*pg_ctl, "-m", "immediate", "stop")


def test_require_encrypts_and_a_plain_connection_is_refused(tls_server):
    assert invoke("status", "--warehouse-url", tls_server.url(sslmode="require")).exit_code == 0
    plain = invoke("status", "--warehouse-url", tls_server.url(sslmode="disable"))
    assert plain.exit_code == 2
    assert "cannot connect to the warehouse database at 127.0.0.1" in one_error_line(plain.stderr)
    assert "the server rejected this user" in plain.stderr


def test_verify_ca_trusts_the_given_authority_only(tls_server):
    trusted = tls_server.url(sslmode="verify-ca", sslrootcert=tls_server.authority)
    assert invoke("status", "--warehouse-url", trusted).exit_code == 0, "verify-ca"
    unknown = invoke("status", "--warehouse-url", tls_server.url(sslmode="verify-ca"))
    assert unknown.exit_code == 2
    assert one_error_line(unknown.stderr).endswith(
        f"the warehouse database at 127.0.0.1:{tls_server.port}/postgres presented a certificate "
        "that cannot be verified: unable to get local issuer certificate. Check sslmode and "
        "sslrootcert in TOTESYS_WAREHOUSE_URL"
    )


def test_verify_full_checks_the_host_name_too(tls_server):
    full = tls_server.url(sslmode="verify-full", sslrootcert=tls_server.authority)
    assert invoke("status", "--warehouse-url", full).exit_code == 0
    # the certificate names 127.0.0.1, not localhost: the chain is good, the name is not
    other = tls_server.url("localhost", sslmode="verify-full", sslrootcert=tls_server.authority)
    wrong = invoke("status", "--warehouse-url", other)
    assert wrong.exit_code == 2
    assert "presented a certificate that cannot be verified: Hostname mismatch" in wrong.stderr
    chain_only = tls_server.url("localhost", sslmode="verify-ca", sslrootcert=tls_server.authority)
    assert invoke("status", "--warehouse-url", chain_only).exit_code == 0


def test_a_missing_root_certificate_is_a_configuration_error(tls_server, tmp_path):
    url = tls_server.url(sslmode="verify-full", sslrootcert=tmp_path / "none.pem")
    result = invoke("status", "--warehouse-url", url)
    assert result.exit_code == 2
    assert f"cannot read the warehouse database's sslrootcert {tmp_path / 'none.pem'}" in (
        one_error_line(result.stderr)
    )


def test_a_server_that_never_answers_times_out_after_the_connect_timeout():
    """It accepts the connection and then says nothing: the handshake is bounded too."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    port = silent.getsockname()[1]
    started = time.perf_counter()
    url = f"postgresql://u@127.0.0.1:{port}/dw"
    result = invoke("status", "--warehouse-url", f"{url}?connect_timeout=2")
    elapsed = time.perf_counter() - started
    silent.close()
    assert result.exit_code == 1
    assert one_error_line(result.stderr).endswith(
        f"[status] cannot reach the warehouse database at 127.0.0.1:{port}/dw: timed out. "
        "Check TOTESYS_WAREHOUSE_URL"
    )
    assert 2 <= elapsed < 9, elapsed  # the URL's connect timeout, not the statement timeout
    assert database(url).connect_timeout == 10  # and 10 s without one
