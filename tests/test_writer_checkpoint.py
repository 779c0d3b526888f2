"""Checkpoints are cheap (console logs hashed as they are written, written files trusted while
untouched) and seal exactly what a from-scratch hash of the files says."""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from pathlib import Path

import pytest

from evidence.atomic import sha256_prefix
from evidence.errors import BundleError
from evidence.format import VERDICTS
from evidence.verify import verify_bundle
from evidence.writer import BundleWriter
from test_evidence import base_manifest, result_row, write_minimal


def from_scratch(bundle: Path, files: dict) -> dict:
    """{name: {sha256, size}} of the files a manifest lists, hashed from their first byte; a
    console log still being written is hashed up to the size the manifest gives it."""
    hashed = {}
    for name, entry in files.items():
        data = (bundle / name).read_bytes()[:entry["size"]]
        hashed[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return hashed


def running(n_passed: int = 0) -> dict:
    """The manifest run.py hands a checkpoint: the summary is its own (finalize computes it)."""
    return dict(base_manifest(n_passed), summary={v: n_passed if v == "PASS" else 0
                                                  for v in VERDICTS})


def started(tmp_path: Path, rows: list[dict] = ()) -> BundleWriter:
    writer = BundleWriter(tmp_path / "run")
    write_minimal(writer, list(rows), console=False)
    writer.write_bytes("procedures/file-io.c", b"int tc(void) { return 0; }\n")
    return writer


def test_a_checkpoint_seals_what_a_from_scratch_hash_says(tmp_path):
    writer = started(tmp_path)
    console, worker = writer.open_console(), writer.open_console("console.w1.log")
    for boot in range(3):
        console.write(b"boot %d \xff\x00 noise\r\n" % boot)
        worker.write(bytes(range(256)) * (boot + 1))
        writer.write_jsonl("results.jsonl", [], validate=False)  # rewritten, as run.py does
        manifest = writer.checkpoint(running())
        assert manifest["status"] == "incomplete"
        assert manifest["files"] == from_scratch(writer.path, manifest["files"])
        assert manifest["files"]["console.log"]["size"] == console.size
    assert verify_bundle(writer.path).ok
    console.close(), worker.close()
    sealed = writer.finalize(base_manifest(), status="incomplete")
    assert sealed["files"] == from_scratch(writer.path, sealed["files"])


def test_a_console_appended_to_after_a_checkpoint_still_verifies(tmp_path):
    writer = started(tmp_path)
    console = writer.open_console()
    console.write(b"boot 0\n")
    manifest = writer.checkpoint(running())
    console.write(b"received after the checkpoint\n")  # a run killed now
    assert manifest["files"]["console.log"] == from_scratch(
        writer.path, {"console.log": {"size": 7}})["console.log"]
    report = verify_bundle(writer.path)
    assert report.ok and report.status == "incomplete"
    assert any("bytes received after the last checkpoint" in note for note in report.notes)


def test_a_resumed_console_is_hashed_from_its_first_byte(tmp_path):
    writer = started(tmp_path, [result_row(0)])
    first = writer.open_console()
    first.write(b"boot 0: before the interruption\n")
    writer.checkpoint(running(1))
    first.write(b"after the last checkpoint\n")
    first.close()  # killed: never finalized (closing the descriptor changes no byte)

    resumed = BundleWriter(tmp_path / "run", resume=True)
    console = resumed.open_console(append=True)
    assert console.size == len(b"boot 0: before the interruption\nafter the last checkpoint\n")
    console.write(b"boot 1: resumed\n")
    manifest = resumed.checkpoint(running(1))
    assert manifest["files"] == from_scratch(resumed.path, manifest["files"])
    assert manifest["files"]["console.log"]["size"] == (tmp_path / "run/console.log").stat().st_size
    console.close()
    sealed = resumed.finalize(base_manifest(1), status="incomplete")
    assert sealed["files"] == from_scratch(resumed.path, sealed["files"])
    assert verify_bundle(resumed.path).ok


def test_a_file_changed_behind_the_writer_is_hashed_again(tmp_path):
    writer = started(tmp_path)
    writer.open_console()
    source = writer.path / "procedures" / "file-io.c"
    source.write_bytes(b"int tc(void) { return 1; }  /* edited in place */\n")
    replaced = writer.path / "requirements.json"
    spare = writer.path / "spare"
    spare.write_bytes(b"{}\n")  # the size of the "[]\n" written, in a new inode
    os.replace(spare, replaced)
    manifest = writer.checkpoint(running())
    assert manifest["files"] == from_scratch(writer.path, manifest["files"])
    # ... and finalize, which hashes everything again, refuses to seal it.
    writer.console.close()
    with pytest.raises(BundleError, match="changed after it was written"):
        writer.finalize(base_manifest())


def test_finalize_refuses_a_console_log_changed_behind_its_sink(tmp_path):
    writer = started(tmp_path)
    with writer.open_console() as console:
        console.write(b"boot 0\n")
    (writer.path / "console.log").write_bytes(b"boot 1\n")
    with pytest.raises(BundleError, match="console.log: changed after it was written"):
        writer.finalize(base_manifest())


@pytest.fixture
def threads_switching_often():
    """Switch threads every microsecond, so a size and digest torn apart would be seen."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.mark.usefixtures("threads_switching_often")
def test_checkpoints_taken_while_a_reader_thread_writes_are_consistent(tmp_path):
    writer = started(tmp_path)
    console = writer.open_console()
    done = threading.Event()
    sealed = []

    def reader() -> None:  # QEMU's output arriving, without run.py's lock
        n = 0
        # Until several checkpoints were taken while it wrote (however slow the machine);
        # bounded, should checkpoints fail.
        while (n < 3000 or len(sealed) < 3) and n < 1_000_000:
            console.write(bytes([n % 251]) * (n % 97 + 1))
            n += 1
        done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    while not done.is_set():
        sealed.append(writer.checkpoint(running())["files"]["console.log"])
    thread.join()
    assert len(sealed) > 1
    for entry in sealed:  # each names a prefix the log really has, never a torn write
        assert sha256_prefix(writer.path / "console.log", entry["size"]) == entry["sha256"]
