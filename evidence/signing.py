"""Ed25519 signatures over a bundle's manifest (``pcert keygen``, ``pcert sign``, ``pcert verify``).

The manifest lists the sha256 of every evidence file, so signing its exact bytes signs the whole
evidence: verify checks the signature, then each file against the manifest. ``reports/`` is not
signed: it is derived, and anyone can re-render it from the signed evidence and compare.

>>> import tempfile, pathlib
>>> keys = pathlib.Path(tempfile.mkdtemp())
>>> private = generate_key(keys / "release.key")       # also writes release.key.pub
>>> sorted(p.name for p in keys.iterdir())
['release.key', 'release.key.pub']
>>> key_id(load_public_key(keys / "release.key.pub")) == key_id(load_public_key(private))
True

``manifest.sig`` (JSON, keys sorted) holds the algorithm, the signed file and its sha256, the run
id, the public key (hex) with its id, and the signature (hex). Ed25519 is deterministic: signing
the same manifest with the same key gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import format as fmt
from .atomic import encode_json, write_bytes_atomic
from .errors import BundleError, InputError

SIGNATURE_SCHEMA = "pcert-signature/1"
ALGORITHM = "ed25519"
PUBLIC_SUFFIX = ".pub"


# --------------------------------------------------------------------------- keys

def generate_key(path: Path | str) -> Path:
    """Write a new Ed25519 private key to ``path`` (PEM, PKCS#8, readable by its owner only)
    and its public key to ``path.pub`` (PEM). Refuses to overwrite an existing key."""
    path = Path(path)
    public_path = path.with_name(path.name + PUBLIC_SUFFIX)
    for existing in (path, public_path):
        if existing.exists():
            raise InputError(f"{existing}: already exists; a key is never overwritten: choose "
                             "another file name or remove the old key yourself")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    write_bytes_atomic(path, private_pem)       # temporary files are created 0600
    write_bytes_atomic(public_path, public_pem(key.public_key()))
    os.chmod(public_path, 0o644)
    return path


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(path: Path | str) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path``, or InputError saying what is wrong."""
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise InputError(f"{path}: not an unencrypted PEM private key ({error}); make one with "
                         "`pcert keygen FILE`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path}: a {type(key).__name__}, not an Ed25519 key; make one with "
                         "`pcert keygen FILE`")
    return key


def load_public_key(path: Path | str) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM file ``path``; a private key file gives its public
    key."""
    data = _read_key_file(path)
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as error:
        raise InputError(f"{path}: not a PEM public key ({error}); give the .pub file "
                         "`pcert keygen` wrote") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{path}: a {type(key).__name__}, not an Ed25519 key")
    return key


def _read_key_file(path: Path | str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror}); give the path of a key "
                         "file") from None


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """First 16 hex digits of the sha256 of the raw public key: short enough to read aloud."""
    return hashlib.sha256(raw_public_key(key)).hexdigest()[:16]


# --------------------------------------------------------------------------- signing

def sign_bundle(bundle_path: Path | str, private_key: Path | str) -> Path:
    """Sign the bundle's manifest.json with the key in ``private_key``; writes manifest.sig.

    Only an intact bundle is signed (a signature vouches for the evidence as it is): a bundle
    that does not verify is refused with what is wrong. Signing again replaces the signature.
    """
    from .verify import verify_bundle     # verify checks signatures: import here, not at the top

    bundle_path = Path(bundle_path)
    key = load_private_key(private_key)
    report = verify_bundle(bundle_path, check_signature=False)
    if not report.ok:
        raise BundleError(f"{bundle_path}: not signed, the bundle does not verify: "
                          + "; ".join(report.problems))
    manifest_bytes = (report.path / fmt.MANIFEST).read_bytes()
    manifest = json.loads(manifest_bytes)
    public = key.public_key()
    record = {
        "schema": SIGNATURE_SCHEMA,
        "algorithm": ALGORITHM,
        "signed_file": fmt.MANIFEST,
        "signed_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "run_id": manifest.get("run_id"),
        "public_key": raw_public_key(public).hex(),
        "key_id": key_id(public),
        "signature": key.sign(manifest_bytes).hex(),
    }
    path = report.path / fmt.SIGNATURE
    write_bytes_atomic(path, encode_json(record))
    return path


@dataclass
class SignatureCheck:
    """What :func:`check_signature` found. ``state`` is one of ``unsigned``, ``valid`` (and
    made by a trusted key, when keys were given), ``untrusted`` (valid, but by another key) or
    ``invalid``; ``problems`` has one line per finding."""

    state: str
    key_id: str | None = None
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.state == "unsigned":
            return "not signed"
        return f"signature {self.state} (ed25519 key {self.key_id or 'unknown'})"


def check_signature(bundle_path: Path | str,
                    trusted: list[Ed25519PublicKey] | None = None) -> SignatureCheck:
    """Check manifest.sig against manifest.json; with ``trusted`` keys, the bundle must be
    signed, and by one of them."""
    bundle_path = Path(bundle_path)
    path = bundle_path / fmt.SIGNATURE
    if not path.exists():
        check = SignatureCheck("unsigned")
        if trusted:
            check.problems.append(f"{fmt.SIGNATURE}: missing; the bundle is not signed, but a "
                                  "trusted key was given (sign it with `pcert sign`)")
        return check
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
        signature = bytes.fromhex(record["signature"])
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(record["public_key"]))
        if record.get("algorithm") != ALGORITHM or record.get("signed_file") != fmt.MANIFEST:
            raise ValueError("not an ed25519 signature of manifest.json")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        return SignatureCheck("invalid", None, [f"{fmt.SIGNATURE}: unreadable or malformed "
                                                f"({error}); sign the bundle again"])
    check = SignatureCheck("valid", key_id(public))
    try:
        public.verify(signature, (bundle_path / fmt.MANIFEST).read_bytes())
    except InvalidSignature:
        check.state = "invalid"
        check.problems.append(f"{fmt.SIGNATURE}: the signature does not match {fmt.MANIFEST}: "
                              "the manifest (or the signature) was changed after signing")
        return check
    if trusted and raw_public_key(public) not in {raw_public_key(k) for k in trusted}:
        check.state = "untrusted"
        check.problems.append(f"{fmt.SIGNATURE}: signed by key {check.key_id}, which is not a "
                              "trusted key ("
                              + ", ".join(key_id(k) for k in trusted) + ")")
    return check
