"""Agent mode (docs/agent.md): the request framing, the real agent in the runtime on the host,
an end-to-end differential run on linux-x86_64 in QEMU, and a guest that goes away mid-call."""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from conformance.agent import AgentError, AgentLost
from conformance.agent.transport import Transport, encode_request
from targets.definition import load_target
from targets.drivers import make_machine
from targets.image import ImageInfo
from targets.protocol import frame, percent_decode

RUNTIME = Path(__file__).resolve().parent.parent / "targets" / "runtime"
NONCE = "0123456789abcdef"
CFLAGS = ["-std=c99", "-D_POSIX_C_SOURCE=200809L", "-D_XOPEN_SOURCE=700", "-D_DEFAULT_SOURCE",
          "-Wall", "-Wextra", "-Werror", "-O2"]
CASES_C = """#include "pcert.h"
static void tc_a(void) { }
const struct pcert_case pcert_cases[] = { { "TC-a", tc_a, "", 0 } };
const unsigned pcert_ncases = 1;
"""


# -- (a) framing ---------------------------------------------------------------------------------

def _decode_request(line: bytes) -> tuple[int, str, list[bytes]]:
    """What the guest does with a request line, in Python: for the round trip only."""
    assert line.endswith(b"\n")
    body, _, crc = line[:-1].rpartition(b" ")
    assert int(crc, 16) == zlib.crc32(body)
    magic, seq, op, *args = body.split(b" ")
    assert magic == b"PCERTQ" and all(a.startswith(b"=") for a in args)
    return int(seq), op.decode(), [percent_decode(a[1:].decode()) for a in args]


@settings(max_examples=200, deadline=None)
@given(seq=st.integers(0, 10**12), args=st.lists(st.binary(max_size=200) | st.integers(-2**63, 2**64), max_size=6))
def test_request_round_trip(seq, args):
    line = encode_request(seq, "snprintf", args)
    assert line.count(b"\n") == 1 and b"  " not in line
    got = _decode_request(line)
    assert got == (seq, "snprintf", [a if isinstance(a, bytes) else str(a).encode() for a in args])


def test_request_rejects_bad_ops_and_oversize():
    for op in ("", "Strtol", "a b", "x\n"):
        with pytest.raises(ValueError):
            encode_request(0, op, [])
    with pytest.raises(ValueError):
        encode_request(0, "strlen", [b"\xff" * 6000])   # 18000 bytes encoded


class FakeGuest:
    """The test plays the guest on the other end of a socketpair."""

    def __init__(self, timeout_s=2.0):
        self.host, self.guest = socket.socketpair()
        self.transport = Transport(self.host, NONCE, timeout_s=timeout_s)

    def answer(self, *records: bytes):
        """Reply to the next request with these bytes, from a thread."""
        def serve():
            self.guest.recv(1 << 16)
            for r in records:
                self.guest.sendall(r)
        threading.Thread(target=serve, daemon=True).start()

    def close(self):
        self.host.close(), self.guest.close()


def reply(seq, q, op="strlen", status="ok", nonce=NONCE, **fields):
    return frame(nonce, seq, "reply", [("q", str(q)), ("op", op), ("status", status),
                                       *fields.items()])


def test_transport_accepts_the_reply_and_maps_errors():
    g = FakeGuest()
    g.answer(b"noise before\n" + reply(0, 0, ret=b"3"))
    assert g.transport.call("strlen", b"abc") == {"ret": b"3"}
    g.answer(reply(1, 1, status="error", reason="unknown op"))
    with pytest.raises(AgentError) as err:
        g.transport.call("strlen", b"x")
    assert err.value.reason == "unknown op"
    g.answer(reply(2, 2, out=b"a b\x00"))   # split across writes is fine too
    assert g.transport.call("strlen", b"y")["out"] == b"a b\x00"
    g.close()


FORGED = {
    "wrong nonce": reply(0, 0, nonce="fedcba9876543210", ret=b"1"),
    "bad CRC": reply(0, 0, ret=b"1")[:-10] + b"00000000\n",
    "another request's reply": reply(0, 5, ret=b"1"),
    "another op": reply(0, 0, op="strcmp", ret=b"1"),
    "a sequence gap": reply(3, 0, ret=b"1"),
    "two replies": reply(0, 0, ret=b"1") + reply(1, 0, ret=b"1"),
    "not a reply": frame(NONCE, 0, "result", [("q", "0"), ("op", "strlen"), ("status", "ok")]),
    "a refused request": reply(0, -1, op="", status="error", reason="CRC mismatch"),
    "a malformed status": reply(0, 0, status="maybe"),
}


@pytest.mark.parametrize("case", sorted(FORGED))
def test_transport_loses_the_agent_on_a_bad_reply(case):
    g = FakeGuest()
    g.answer(FORGED[case])
    with pytest.raises(AgentLost):
        g.transport.call("strlen", b"abc")
    with pytest.raises(AgentLost):   # and stays lost
        g.transport.call("strlen", b"abc")
    g.close()


def test_transport_loses_the_agent_on_silence_and_eof():
    g = FakeGuest(timeout_s=0.3)
    g.answer()   # reads the request, says nothing
    with pytest.raises(AgentLost, match="no reply"):
        g.transport.call("strlen", b"abc")
    g.close()
    g = FakeGuest()
    g.guest.close()
    with pytest.raises(AgentLost):
        g.transport.call("strlen", b"abc")
    g.host.close()


# -- (b) the real agent on the host ----------------------------------------------------------------

@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    tmp = tmp_path_factory.mktemp("agent")
    (tmp / "cases.c").write_text(CASES_C)
    out = tmp / "pcert-runtime"
    subprocess.run(["gcc", *CFLAGS, "-I", str(RUNTIME), str(RUNTIME / "pcert.c"),
                    str(RUNTIME / "pcert_agent.c"), str(tmp / "cases.c"), "-o", str(out)],
                   check=True, capture_output=True, text=True)
    return out


class Sink:
    def __init__(self):
        self.data = bytearray()

    def write(self, data):
        self.data += data
        return len(data)

    @property
    def size(self):
        return len(self.data)


def host_session(binary, timeout_s=10.0):
    from conformance.agent.session import AgentSession, AgentTimeouts
    target = load_target("host")
    image = ImageInfo(path=binary, kind="none", sha256="0" * 64, size=0)
    sink = Sink()
    session = AgentSession(lambda env: make_machine(target, binary=binary, image=image, kernel=None,
                                                    guest_env={"PCERT_NONCE": NONCE, **env}, agent=True),
                           NONCE, sink, timeouts=AgentTimeouts(boot_s=10, idle_s=30, run_s=120,
                                                               call_s=timeout_s))
    return session, sink


def test_agent_answers_each_family(runtime):
    session, sink = host_session(runtime)
    agent = session.boot()
    assert agent.call("strtol", b"  -0x1f", 16) == {"ret": b"-31", "end": b"7", "errno": b"0"}
    assert agent.call("strtoul", b"99999999999999999999", 10)["errno"] == b"ERANGE"
    assert agent.call("strtod", b"0.5")["bits"] == b"3fe0000000000000"
    assert agent.call("snprintf", 4, b"[%5lld]", "ll", -42) == {"ret": b"7", "out": b"[  "}
    assert agent.call("snprintf", 0, b"%s", "str", b"abc") == {"ret": b"3", "out": b""}
    assert agent.call("gmtime", 0)["year"] == b"70"
    assert agent.call("mktime", 0, 0, 0, 1, 0, 70, 0)["ret"] == b"0"
    assert agent.call("strftime", 32, b"%Y-%j", 0, 0, 0, 2, 1, 100, 3, 32, 0)["out"] == b"2000-033"
    assert agent.call("qsort", b"3,-1,2")["out"] == b"-1,2,3"
    assert agent.call("bsearch", b"1,3,5", 5)["idx"] == b"2"
    assert agent.call("strchr", b"hello", ord("l"))["idx"] == b"2"
    assert agent.call("memchr", b"a\x00b", ord("b"), 3)["idx"] == b"2"
    assert agent.call("strncpy", b"ab", 4)["out"] == b"ab\x00\x00"
    assert agent.call("fnmatch", b"*.c", b".x.c", "PERIOD")["ret"] == b"FNM_NOMATCH"
    for bad in [("snprintf", 8, b"%n", "ll", 1), ("snprintf", 8, b"%*d", "chr", 1),
                ("snprintf", 8, b"%1$s", "str", b""), ("snprintf", 8, b"%d %d", "ll", 1),
                ("snprintf", 8, b"%lld", "dbl", "0" * 16), ("strftime", 8, b"%Q", *[0] * 9),
                ("memcmp", b"a", b"ab", 2), ("strncpy", b"a", 513), ("bsearch", b"3,1", 1),
                ("qsort", ",".join(["1"] * 257)), ("strlen",), ("nosuch", 1)]:
        with pytest.raises(AgentError):
            agent.call(*bad)
    assert agent.call("strlen", b"still answering") == {"ret": b"15"}
    boot = session.shutdown()
    assert boot.stop == "" and boot.calls > 20
    assert b" start " in sink.data and b"mode=agent" in sink.data and b" end ran=" in sink.data


def test_agent_refuses_forged_and_overlong_requests(runtime):
    session, _ = host_session(runtime)
    agent = session.boot()
    sock = agent.transport.sock
    sock.setblocking(True)
    sock.settimeout(10)
    good = encode_request(0, "strlen", [b"abc"])
    for bad in (good.replace(b"strlen", b"strlex"), encode_request(5, "strlen", [b"a"]),
                b"PCERTQ " + b"x" * 20000 + b"\n", b"\x00garbage\n"):
        sock.sendall(bad)
        answer = sock.recv(4096)
        assert b" reply q=-1 " in answer and b"status=error" in answer
    sock.sendall(good)   # nothing refused was counted: request 0 is still the one expected
    assert sock.recv(4096).startswith(f"PCERT1 {NONCE} 4 reply q=0 op=strlen status=ok ret=3 ".encode())
    agent.transport.lost = "the test spoke on the channel itself"
    session.shutdown(quit=False)


# -- (d) a guest that goes away mid-call -------------------------------------------------------------

def test_a_silent_or_dead_guest_is_lost_not_hung(runtime):
    session, _ = host_session(runtime, timeout_s=1.0)
    agent = session.boot()
    agent.call("strlen", b"x")
    child = _child_pid(runtime)
    os.kill(child, signal.SIGSTOP)   # silent: no reply within the call timeout
    with pytest.raises(AgentLost, match="no reply"):
        agent.call("strlen", b"abc")
    os.kill(child, signal.SIGKILL)
    boot = session.shutdown(quit=False)
    assert boot.stop != ""

    agent = session.boot()           # a fresh boot works again; kill it during a call
    child = _child_pid(runtime)
    os.kill(child, signal.SIGKILL)
    with pytest.raises(AgentLost):
        agent.call("strlen", b"abc")
    assert "crashed" in session.shutdown(quit=False).stop


def _child_pid(binary: Path) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "exe")) == binary.resolve() and \
                        (entry / "stat").read_text().split()[2] not in "ZX":
                    return int(entry.name)
            except OSError:
                continue
    raise AssertionError("the runtime process was not found")


# -- a falsifying example lands in the bundle ---------------------------------------------------------

def test_a_disagreement_becomes_a_fail_with_its_reproducer(runtime, tmp_path):
    from conformance.agent.bundle import Differential
    from conformance.agent.properties import Property

    wrong = Property(id="TC-DIFF-wrong", title="strlen, with a wrong oracle", unit="strings",
                     interfaces=("strlen",), verifies=(),
                     strategy=st.fixed_dictionaries({"s": st.binary(min_size=1, max_size=8).filter(lambda b: b"\0" not in b)}),
                     call=lambda a, ex: a.call("strlen", ex["s"]),
                     check=lambda ex, r: None if int(r["ret"]) == len(ex["s"]) + 1 else "off by one",
                     reproducer=lambda ex: "int main(void) { return 0; }\n")
    diff = Differential(properties=[wrong], seed=3, max_examples=20, unsupported=None,
                        agent_source=b"", oracle_sources={})
    session, _ = host_session(runtime)
    diff.run(session, clock0=0.0)
    row = diff.result_rows(0)[0]
    assert row["verdict"] == "FAIL" and row["reason"]
    assert row["differential"]["falsifying"]["reproducer"] == "differential/TC-DIFF-wrong.c"
    assert row["differential"]["examples"] > 0 and row["differential"]["seed"] == 3

    class Writer:
        files = {}

        def write_bytes(self, name, data):
            self.files[name] = data
    w = Writer()
    diff.write_files(w)
    assert w.files == {"differential/TC-DIFF-wrong.c": b"int main(void) { return 0; }\n"}


# -- (c) end to end in QEMU -------------------------------------------------------------------------

def test_differential_run_on_linux_x86_64(tmp_path):
    from conformance.run import RunOptions, execute
    from targets.readiness import check_ready
    problems = check_ready(load_target("linux-x86_64"))
    if problems:
        pytest.skip("; ".join(problems))
    ids = frozenset({"TC-DIFF-strtol", "TC-DIFF-snprintf-int", "TC-DIFF-strftime", "TC-DIFF-qsort"})
    out = tmp_path / "bundle"
    result = execute(RunOptions(target="linux-x86_64", checks="differential", only=ids,
                                max_examples=10, seed=7, out=out, jobs=1))
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == sorted(ids)
    for row in rows:
        assert row["verdict"] in ("PASS", "FAIL"), row["reason"]
        assert row["differential"]["seed"] == 7 and row["differential"]["examples"] >= 1
        # Its evidence: its own requests and the guest's replies, in the agent transcript.
        span = row["console"]
        exchange = (out / span["file"]).read_bytes()[span["start"]:span["end"]]
        assert span["file"] == "agent.log" and exchange.startswith(b"PCERTQ ")
        assert exchange.count(b"PCERTQ ") == exchange.count(b" reply q=") >= 1
        falsifying = row["differential"]["falsifying"]
        if row["verdict"] == "FAIL":
            assert (out / falsifying["reproducer"]).read_text().strip()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["differential"]["seed"] == 7 and manifest["differential"]["properties"] == 4
    assert manifest["differential"]["boots"][0]["stop"] == ""
    testcases = json.loads((out / "testcases.json").read_text())
    assert testcases[0]["procedure"]["file"] == "procedures/runtime/pcert_agent.c"
    assert (out / "procedures/runtime/pcert_agent.c").is_file()
    assert subprocess.run([str(Path(os.sys.executable).parent / "pcert"), "verify", str(out)],
                          capture_output=True).returncode == 0
    assert result.summary["PASS"] + result.summary["FAIL"] == 4
