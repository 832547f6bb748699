"""Signing keys: ECDSA P-256 key pairs in PEM formats that cosign reads.

The private key is PKCS#8 PEM (encrypted with the best scheme `cryptography` offers when
``GEFREG_SIGNING_PASSWORD`` is set; `cosign import-key-pair` accepts it), the public key PKIX
PEM (``-----BEGIN PUBLIC KEY-----``, what ``cosign verify --key`` reads). Signatures are
ECDSA over SHA-256, ASN.1 DER encoded, as cosign makes them.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gefreg.errors import BadInput
from gefreg.fsutil import atomic_write

PRIVATE_FILE = "gefreg.key"
PUBLIC_FILE = "gefreg.pub"
PASSWORD_ENV = "GEFREG_SIGNING_PASSWORD"
KEY_ENV = "GEFREG_SIGNING_KEY"
MAX_KEY_FILE = 64 * 1024


@dataclass(frozen=True)
class PublicKey:
    """A P-256 public key; ``pem`` is its canonical PKIX PEM text."""

    pem: str

    @classmethod
    def from_pem(cls, data: bytes | str, source: str = "") -> PublicKey:
        raw = data.encode() if isinstance(data, str) else data
        where = f"{source}: " if source else ""
        try:
            key = serialization.load_pem_public_key(raw)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise BadInput(
                f"{where}not a PEM public key ({exc})",
                "give the gefreg.pub written by `gefreg key generate` (PKIX PEM)",
            ) from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise BadInput(f"{where}not an ECDSA P-256 key", "gefreg signs with ECDSA P-256")
        return cls(_public_pem(key))

    @property
    def key(self) -> ec.EllipticCurvePublicKey:
        key = serialization.load_pem_public_key(self.pem.encode())
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key

    @property
    def fingerprint(self) -> str:
        """``SHA256:<base64>`` of the key in SSH wire form: the key ID cosign's DSSE verifier
        computes for a key, so gefreg's envelopes carry the ID cosign expects."""
        blob = self.key.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        wire = base64.b64decode(blob.split()[1])
        return "SHA256:" + base64.b64encode(hashlib.sha256(wire).digest()).decode().rstrip("=")

    def verifies(self, signature: bytes, data: bytes) -> bool:
        try:
            self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A loaded private key, with its public half."""

    private: ec.EllipticCurvePrivateKey
    public: PublicKey
    path: Path

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data, ec.ECDSA(hashes.SHA256()))


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    encrypted: bool
    fingerprint: str


def _public_pem(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def password_from_env() -> bytes | None:
    value = os.environ.get(PASSWORD_ENV)
    return value.encode() if value else None


def generate(folder: Path, password: bytes | None) -> KeyPair:
    """Write FOLDER/gefreg.key (mode 0600) and FOLDER/gefreg.pub; never overwrites a key."""
    private_path, public_path = folder / PRIVATE_FILE, folder / PUBLIC_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise BadInput(
                f"{path} already exists: gefreg never overwrites a key",
                "choose another folder, or move the old key pair away first",
            )
    folder.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public = PublicKey(_public_pem(private.public_key()))
    atomic_write(public_path, public.pem.encode())
    return KeyPair(private_path, public_path, bool(password), public.fingerprint)


def _read(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_FILE:
            raise BadInput(f"{path}: too large for a {what}")
        return path.read_bytes()
    except FileNotFoundError:
        raise BadInput(
            f"{path}: no such {what} file", "create one with `gefreg key generate DIR`"
        ) from None
    except IsADirectoryError:
        raise BadInput(f"{path} is a folder, not a {what} file") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the {what}: {exc.strerror}") from None


def load_signing_key(path: Path, password: bytes | None = None) -> SigningKey:
    """The private key at ``path``; an encrypted key needs the password (exit 2 without)."""
    data = _read(path, "private key")
    try:
        private = serialization.load_pem_private_key(data, password)
    except TypeError:
        if password is None:
            raise BadInput(
                f"{path} is encrypted and no password was given",
                f"set {PASSWORD_ENV} to the key's password",
            ) from None
        raise BadInput(
            f"{path} is not encrypted but a password was given", f"unset {PASSWORD_ENV}"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        hint = (
            f"check {PASSWORD_ENV}"
            if password
            else "give the gefreg.key from `gefreg key generate`"
        )
        raise BadInput(f"{path}: not a PEM private key, or the password is wrong", hint) from None
    if not isinstance(private, ec.EllipticCurvePrivateKey) or private.curve.name != "secp256r1":
        raise BadInput(f"{path}: not an ECDSA P-256 key", "gefreg signs with ECDSA P-256")
    return SigningKey(private, PublicKey(_public_pem(private.public_key())), path)


def load_public_key(path: Path) -> PublicKey:
    return PublicKey.from_pem(_read(path, "public key"), str(path))
