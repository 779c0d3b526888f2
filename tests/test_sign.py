"""Ed25519 signing of bundles: `pcert keygen`, `pcert sign`, `pcert verify --key`."""

from __future__ import annotations

import doctest
import json

import pytest

import evidence.signing
from bundle_factory import make_bundle
from conformance.cli import main
from evidence.errors import BundleError, InputError
from evidence.signing import generate_key, load_public_key, sign_bundle
from evidence.verify import verify_bundle
from reports.render import render_reports


def test_docstring_examples_hold():
    assert doctest.testmod(evidence.signing).failed == 0


@pytest.fixture()
def keys(tmp_path):
    return generate_key(tmp_path / "release.key"), generate_key(tmp_path / "other.key")


def test_a_signed_bundle_verifies_with_its_key_and_signing_is_deterministic(tmp_path, keys):
    bundle = make_bundle(tmp_path)
    signature = sign_bundle(bundle, keys[0])
    first = signature.read_bytes()
    report = verify_bundle(bundle, [load_public_key(f"{keys[0]}.pub")])
    assert report.ok and report.signature.startswith("signature valid")
    assert sign_bundle(bundle, keys[0]).read_bytes() == first
    record = json.loads(first)
    assert record["algorithm"] == "ed25519" and record["signed_file"] == "manifest.json"


def test_rerendered_reports_keep_the_signature_valid(tmp_path, keys):
    bundle = make_bundle(tmp_path)
    sign_bundle(bundle, keys[0])
    render_reports(bundle)
    assert verify_bundle(bundle, [load_public_key(f"{keys[0]}.pub")]).ok


def test_a_bundle_signed_by_another_key_is_rejected(tmp_path, keys):
    bundle = make_bundle(tmp_path)
    sign_bundle(bundle, keys[1])
    report = verify_bundle(bundle, [load_public_key(f"{keys[0]}.pub")])
    assert not report.ok
    assert any("not a trusted key" in line for line in report.problems)


def test_a_manifest_changed_after_signing_is_rejected(tmp_path, keys):
    bundle = make_bundle(tmp_path)
    sign_bundle(bundle, keys[0])
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["exit"]["reason"] = "powered off (edited)"
    (bundle / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=2) + "\n")
    report = verify_bundle(bundle)
    assert not report.ok and report.signature.startswith("signature invalid")
    assert any("does not match manifest.json" in line for line in report.problems)


def test_tampered_evidence_in_a_signed_bundle_is_named(tmp_path, keys):
    bundle = make_bundle(tmp_path)
    sign_bundle(bundle, keys[0])
    with open(bundle / "results.jsonl", "ab") as results:
        results.write(b"\n")
    report = verify_bundle(bundle, [load_public_key(f"{keys[0]}.pub")])
    assert report.changed == ["results.jsonl"] and not report.ok


def test_a_forged_signature_file_is_rejected(tmp_path, keys):
    bundle = make_bundle(tmp_path)
    path = sign_bundle(bundle, keys[0])
    record = json.loads(path.read_text())
    record["signature"] = "00" * 64
    path.write_text(json.dumps(record))
    assert not verify_bundle(bundle).ok
    path.write_text("not json")
    assert any("malformed" in line for line in verify_bundle(bundle).problems)


def test_a_trusted_key_requires_a_signature(tmp_path, keys):
    bundle = make_bundle(tmp_path)
    assert verify_bundle(bundle).ok     # unsigned is fine when no key is asked for
    report = verify_bundle(bundle, [load_public_key(f"{keys[0]}.pub")])
    assert any("not signed" in line for line in report.problems)


def test_a_damaged_bundle_is_not_signed(tmp_path, keys):
    bundle = make_bundle(tmp_path)
    (bundle / "console.log").write_bytes(b"edited")
    with pytest.raises(BundleError, match="does not verify"):
        sign_bundle(bundle, keys[0])
    assert not (bundle / "manifest.sig").exists()


def test_keys_are_never_overwritten_and_bad_key_files_are_named(tmp_path, keys):
    with pytest.raises(InputError, match="already exists"):
        generate_key(keys[0])
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(InputError, match="junk.pem"):
        load_public_key(tmp_path / "junk.pem")
    assert (keys[0].stat().st_mode & 0o077) == 0        # private key readable by its owner only


def test_cli_sign_and_verify(tmp_path, keys, capsys):
    bundle = make_bundle(tmp_path)
    assert main(["sign", str(bundle), "--key", str(keys[0])]) == 0
    assert main(["verify", str(bundle), "--key", f"{keys[0]}.pub"]) == 0
    assert "signature valid" in capsys.readouterr().out
    assert main(["verify", str(bundle), "--key", f"{keys[1]}.pub"]) == 1
    assert main(["sign", str(bundle), "--key", str(tmp_path / "missing.key")]) == 2
