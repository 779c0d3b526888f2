"""PCERT_PARAMS (docs/protocol.md): the runtime prints a `ready` record under its boot's nonce and
waits for its run's parameters, one PCERTP line, as a guest restored from a saved VM snapshot
does. Run natively on the host; the channel is a socketpair whose guest end the runtime inherits
(fd:N, as the host target's agent channel)."""

import os
import select
import shutil
import socket
import subprocess
import time
import zlib

import pytest

from conformance.agent.transport import Transport, encode_request
from targets import protocol
from targets.protocol import RecordParser
from test_runtime import CFLAGS, NONCE as RUN, RUNTIME

BOOT = "b007b007b007b007"   # the snapshot boot's nonce; RUN is the restored copy's
CASES_C = r"""
#include "pcert.h"
#include <fcntl.h>
#include <stdlib.h>

static void tc_a(void) { }

static void tc_env(void)
{
    PCERT_ASSERT(getenv("PCERT_PARAMS") == NULL);
    PCERT_ASSERT(getenv("PCERT_NONCE") == NULL);
    PCERT_ASSERT_STR(getenv("PCERT_EXTRA"), "a=b!~");
    PCERT_ASSERT_STR(getenv("PCERT_EMPTY"), "");
}

/* The host's channel stays with the runtime: a test case cannot write to it. */
static void tc_channel(void)
{
    const char *fd = getenv("PCERT_CHANNEL_FD");
    PCERT_ASSERT(fd != NULL);
    PCERT_ASSERT_INT(fcntl(atoi(fd), F_GETFD), ==, -1);
}

const struct pcert_case pcert_cases[] = {
    { "TC-a", tc_a, "", 0 },
    { "TC-env", tc_env, "", 0 },
    { "TC-channel", tc_channel, "", 0 },
    { "TC-d", tc_a, "", 0 },
};
const unsigned pcert_ncases = sizeof pcert_cases / sizeof pcert_cases[0];
"""
MINIMAL = ["-DPCERT_MINIMAL", '-DPCERT_SYSNAME="test"', '-DPCERT_RELEASE="0"', '-DPCERT_MACHINE="test"']


def _build(tmp, *extra, agent=True, compiler="gcc"):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed")
    (tmp / "cases.c").write_text(CASES_C)
    out = tmp / "pcert-runtime"
    sources = [RUNTIME / "pcert.c", *([RUNTIME / "pcert_agent.c"] if agent else []), tmp / "cases.c"]
    subprocess.run([compiler, *CFLAGS, *extra, "-I", str(RUNTIME), *map(str, sources), "-o", str(out)],
                   check=True, capture_output=True, text=True)
    return out


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("params"))


@pytest.fixture(autouse=True)
def ready_is_a_kind(monkeypatch):
    """The console parser knows `ready` once the host side of snapshots is in; until then the
    tests teach it, so that they check the record with the parser all the same."""
    if "ready" not in protocol.KINDS:
        monkeypatch.setattr(protocol, "KINDS", protocol.KINDS | {"ready"})


def pcertp(*parts, crc=None) -> bytes:
    """A PCERTP line of these parts (str or bytes), with its CRC unless one is given."""
    body = b" ".join([b"PCERTP", *(p.encode() if isinstance(p, str) else p for p in parts)])
    return body + b" %08x\n" % (zlib.crc32(body) if crc is None else crc)


class Guest:
    """The runtime waiting for its parameters on fd:N; `host` is our end of the channel."""

    def __init__(self, binary, tmp_path, env=None, args=(), channel=None):
        """env None: the boot's nonce and PCERT_PARAMS=channel (default fd:N); "{fd}" in an
        argument stands for N."""
        scratch = tmp_path / "scratch"
        scratch.mkdir(exist_ok=True)
        self.host, theirs = socket.socketpair()
        self.fd = theirs.fileno()   # pass_fds keeps the number
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(scratch)}
        if env is None:
            env = {"PCERT_NONCE": BOOT, "PCERT_PARAMS": channel or f"fd:{self.fd}"}
        full_env.update(env)
        args = [a.format(fd=self.fd) for a in args]
        try:
            self.proc = subprocess.Popen([str(binary), *args], env=full_env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         pass_fds=(self.fd,))
        finally:
            theirs.close()
        self.out = bytearray()
        self.answered = 0   # idle records answered

    def answer(self, *parts) -> None:
        """One more line, for the runtime's latest `idle`."""
        self.answered += 1
        self.host.sendall(pcertp(*parts))

    def read_until(self, marker: bytes, timeout_s=10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while marker not in self.out:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no {marker!r} on stdout within {timeout_s} s: {bytes(self.out)!r}"
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            assert chunk, f"stdout ended before {marker!r}: {bytes(self.out)!r}"
            self.out += chunk

    def wait_ready(self) -> None:
        self.read_until(b" ready ")
        self.read_until(b"\n")

    def finish(self, timeout_s=60.0):
        """(exit status, stdout, stderr) once the runtime has ended. A runtime that has run its
        range and waits for more (`idle`) is told, as the host does, that there is none."""
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                ready, _, _ = select.select([self.proc.stdout], [], [],
                                            max(0.0, deadline - time.monotonic()))
                assert ready, f"the runtime did not end within {timeout_s} s: {bytes(self.out)!r}"
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    break
                self.out += chunk
                if self.out.count(b" idle clock=") > self.answered:
                    self.answer(f"PCERT_NONCE={RUN}")
            rest, err = self.proc.communicate(timeout=timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.host.close()
        return self.proc.returncode, bytes(self.out) + rest, err.decode()


def split(out: bytes):
    """The ready record (boot's nonce, first on stdout) and the run's records after it."""
    boot = RecordParser(BOOT)
    ready = boot.feed(out)   # the run's records are anomalies to it (another nonce)
    assert [(r.kind, r.seq) for r in ready] == [("ready", 0)], out[:300]
    assert ready[0].start == 0 and list(ready[0].fields) == ["clock"] and int(ready[0].fields["clock"]) > 0
    run = RecordParser(RUN)
    records = run.feed(out[ready[0].end:])
    run.finish()
    assert run.anomalies == []
    return ready[0], records


def test_the_run_gets_its_own_nonce_and_range(runtime, tmp_path):
    g = Guest(runtime, tmp_path)
    g.wait_ready()
    time.sleep(0.2)
    assert g.proc.poll() is None   # blocked on the channel, the ready record already out
    g.host.sendall(pcertp(f"PCERT_NONCE={RUN}", "PCERT_FIRST=1", "PCERT_END=3", "PCERT_EXTRA=a=b!~",
                          "PCERT_EMPTY=", "PCERT_ONLY=", f"PCERT_CHANNEL_FD={g.fd}"))
    status, out, err = g.finish()
    assert (status, err) == (0, "")
    ready, records = split(out)
    assert [r.kind for r in records] == ["start", "begin", "result", "begin", "result", "end"]
    assert [r.seq for r in records] == list(range(6))   # numbered from 0 again, under RUN
    assert records[0].fields["first"] == "1" and int(records[0].fields["clock"]) >= int(ready.fields["clock"])
    assert "mode" not in records[0].fields
    results = {r.fields["id"]: (r.fields["verdict"], r.fields["reason"])
               for r in records if r.kind == "result"}
    assert results == {"TC-env": ("PASS", ""), "TC-channel": ("PASS", "")}
    assert records[-1].fields["ran"] == "2"


def test_the_snapshot_boots_arguments_are_stale(runtime, tmp_path):
    """Everything on the command line; once the line is in, only the environment counts, or the
    command line's PCERT_NONCE, PCERT_FIRST and PCERT_ONLY would win."""
    g = Guest(runtime, tmp_path, env={}, args=["PCERT_PARAMS=fd:{fd}", f"PCERT_NONCE={BOOT}",
                                               "PCERT_FIRST=0", "PCERT_ONLY=TC-a"])
    g.wait_ready()
    g.host.sendall(pcertp(f"PCERT_NONCE={RUN}", "PCERT_FIRST=3"))
    status, out, err = g.finish()
    assert (status, err) == (0, "")
    _, records = split(out)
    assert records[0].fields["first"] == "3"
    assert [r.fields["id"] for r in records if r.kind == "result"] == ["TC-d"]


def test_an_empty_PCERT_PARAMS_is_no_request(runtime, tmp_path):
    status, out, err = Guest(runtime, tmp_path, env={"PCERT_NONCE": RUN, "PCERT_PARAMS": "",
                                                     "PCERT_ONLY": "TC-a"}).finish()
    assert (status, err) == (0, "")
    parser = RecordParser(RUN)
    assert [r.kind for r in parser.feed(out)] == ["start", "begin", "result", "end"]
    assert parser.anomalies == []


def test_agent_mode_through_the_parameters(runtime, tmp_path):
    g = Guest(runtime, tmp_path)
    g.wait_ready()
    g.host.sendall(pcertp(f"PCERT_NONCE={RUN}", "PCERT_MODE=agent", f"PCERT_AGENT=fd:{g.fd}"))
    g.read_until(b" start ")   # only then may the host speak (docs/protocol.md)
    agent = Transport(g.host, RUN, timeout_s=10)
    assert agent.call("strlen", b"hello") == {"ret": b"5"}
    assert agent.quit()
    status, out, err = g.finish()
    assert (status, err) == (0, "")
    _, records = split(out)
    assert [r.kind for r in records] == ["start", "end"]
    assert records[0].fields["mode"] == "agent" and records[-1].fields["ran"] == "2"


def test_nothing_after_the_line_end_is_taken(runtime, tmp_path):
    """A request sent with the line (which a host does not do) still reaches the agent."""
    g = Guest(runtime, tmp_path)
    g.wait_ready()
    g.host.sendall(pcertp(f"PCERT_NONCE={RUN}", "PCERT_MODE=agent", f"PCERT_AGENT=fd:{g.fd}")
                   + encode_request(0, "strlen", [b"abc"]))
    g.host.settimeout(10)
    answer = g.host.recv(4096)
    assert answer.startswith(f"PCERT1 {RUN} 0 reply q=0 op=strlen status=ok ret=3 ".encode())
    g.host.sendall(encode_request(1, "quit", []))
    status, out, _ = g.finish()
    assert status == 0 and [r.kind for r in split(out)[1]] == ["start", "end"]


def test_the_hosts_encoder_is_understood(runtime, tmp_path):
    encode = getattr(protocol, "encode_params", None)
    if encode is None:
        pytest.skip("targets.protocol has no encode_params yet")
    g = Guest(runtime, tmp_path)
    g.wait_ready()
    g.host.sendall(encode({"PCERT_NONCE": RUN, "PCERT_ONLY": "TC-a,TC-d", "PCERT_TIMEOUT": "5"}))
    status, out, _ = g.finish()
    assert status == 0
    assert [r.fields["id"] for r in split(out)[1] if r.kind == "result"] == ["TC-a", "TC-d"]


def test_limits_are_inclusive(runtime, tmp_path):
    """32 pairs and a line of 4096 bytes are accepted."""
    pairs = [f"PCERT_NONCE={RUN}", "PCERT_ONLY=TC-a"] + [f"PCERT_P{i}=x" for i in range(30)]
    long_line = pcertp(f"PCERT_NONCE={RUN}", "PCERT_ONLY=TC-a", "PCERT_PAD=")
    long_line = pcertp(f"PCERT_NONCE={RUN}", "PCERT_ONLY=TC-a", "PCERT_PAD=" + "x" * (4097 - len(long_line)))
    assert len(long_line) == 4097
    for line in (pcertp(*pairs), long_line):
        g = Guest(runtime, tmp_path)
        g.wait_ready()
        g.host.sendall(line)
        status, out, err = g.finish()
        assert (status, err) == (0, ""), line[:80]
        assert [r.fields["id"] for r in split(out)[1] if r.kind == "result"] == ["TC-a"]


GOOD = f"PCERT_NONCE={RUN}"
REFUSED = {
    "bad CRC": (pcertp(GOOD, crc=zlib.crc32(b"PCERTP " + GOOD.encode()) ^ 1), "CRC mismatch"),
    "two spaces": (pcertp(GOOD, "", "PCERT_FIRST=1"), "an empty part (two spaces)"),
    "a trailing space": (pcertp(GOOD, ""), "an empty part (two spaces)"),
    "not PCERT_": (pcertp(GOOD, "HOME=/tmp"), "HOME may not be set this way"),
    "PCERT_PARAMS again": (pcertp(GOOD, "PCERT_PARAMS=fd:0"), "PCERT_PARAMS may not be set this way"),
    "not a name": (pcertp(GOOD, "PCERT-X=1"), "'PCERT-X' is not a variable name"),
    "a digit first": (pcertp("9PCERT=1", GOOD), "'9PCERT' is not a variable name"),
    "no =": (pcertp(GOOD, "PCERT_X"), "'PCERT_X' is not NAME=value"),
    "a double quote": (pcertp(GOOD, 'PCERT_X="a"'), "PCERT_X: a value may not hold '\"'"),
    "given twice": (pcertp(GOOD, "PCERT_X=1", "PCERT_X=2"), "PCERT_X given twice"),
    "a byte outside ASCII": (pcertp(GOOD, b"PCERT_X=caf\xc3\xa9"), "a byte outside printable ASCII"),
    "a tab": (pcertp(GOOD, b"PCERT_X=a\tb"), "a byte outside printable ASCII"),
    "a CR before the LF": (pcertp(GOOD)[:-1] + b"\r\n", "a byte outside printable ASCII"),
    "too many pairs": (pcertp(GOOD, *(f"PCERT_P{i}=x" for i in range(32))), "more than 32 parameters"),
    "no PCERT_NONCE": (pcertp("PCERT_FIRST=1"), "no PCERT_NONCE (the run's nonce) among the parameters"),
    "no pairs at all": (pcertp(), "no PCERT_NONCE"),
    "another magic": (pcertp(GOOD).replace(b"PCERTP", b"PCERTQ", 1), "no PCERTP at the start"),
    "no CRC": (b"PCERTP " + GOOD.encode() + b"\n", "no CRC at the end"),
    "an upper-case CRC": (pcertp(GOOD)[:-9] + pcertp(GOOD)[-9:].upper(), "no CRC at the end"),
    "too long": (b"PCERTP " + b"x" * 5000 + b"\n", "line longer than 4096 bytes"),
    "end of input": (b"PCERTP " + GOOD.encode(), "end of input before the end of the line"),
    "nothing at all": (b"", "end of input before the end of the line"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_bad_line_ends_the_boot_before_the_start_record(runtime, tmp_path, case):
    line, why = REFUSED[case]
    g = Guest(runtime, tmp_path)
    g.wait_ready()
    g.host.sendall(line)
    g.host.shutdown(socket.SHUT_WR)   # end of input after it
    status, out, err = g.finish()
    assert status == 2
    assert err.startswith("pcert: PCERT_PARAMS: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert why in err
    ready, records = split(out)
    assert records == [] and out[ready.end:] == b""   # no start record, nothing else


def test_a_bad_run_nonce_is_refused_like_any_nonce(runtime, tmp_path):
    g = Guest(runtime, tmp_path)
    g.wait_ready()
    g.host.sendall(pcertp("PCERT_NONCE=0123456789ABCDEF"))
    status, out, err = g.finish()
    assert status == 2 and "PCERT_NONCE must be 16 lower-case hex digits" in err
    assert split(out)[1] == []


@pytest.mark.parametrize("channel, why", [
    ("fd:999", "pcert: PCERT_PARAMS: fd:999: not an open descriptor"),
    ("fd:x", "pcert: PCERT_PARAMS: fd:x: not an open descriptor"),
    ("/nonexistent/ttyS9", "pcert: PCERT_PARAMS: /nonexistent/ttyS9: cannot open: ENOENT"),
])
def test_a_channel_that_cannot_be_opened(runtime, tmp_path, channel, why):
    status, out, err = Guest(runtime, tmp_path, channel=channel).finish()
    assert (status, out, err) == (2, b"", why + "\n")   # not even the ready record


def test_the_boot_nonce_is_checked_first(runtime, tmp_path):
    g = Guest(runtime, tmp_path, env={"PCERT_PARAMS": "fd:999"})
    status, out, err = g.finish()
    assert (status, out) == (2, b"") and "PCERT_NONCE must be 16 lower-case hex digits" in err


def test_bare_metal_refuses(tmp_path):
    """-DPCERT_MINIMAL: pcert_agent.c is a stub; PCERT_PARAMS is refused, before `ready`."""
    binary = _build(tmp_path, *MINIMAL)
    status, out, err = Guest(binary, tmp_path).finish()
    assert (status, out, err) == (2, b"", "pcert: PCERT_PARAMS: PCERT_PARAMS not available on this target\n")


def test_without_pcert_agent_c_the_stand_ins_refuse(tmp_path):
    binary = _build(tmp_path, agent=False)
    status, out, err = Guest(binary, tmp_path).finish()
    assert (status, out, err) == (2, b"", "pcert: PCERT_PARAMS: PCERT_PARAMS not built into this binary\n")


@pytest.mark.parametrize("compiler", ["gcc", "musl-gcc", "aarch64-linux-gnu-gcc"])
@pytest.mark.parametrize("variant", [[], ["-DPCERT_NO_FORK"], MINIMAL])
def test_compiles_without_warnings(tmp_path, compiler, variant):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed")
    for src in ("pcert.c", "pcert_agent.c"):
        subprocess.run([compiler, *CFLAGS, *variant, "-I", str(RUNTIME), "-c", str(RUNTIME / src),
                        "-o", str(tmp_path / (src + ".o"))], check=True, capture_output=True, text=True)


def with_second_line(runtime, tmp_path, first: list[str], second: bytes):
    """(status, stdout, stderr) of a run given the parameters `first`, then the line `second`.
    Both are sent at once: the first is read up to its \n only, the second waits for the poll
    before the first test case."""
    g = Guest(runtime, tmp_path)
    g.wait_ready()
    g.host.sendall(pcertp(f"PCERT_NONCE={RUN}", *first) + second)
    return g.finish()


def test_a_lower_end_on_the_channel_stops_the_run_early(runtime, tmp_path):
    """Hand-over (conformance/balance.py): between test cases the runtime takes a second line
    with a lower PCERT_END, confirms the end it keeps in a `limit` record, and stops there."""
    status, out, err = with_second_line(runtime, tmp_path, ["PCERT_FIRST=0", "PCERT_END=4"],
                                        pcertp(f"PCERT_NONCE={RUN}", "PCERT_END=2"))
    assert (status, err) == (0, "")
    _, records = split(out)
    assert records[0].fields["limits"] == "1"
    assert [r.kind for r in records] == ["start", "limit", "begin", "result", "begin", "result",
                                         "idle", "end"]
    assert records[1].fields["end"] == "2"
    assert [r.fields["id"] for r in records if r.kind == "result"] == ["TC-a", "TC-env"]


def test_a_lower_end_it_is_past_stops_before_the_next_test_case(runtime, tmp_path):
    status, out, err = with_second_line(runtime, tmp_path, ["PCERT_FIRST=1", "PCERT_END=4"],
                                        pcertp(f"PCERT_NONCE={RUN}", "PCERT_END=0"))
    assert (status, err) == (0, "")
    _, records = split(out)
    assert [(r.kind, r.fields.get("end"), r.fields.get("ran")) for r in records] == \
        [("start", None, None), ("limit", "1", None), ("idle", None, None), ("end", None, "0")]


@pytest.mark.parametrize("line, why", [
    (pcertp("PCERT_NONCE=" + BOOT, "PCERT_END=1"), "not this run's nonce"),
    (pcertp("PCERT_NONCE=" + RUN, "PCERT_END=1", crc=0), "CRC mismatch"),
    (pcertp("PCERT_NONCE=" + RUN, "PCERT_END=1x"), "PCERT_END must be a decimal number, got '1x'"),
])
def test_a_bad_second_line_ends_the_listening_not_the_run(runtime, tmp_path, line, why):
    status, out, err = with_second_line(runtime, tmp_path, ["PCERT_FIRST=0", "PCERT_ONLY=TC-a,TC-d"],
                                        line)
    assert status == 0 and why in err and "no longer listening" in err
    _, records = split(out)
    assert "limit" not in [r.kind for r in records]
    assert [r.fields["id"] for r in records if r.kind == "result"] == ["TC-a", "TC-d"]


def test_a_runtime_waiting_for_more_runs_the_range_it_is_sent(runtime, tmp_path):
    """After its range the runtime says `idle` and waits for one more line: a range there runs
    next in the same run, confirmed in a `more` record (conformance/balance.py, take_live)."""
    g = Guest(runtime, tmp_path)
    g.wait_ready()
    g.host.sendall(pcertp(f"PCERT_NONCE={RUN}", "PCERT_FIRST=0", "PCERT_END=1"))
    g.read_until(b" idle clock=")
    g.answer(f"PCERT_NONCE={RUN}", "PCERT_FIRST=3", "PCERT_END=4", "PCERT_STEP=1")
    status, out, err = g.finish()   # the second idle: nothing more
    assert (status, err) == (0, "")
    _, records = split(out)
    assert [r.kind for r in records] == ["start", "begin", "result", "idle", "more", "begin",
                                         "result", "idle", "end"]
    assert {k: records[4].fields[k] for k in ("first", "end", "step")} == {
        "first": "3", "end": "4", "step": "1"}
    assert [r.fields["id"] for r in records if r.kind == "result"] == ["TC-a", "TC-d"]
    assert records[-1].fields["ran"] == "2"


@pytest.mark.parametrize("answer, why", [
    (["PCERT_NONCE=" + BOOT, "PCERT_FIRST=3", "PCERT_END=4"], "not this run's nonce"),
    (["PCERT_NONCE=" + RUN, "PCERT_FIRST=2", "PCERT_END=2"], "must give a range of the plan"),
    (["PCERT_NONCE=" + RUN, "PCERT_FIRST=3", "PCERT_END=5"], "must give a range of the plan"),
    (["PCERT_NONCE=" + RUN, "PCERT_FIRST=1", "PCERT_END=4", "PCERT_STEP=0"],
     "must give a range of the plan"),
    (["PCERT_NONCE=" + RUN, "PCERT_FIRST=x", "PCERT_END=4"], "must give a range of the plan"),
    (["PCERT_NONCE=" + RUN, "PCERT_FIRST=1"], "must give a range of the plan"),
])
def test_an_answer_that_is_not_a_range_ends_the_run(runtime, tmp_path, answer, why):
    g = Guest(runtime, tmp_path)
    g.wait_ready()
    g.host.sendall(pcertp(f"PCERT_NONCE={RUN}", "PCERT_FIRST=0", "PCERT_END=1"))
    g.read_until(b" idle clock=")
    g.answer(*answer)
    status, out, err = g.finish()
    assert status == 0 and why in err and "no longer listening" in err
    _, records = split(out)
    assert [r.kind for r in records] == ["start", "begin", "result", "idle", "end"]
