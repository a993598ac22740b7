"""Keys and certificates for the test control plane, made with the openssl command.

Why openssl and not a Python library: it is on every Debian machine, and these files only ever
live in a temporary directory of the test run. The layout follows kubeadm's: one cluster CA
(serving certificates, the root CA that goes into service-account secrets), one front-proxy CA
for the aggregation layer, and an RSA key pair that signs service-account tokens.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _make_ca(folder: Path, name: str, subject: str) -> None:
    _openssl("genrsa", "-out", f"{name}.key", "2048", cwd=folder)
    _openssl(
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-key",
        f"{name}.key",
        "-sha256",
        "-days",
        "2",
        "-subj",
        subject,
        "-out",
        f"{name}.crt",
        cwd=folder,
    )


def _sign(folder: Path, ca: str, name: str, subject: str, extensions: str) -> None:
    _openssl("genrsa", "-out", f"{name}.key", "2048", cwd=folder)
    _openssl(
        "req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=folder
    )
    (folder / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.crt",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-out",
        f"{name}.crt",
        "-days",
        "2",
        "-sha256",
        "-extfile",
        f"{name}.ext",
        cwd=folder,
    )


@dataclass(frozen=True)
class Certificates:
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.folder / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.folder / "apiserver.key"

    @property
    def front_proxy_ca(self) -> Path:
        return self.folder / "front-proxy-ca.crt"

    @property
    def front_proxy_client_cert(self) -> Path:
        return self.folder / "front-proxy-client.crt"

    @property
    def front_proxy_client_key(self) -> Path:
        return self.folder / "front-proxy-client.key"

    @property
    def service_account_key(self) -> Path:
        return self.folder / "sa.key"

    @property
    def service_account_public_key(self) -> Path:
        return self.folder / "sa.pub"


FRONT_PROXY_CLIENT = "front-proxy-client"


def make_certificates(folder: Path) -> Certificates:
    """Everything the API server, the controller manager and the aggregation layer need."""
    folder.mkdir(parents=True, exist_ok=True)
    _make_ca(folder, "ca", "/CN=leadtime-test-ca")
    _sign(
        folder,
        "ca",
        "apiserver",
        "/CN=kube-apiserver",
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n",
    )
    _make_ca(folder, "front-proxy-ca", "/CN=leadtime-test-front-proxy-ca")
    _sign(
        folder,
        "front-proxy-ca",
        FRONT_PROXY_CLIENT,
        f"/CN={FRONT_PROXY_CLIENT}",
        "extendedKeyUsage=clientAuth\n",
    )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=folder)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=folder)
    return Certificates(folder)


def make_serving_certificate(
    certificates: Certificates, name: str, hosts: list[str]
) -> tuple[Path, Path]:
    """A serving certificate signed by the cluster CA (for servers the API server dials,
    such as an aggregated API). Returns (certificate, key)."""
    alt = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts)
    _sign(
        certificates.folder,
        "ca",
        name,
        f"/CN={hosts[0]}",
        f"subjectAltName={alt}\nextendedKeyUsage=serverAuth\n",
    )
    return certificates.folder / f"{name}.crt", certificates.folder / f"{name}.key"


def make_client_certificate(
    certificates: Certificates, name: str, common_name: str, *, foreign: bool = False
) -> tuple[Path, Path]:
    """A client certificate for `common_name`, signed by the front-proxy CA, or with `foreign`
    by a CA of its own that nobody trusts. Returns (certificate, key)."""
    ca = "front-proxy-ca"
    if foreign:
        ca = f"{name}-ca"
        _make_ca(certificates.folder, ca, f"/CN={ca}")
    _sign(certificates.folder, ca, name, f"/CN={common_name}", "extendedKeyUsage=clientAuth\n")
    return certificates.folder / f"{name}.crt", certificates.folder / f"{name}.key"
