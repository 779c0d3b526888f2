"""Hashes that identify what a result depends on, so a later change can make it suspect.

A result is evidence for the requirement wording, the procedure, the image and the environment
it ran with. The run records each (docs/bundle.md, results.jsonl): the requirements'
fingerprints, ``procedure_sha256``, ``image_sha256`` and ``environment_sha256``. This module
computes the one that is not a plain file hash:

>>> manifest = {"target": {"name": "host"}, "tools": {}, "kernel": None}
>>> environment_sha256(manifest) == environment_sha256(dict(manifest, nonce="ab" * 8))
True
>>> environment_sha256(manifest) == environment_sha256(dict(manifest, kernel={"sha256": "0" * 64}))
False
"""

from __future__ import annotations

import hashlib

from .atomic import encode_json

# What the environment is: where and with what the image was built and run. Not the nonce,
# the command line (it carries the nonce) or the times: they differ on every run.
ENVIRONMENT_FIELDS = ("target", "tools", "kernel", "host")


def environment_sha256(manifest: dict) -> str:
    """sha256 of the manifest's target definition, tools, kernel and host, canonically encoded
    (sorted keys; an absent field counts as null)."""
    environment = {name: manifest.get(name) for name in ENVIRONMENT_FIELDS}
    return hashlib.sha256(encode_json(environment)).hexdigest()
