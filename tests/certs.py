"""Throwaway certificates for the TLS tests, made with the ``openssl`` command.

Two CAs: one signs the server's certificate (for 127.0.0.1 and localhost), the other
the clients' (for mutual TLS). A client certificate signed by the server CA stands
for a client with a certificate from the wrong CA.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

EXTENSIONS = """\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
authorityKeyIdentifier = keyid
[client]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path

    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    def key_pem(self) -> bytes:
        return self.key.read_bytes()


@dataclass(frozen=True)
class Certs:
    server_ca: KeyPair
    client_ca: KeyPair
    server: KeyPair
    client: KeyPair
    stranger: KeyPair  # a client certificate signed by the server CA, not the client CA


class _Openssl:
    def __init__(self, directory: Path) -> None:
        found = shutil.which("openssl")
        assert found, "the openssl command is needed to make test certificates"
        self.executable = found
        self.directory = directory
        self.config = directory / "openssl.cnf"
        self.config.write_text(EXTENSIONS)
        self.serial = 0

    def run(self, *args: str) -> None:
        subprocess.run(
            [self.executable, *args], cwd=self.directory, check=True, capture_output=True
        )

    def new_key(self, name: str) -> list[str]:
        key = self.directory / f"{name}.key"
        return [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(key),
        ]

    def ca(self, name: str) -> KeyPair:
        pair = KeyPair(self.directory / f"{name}.pem", self.directory / f"{name}.key")
        self.run(
            "req", "-x509", *self.new_key(name), "-out", str(pair.cert), "-days", "2",
            "-subj", f"/CN=agent-sessions test {name}",
            "-config", str(self.config), "-extensions", "ca",
        )  # fmt: skip
        return pair

    def leaf(self, name: str, signer: KeyPair, extensions: str) -> KeyPair:
        pair = KeyPair(self.directory / f"{name}.pem", self.directory / f"{name}.key")
        request = self.directory / f"{name}.csr"
        self.run(
            "req", "-new", *self.new_key(name), "-out", str(request),
            "-subj", f"/CN={name}", "-config", str(self.config),
        )  # fmt: skip
        self.serial += 1
        self.run(
            "x509", "-req", "-in", str(request), "-out", str(pair.cert), "-days", "2",
            "-CA", str(signer.cert), "-CAkey", str(signer.key), "-set_serial", str(self.serial),
            "-extfile", str(self.config), "-extensions", extensions,
        )  # fmt: skip
        return pair


def make_certs(directory: Path) -> Certs:
    """Writes the CAs, keys and certificates into ``directory``."""
    openssl = _Openssl(directory)
    server_ca = openssl.ca("server-ca")
    client_ca = openssl.ca("client-ca")
    return Certs(
        server_ca=server_ca,
        client_ca=client_ca,
        server=openssl.leaf("server", server_ca, "server"),
        client=openssl.leaf("client", client_ca, "client"),
        stranger=openssl.leaf("stranger", server_ca, "client"),
    )
