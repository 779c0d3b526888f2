"""Realistic, schema-valid evidence bundles for tests, written through BundleWriter.

    from bundle_factory import make_bundle

    bundle = make_bundle(tmp_path)                            # 6 cases, one of each verdict
    bundle = make_bundle(tmp_path, n_cases=3, verdicts=["PASS"])          # all pass
    bundle = make_bundle(tmp_path, n_cases=4, verdicts=["PASS", "FAIL"])  # alternating

``verdicts`` is cycled over the test cases. The result is deterministic (same arguments, same
bytes), so reports rendered from it can be compared byte for byte. The console holds boot noise
with binary garbage, real framed records (valid CRCs, percent-encoded values), an interleaved
kernel message, what a failing test printed, and one rejected record (kept in anomalies.jsonl).
UNINITIATED cases have no console range; a non-empty ``status`` other than "complete" is passed
to ``finalize``. ``reports/`` is not written.
"""

from __future__ import annotations

import hashlib
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from evidence.format import VERDICTS, make_run_id
from evidence.writer import BundleWriter

NONCE = "0123456789abcdef"
ALL_VERDICTS = tuple(VERDICTS)

# (unit, interface, what the requirement says in our words)
INTERFACES = [
    ("file-io", "open", "On success open() returns a non-negative file descriptor."),
    ("file-io", "read", "read() at end of file returns 0."),
    ("clocks", "clock_gettime", "CLOCK_MONOTONIC never goes backwards."),
    ("threads", "pthread_create", "pthread_create() starts the thread at its start routine."),
    ("file-io", "close", "close() of a closed descriptor fails with EBADF."),
    ("clocks", "timer_create", "timer_create() is available where _POSIX_TIMERS is defined."),
]

REASONS = {
    "FAIL": "read(fd, buf, 1): got -1 (errno EBADF), want 0",
    "UNRESOLVED": "crashed: SIGSEGV",
    "UNSUPPORTED": "option _POSIX_TIMERS not supported",
    "UNTESTED": "needs a writable /tmp",
    "UNINITIATED": "not reported: no result from the guest before it powered off",
}

SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._,:/+-@")


def make_bundle(tmp_path: Path, n_cases: int = 6, verdicts: Sequence[str] | None = None,
                status: str = "complete") -> Path:
    """Write a finalized bundle under ``tmp_path`` and return its directory."""
    verdicts = list(verdicts or ALL_VERDICTS)
    cases = [_case(index, verdicts[index % len(verdicts)]) for index in range(n_cases)]
    run_id = make_run_id("linux-x86_64", datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc),
                         bytes([0x3f, 0xa9, n_cases % 256]))
    writer = BundleWriter(tmp_path / run_id)

    procedures = _procedures(cases)
    for name, text in sorted(procedures.items()):
        writer.write_bytes(name, text.encode("utf-8"))
    requirements = sorted((_requirement(case) for case in cases), key=lambda r: r["id"])
    writer.write_json("requirements.json", requirements)
    writer.write_json("testcases.json", [case["testcase"] for case in cases])

    console, ranges, anomalies, guest = _console(cases)
    with writer.open_console() as sink:
        for start in range(0, len(console), 97):  # arrives in chunks, as from a serial port
            sink.write(console[start:start + 97])

    results = [_result(case, ranges.get(case["testcase"]["index"])) for case in cases]
    writer.write_jsonl("results.jsonl", results)
    writer.write_jsonl("anomalies.jsonl", anomalies)
    writer.finalize(_manifest(run_id, n_cases, len(requirements), guest), status=status)
    return writer.path


def _case(index: int, verdict: str) -> dict:
    unit, interface, wording = INTERFACES[index % len(INTERFACES)]
    number = index // len(INTERFACES) + 1
    tc_id = f"TC-{interface}-{number:03d}"
    function = "tc_" + tc_id.replace("-", "_")
    body = (f"/* {tc_id} */\nint {function}(void)\n{{\n"
            f"    PCERT_CHECK({interface}_probe() == 0);\n    return 0;\n}}\n")
    return {
        "verdict": verdict,
        "unit": unit,
        "body": body,
        "wording": f"{wording} (case {number})",
        "requirement": f"REQ-{interface}-{number:03d}",
        "testcase": {
            "id": tc_id, "index": index, "title": f"{interface}: {wording}",
            "unit": unit, "interface": interface,
            "kind": "robustness" if index % 3 == 2 else "normal",
            "verifies": [f"REQ-{interface}-{number:03d}"],
            "options": ["_POSIX_TIMERS"] if interface == "timer_create" else [],
            "timeout_s": 10,
            "inputs": f"{interface}_probe();",
            "expected": f"{wording}",
            "procedure": {"file": f"procedures/{unit}.c", "function": function,
                          "sha256": hashlib.sha256(body.encode()).hexdigest()},
        },
    }


def _procedures(cases: list[dict]) -> dict[str, str]:
    files: dict[str, str] = {
        "procedures/pcert_runtime.h": "#ifndef PCERT_RUNTIME_H\n#define PCERT_RUNTIME_H\n"
                                      "#define PCERT_CHECK(c) ((void)(c))\n#endif\n",
    }
    for case in cases:
        name = case["testcase"]["procedure"]["file"]
        files.setdefault(name, '#include "pcert_runtime.h"\n\n')
        files[name] += case["body"] + "\n"
    return files


def _requirement(case: dict) -> dict:
    text = case["wording"]
    return {
        "id": case["requirement"], "interface": case["testcase"]["interface"],
        "unit": case["unit"], "text": text,
        "source": {"standard": "POSIX.1-2017",
                   "section": f"{case['testcase']['interface']}(): DESCRIPTION"},
        "method": "test", "status": "active",
        "fingerprint": hashlib.sha256(" ".join(text.split()).encode()).hexdigest(),
        "profiles": ["face-safety-base", "pse52"],
    }


def _frame(seq: int, kind: str, fields: list[tuple[str, str]], nonce: str = NONCE) -> bytes:
    encoded = "".join(f" {key}={_percent(value)}" for key, value in fields)
    body = f"PCERT1 {nonce} {seq} {kind}{encoded}".encode("ascii")
    return body + f" {zlib.crc32(body):08x}\n".encode("ascii")


def _percent(value: str) -> str:
    return "".join(chr(b) if b in SAFE else f"%{b:02X}" for b in value.encode("utf-8"))


def _console(cases: list[dict]) -> tuple[bytes, dict[int, dict], list[dict], dict]:
    guest = {"proto": "1", "sysname": "Linux", "nodename": "pcert", "release": "6.1.0-56-cloud-amd64",
             "version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2", "machine": "x86_64",
             "ncpu": "2", "ntests": str(len(cases)), "first": "0", "fork": "1",
             "opt._POSIX_THREADS": "200809", "opt._POSIX_TIMERS": "undef",
             "sc._SC_NPROCESSORS_ONLN": "2"}
    out = bytearray(b"\x1b[0m\x00\xffSeaBIOS (version 1.16.2)\r\n\xfe\xfe\x00garbage\r\n"
                    b"[    0.000000] Linux version 6.1.0-56-cloud-amd64\r\n")
    seq = 0
    out += _frame(seq, "start", list(guest.items()))
    anomalies = []
    ranges: dict[int, dict] = {}
    for case in cases:
        tc, verdict = case["testcase"], case["verdict"]
        if verdict == "UNINITIATED":
            continue
        start = len(out)
        seq += 1
        out += _frame(seq, "begin", [("idx", str(tc["index"])), ("id", tc["id"]), ("clock", "1000")])
        if verdict == "FAIL":
            seq += 1
            out += _frame(seq, "out", [("idx", str(tc["index"])), ("data", "diag: \x01 100% sure\n")])
        if tc["index"] == 1:
            # A kernel message interleaved mid-line, and a record with a broken CRC.
            out += b"[    1.234567] random: crng init done\r\n"
            anomalies.append({"offset": len(out), "reason": "crc mismatch", "kind": "rejected"})
            out += _frame(seq + 1, "result", [("idx", "1")])[:-3] + b"zz\n"
        seq += 1
        reason = REASONS.get(verdict, "")
        out += _frame(seq, "result", [
            ("idx", str(tc["index"])), ("id", tc["id"]), ("verdict", verdict),
            ("code", str(VERDICTS[verdict])), ("reason", reason),
            ("file", _source(tc) if reason else ""), ("line", "42" if reason else ""),
            ("clock", "2200000"), ("dur_ns", "1200000")])
        ranges[tc["index"]] = {"start": start, "end": len(out)}
    seq += 1
    out += _frame(seq, "end", [("ran", str(len(ranges))), ("clock", "9000000")])
    out += b"[    2.310000] reboot: Power down\r\n"
    return bytes(out), ranges, anomalies, guest


def _result(case: dict, span: dict | None) -> dict:
    tc, verdict = case["testcase"], case["verdict"]
    reason = REASONS.get(verdict, "")
    began = span is not None
    return {
        "id": tc["id"], "index": tc["index"], "verdict": verdict, "code": VERDICTS[verdict],
        "reason": reason, "file": _source(tc) if reason and began else "",
        "line": 42 if reason and began else None,
        "guest_duration_s": 0.0012 if began else None,
        "console": span,
        "host_time": {"start": 1.9 + tc["index"] / 100, "end": 1.905 + tc["index"] / 100}
        if began else None,
        "verifies": list(tc["verifies"]),
        "procedure_sha256": tc["procedure"]["sha256"],
    }


def _source(testcase: dict) -> str:
    return testcase["procedure"]["file"].rsplit("/", 1)[-1]


def _manifest(run_id: str, n_cases: int, n_requirements: int, guest: dict) -> dict:
    return {
        "run_id": run_id,
        "started_utc": "2026-11-26T16:00:00Z",
        "finished_utc": "2026-11-26T16:00:05Z",
        "pcert": {"version": "0.1.0", "git_commit": None},
        "plan": {"profile": "face-safety-base", "edition": "3.2", "checks": "behaviour",
                 "test_cases": n_cases, "requirements": n_requirements},
        "target": {"name": "linux-x86_64", "arch": "x86_64", "machine": "qemu-system-x86_64",
                   "console": "ttyS0"},
        "tools": {"compiler": {"command": "gcc", "version": "gcc (Debian 12.2.0-14) 12.2.0",
                               "sha256": "1" * 64},
                  "qemu": {"command": "qemu-system-x86_64",
                           "version": "QEMU emulator version 7.2.15", "sha256": "2" * 64}},
        "kernel": {"package": "linux-image-6.1.0-56-cloud-amd64", "version": "6.1.192-2",
                   "deb_sha256": "3" * 64, "sha256": "4" * 64, "source": "debian"},
        "image": {"kind": "initramfs", "sha256": "5" * 64, "size": 123456},
        "command": ["qemu-system-x86_64", "-M", "pc", "-accel", "tcg", "-nographic"],
        "nonce": NONCE,
        "guest": guest,
        "exit": {"reason": "powered off", "status": 0, "boot_s": 1.62, "wall_s": 2.31},
    }
