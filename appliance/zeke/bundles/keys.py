"""Ed25519 keys: make a key pair, sign a manifest, check a signature against trusted keys.

Private keys are PKCS#8 PEM files (mode 0600); public keys are SubjectPublicKeyInfo PEM files
named ``<anything>.pub``. A key is known by its id: the first 16 hex digits of the sha256 of
its raw 32-byte public key. The signed message is a fixed context string followed by the
manifest bytes, so a bundle signature cannot be replayed as a signature of anything else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from zeke.bundles.errors import BundleError
from zeke.bundles.manifest import MANIFEST_MEMBER, SIGNATURE_MEMBER, canonical_json

DEFAULT_TRUSTED_DIR = Path("/etc/zeke/trusted-keys")
TRUSTED_DIR_ENV = "ZEKE_TRUSTED_KEYS"
SIGNING_CONTEXT = b"zeke-model-bundle/v1\x00"
ALGORITHM = "ed25519"


def trusted_keys_dir(directory: str | os.PathLike | None = None) -> Path:
    """The trusted-keys directory: explicit, ``$ZEKE_TRUSTED_KEYS``, /etc/zeke/trusted-keys."""
    if directory:
        return Path(directory)
    return Path(os.environ.get(TRUSTED_DIR_ENV) or DEFAULT_TRUSTED_DIR)


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_path: Path
    key_id: str


def generate_keypair(directory: Path, name: str) -> KeyPair:
    """Write ``<name>.key`` (0600) and ``<name>.pub`` into ``directory``; never overwrite."""
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise BundleError(
                f"{path} already exists; refusing to overwrite a key",
                hint="choose another --name or directory, or move the old key away first",
            )
    private_key = Ed25519PrivateKey.generate()
    private = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as stream:
            stream.write(private)
        public_path.write_bytes(public_pem(private_key.public_key()))
    except OSError as err:
        raise BundleError(
            f"cannot write the key pair in {directory}: {err.strerror}",
            hint="choose a writable --out directory",
        ) from None
    return KeyPair(private_path, public_path, key_id(private_key.public_key()))


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BundleError(
            f"cannot read signing key {path}: {err.strerror}",
            hint="make one with `zeke models keygen`",
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise BundleError(
            f"{path} is not an unencrypted PEM private key ({err})",
            hint="pass the .key file `zeke models keygen` wrote (not the .pub)",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(
            f"{path} is not an Ed25519 key", hint="make one with `zeke models keygen`"
        )
    return key


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    path = Path(path)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as err:
        raise BundleError(f"cannot read public key {path}: {err.strerror}") from None
    except (ValueError, TypeError) as err:
        raise BundleError(f"{path} is not a PEM public key ({err})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path} is not an Ed25519 public key")
    return key


@dataclass
class TrustedKeys:
    """The public keys bundles may be signed with, by key id."""

    directory: Path
    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, directory: str | os.PathLike | None = None) -> TrustedKeys:
        """Every ``*.pub`` in the directory; unreadable files are noted, not fatal."""
        found = cls(trusted_keys_dir(directory))
        try:
            candidates = sorted(found.directory.glob("*.pub"))
        except OSError as err:
            found.problems.append(f"cannot list {found.directory}: {err.strerror}")
            return found
        for path in candidates:
            try:
                public = load_public_key(path)
            except BundleError as err:
                found.problems.append(err.message)
                continue
            found.keys[key_id(public)] = public
            found.paths[key_id(public)] = path
        return found


def sign(private_key: Ed25519PrivateKey, manifest: bytes) -> bytes:
    """The ``bundle.sig`` document for these manifest bytes (Ed25519 is deterministic)."""
    signature = private_key.sign(SIGNING_CONTEXT + manifest)
    return canonical_json(
        {
            "algorithm": ALGORITHM,
            "key_id": key_id(private_key.public_key()),
            "signature": base64.b64encode(signature).decode("ascii"),
        }
    )


def _parse_signature(data: bytes) -> tuple[str, bytes]:
    try:
        document = json.loads(data.decode("utf-8"))
        if not isinstance(document, dict) or set(document) != {"algorithm", "key_id", "signature"}:
            raise ValueError("unexpected fields")
        if document["algorithm"] != ALGORITHM:
            raise ValueError(f"algorithm {document['algorithm']!r} is not {ALGORITHM}")
        ident = document["key_id"]
        if not isinstance(ident, str) or len(ident) != 16:
            raise ValueError("bad key id")
        raw = base64.b64decode(document["signature"], validate=True)
        if len(raw) != 64:
            raise ValueError("an Ed25519 signature is 64 bytes")
    except (UnicodeDecodeError, ValueError, TypeError, RecursionError, binascii.Error) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise BundleError(
            f"{SIGNATURE_MEMBER} is malformed ({reason.splitlines()[0] if reason else 'empty'})",
            hint="the bundle is corrupt; get it again from its publisher",
        ) from None
    return ident, raw


def verify_signature(signature_doc: bytes, manifest: bytes, trusted: TrustedKeys) -> str:
    """Check the manifest's signature; return the signing key's id or raise BundleError."""
    ident, raw = _parse_signature(signature_doc)
    public = trusted.keys.get(ident)
    if public is None:
        known = ", ".join(sorted(trusted.keys)) or "none"
        raise BundleError(
            f"bundle is signed by key {ident}, which is not trusted "
            f"(trusted keys in {trusted.directory}: {known})",
            hint=f"if you trust its publisher, put their public key in {trusted.directory}/",
        )
    try:
        public.verify(raw, SIGNING_CONTEXT + manifest)
    except InvalidSignature:
        raise BundleError(
            f"bundle signature does not verify with key {ident}: {MANIFEST_MEMBER} was changed "
            "after signing or the signature is corrupt",
            hint="do not use this bundle; get it again from its publisher",
        ) from None
    return ident
