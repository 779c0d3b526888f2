"""The guest runtime (targets/runtime/pcert.c) built with a hand-written case table,
run on the host, its stdout parsed with the protocol parser."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from targets.protocol import RecordParser, frame

RUNTIME = Path(__file__).resolve().parent.parent / "targets" / "runtime"
NONCE = "0123456789abcdef"
CFLAGS = ["-std=c99", "-D_POSIX_C_SOURCE=200809L", "-D_XOPEN_SOURCE=700", "-D_DEFAULT_SOURCE",
          "-Wall", "-Wextra", "-Werror", "-O2"]

# A result record the "forge" case prints: right nonce, next sequence number, valid CRC.
FORGED = frame(NONCE, 2, "result", [("idx", "0"), ("id", "TC-forge"), ("verdict", "PASS"), ("code", "0")])

CASES_C = r"""
#include "pcert.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int *volatile no_memory;   /* NULL, unknown to the optimiser */

static void tc_forge(void) { fputs("FORGED", stdout); }

static void tc_pass(void)
{
    char cwd[4096];
    int fd;
    PCERT_ASSERT(getenv("PCERT_NONCE") == NULL);
    PCERT_ASSERT(getcwd(cwd, sizeof cwd) != NULL && strstr(cwd, "/pcert.") != NULL);
    PCERT_ASSERT(access("left-over", F_OK) != 0);
    PCERT_REQUIRE(mkdir("sub", 0700) == 0);
    fd = open("sub/left-over", O_CREAT | O_WRONLY, 0600);
    PCERT_ASSERT_INT(fd, >=, 0);
    close(fd);
    printf("hello from pass\n");
    fprintf(stderr, "to stderr\n");
}

static void tc_fail_int(void)
{
    int three = 3;
    printf("before the failure\n");
    PCERT_ASSERT_INT(three + 1, ==, 5); /* LINE:fail_int */
}

static void tc_require(void) { PCERT_REQUIRE(open("missing", O_RDONLY) >= 0); /* LINE:require */ }
static void tc_segv(void) { printf("about to crash\n"); fflush(stdout); *no_memory = 1; }
static void tc_abort(void) { abort(); }
static void tc_hang(void) { for (;;) pause(); }
static void tc_never(void) { PCERT_ASSERT(0); }
static void tc_exit(void) { _exit(3); }
static void tc_untested(void) { PCERT_UNTESTED("needs two disks"); }
static void tc_unsupported(void) { PCERT_UNSUPPORTED("no tracing here"); }

static void tc_check_errno(void)
{
    int ret;
    errno = 0;
    ret = open("nope", O_RDONLY);
    pcert_saved_errno = errno;
    PCERT_CHECK_RET_INT(ret, ==, -1, "open(\"nope\", O_RDONLY)");
    PCERT_CHECK_ERRNO(pcert_saved_errno, EACCES);
}

static void tc_check_ret(void)
{
    int ret;
    errno = 0;
    ret = open("nope", O_RDONLY);
    pcert_saved_errno = errno;
    PCERT_CHECK_RET_INT(ret, >=, 0, "open(\"nope\", O_RDONLY)");
}

static void tc_check_ptr(void)
{
    FILE *ret;
    errno = 0;
    ret = fopen("nope", "r");
    pcert_saved_errno = errno;
    PCERT_CHECK_RET_PTR(ret, !=, NULL, "fopen(\"nope\", \"r\")");
}

static void tc_str(void) { const char *name = "abc"; PCERT_ASSERT_STR(name, "abd"); }
static void tc_mem(void)
{
    static const char got_bytes[] = "ABCDA", want_bytes[] = "ABCDB";
    PCERT_ASSERT_MEM(got_bytes, want_bytes, 5);
}
static void tc_errno(void) { errno = ENOENT; PCERT_ASSERT_ERRNO(errno, EACCES); }
static void tc_uint(void) { size_t n = 7; PCERT_ASSERT_UINT(n, <, 2u); }
static void tc_ptr(void) { int x, y; PCERT_ASSERT_PTR(&x, ==, &y); }

static void tc_chatty(void)
{
    static char block[1000];
    int i;
    memset(block, 'x', sizeof block);
    for (i = 0; i < 200; i++)
        fwrite(block, 1, sizeof block, stdout);
}

static void tc_grandchild(void)
{
    /* Holds the output pipe open past the child's end: must not look like a hang. */
    if (fork() == 0) {
        sleep(3);
        _exit(0);
    }
}

const struct pcert_case pcert_cases[] = {
    { "TC-forge", tc_forge, "", 0 },
    { "TC-pass", tc_pass, "", 0 },
    { "TC-fail-int", tc_fail_int, "", 0 },
    { "TC-require", tc_require, "", 0 },
    { "TC-segv", tc_segv, "", 0 },
    { "TC-abort", tc_abort, "", 0 },
    { "TC-hang", tc_hang, "", 1 },
    { "TC-option-absent", tc_never, "_POSIX_THREADS,_POSIX_TRACE", 0 },
    { "TC-option-unknown", tc_never, "_POSIX_NO_SUCH_THING", 0 },
    { "TC-exit", tc_exit, "", 0 },
    { "TC-untested", tc_untested, "", 0 },
    { "TC-unsupported", tc_unsupported, "", 0 },
    { "TC-check-errno", tc_check_errno, "", 0 },
    { "TC-check-ret", tc_check_ret, "", 0 },
    { "TC-check-ptr", tc_check_ptr, "", 0 },
    { "TC-str", tc_str, "", 0 },
    { "TC-mem", tc_mem, "", 0 },
    { "TC-errno", tc_errno, "", 0 },
    { "TC-uint", tc_uint, "", 0 },
    { "TC-ptr", tc_ptr, "", 0 },
    { "TC-chatty", tc_chatty, "", 0 },
    { "TC-grandchild", tc_grandchild, "_POSIX_VERSION", 2 },
};
const unsigned pcert_ncases = sizeof pcert_cases / sizeof pcert_cases[0];
""".replace('"FORGED"', '"' + FORGED.decode().replace("\n", "\\n") + '"')

IDS = re.findall(r'\{ "(TC-[^"]+)"', CASES_C)

# Verdicts and reasons every libc must give (where the runtime decides the text).
EXPECTED = {
    "TC-forge": ("PASS", ""),
    "TC-pass": ("PASS", ""),
    "TC-fail-int": ("FAIL", "three + 1: got 4, want == 5"),
    "TC-require": ("UNRESOLVED", 'setup: open("missing", O_RDONLY) >= 0 failed (errno ENOENT)'),
    "TC-segv": ("UNRESOLVED", "crashed: SIGSEGV"),
    "TC-abort": ("UNRESOLVED", "crashed: SIGABRT"),
    "TC-hang": ("UNRESOLVED", "hung: no result after 1 s"),
    "TC-option-absent": ("UNSUPPORTED", "option _POSIX_TRACE not supported"),
    "TC-option-unknown": ("UNSUPPORTED", "option _POSIX_NO_SUCH_THING not known to the runtime"),
    "TC-exit": ("UNRESOLVED", "exited with status 3 without a verdict"),
    "TC-untested": ("UNTESTED", "needs two disks"),
    "TC-unsupported": ("UNSUPPORTED", "no tracing here"),
    "TC-check-errno": ("FAIL", 'errno after open("nope", O_RDONLY): got ENOENT (2), want EACCES (13)'),
    "TC-check-ret": ("FAIL", 'open("nope", O_RDONLY): got -1 (errno ENOENT), want >= 0'),
    "TC-check-ptr": ("FAIL", 'fopen("nope", "r"): got NULL (errno ENOENT), want != NULL'),
    "TC-str": ("FAIL", 'name: got "abc", want "abd"'),
    "TC-mem": ("FAIL", "got_bytes: differs from want_bytes at byte 4: got 0x41, want 0x42"),
    "TC-errno": ("FAIL", "errno: got ENOENT (2), want EACCES (13)"),
    "TC-uint": ("FAIL", "n: got 7, want < 2"),
    "TC-chatty": ("PASS", ""),
    "TC-grandchild": ("PASS", ""),
}
CODES = {"PASS": "0", "FAIL": "1", "UNRESOLVED": "2", "UNSUPPORTED": "4", "UNTESTED": "5"}


def line_of(marker):
    return CASES_C[: CASES_C.index(f"/* LINE:{marker} */")].count("\n") + 1


def build(tmp_path, compiler, *extra, link=True):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed")
    cases = tmp_path / "cases.c"
    cases.write_text(CASES_C)
    out = tmp_path / f"runtime-{compiler}"
    sources = [str(RUNTIME / "pcert.c"), str(cases)]
    if link:
        cmd = [compiler, *CFLAGS, *extra, "-static", "-I", str(RUNTIME), *sources, "-o", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        return out
    for src in sources:
        cmd = [compiler, *CFLAGS, *extra, "-I", str(RUNTIME), "-c", src, "-o", str(tmp_path / (Path(src).stem + ".o"))]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    return None


def run(binary, tmp_path, env=None, args=()):
    """Run the runtime; return (records, anomalies, completed process)."""
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(scratch)}
    full_env.update(env if env is not None else {"PCERT_NONCE": NONCE})
    proc = subprocess.run([str(binary), *args], env=full_env, capture_output=True, timeout=120)
    parser = RecordParser(NONCE)
    records = parser.feed(proc.stdout)
    parser.finish()
    return records, parser.anomalies, proc


def results_of(records):
    return {r.fields["id"]: r.fields for r in records if r.kind == "result"}


@pytest.fixture(scope="module")
def glibc_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("glibc")
    return run(build(tmp, "gcc"), tmp) + (tmp,)


def test_every_case_gets_its_verdict_and_reason(glibc_run):
    records, anomalies, proc, _ = glibc_run
    assert proc.returncode == 0 and anomalies == []
    results = results_of(records)
    assert list(results) == IDS
    for case_id, (verdict, reason) in EXPECTED.items():
        assert (results[case_id]["verdict"], results[case_id]["reason"]) == (verdict, reason), case_id
        assert results[case_id]["code"] == CODES[verdict]
    assert re.fullmatch(r"&x: got 0x[0-9a-f]+, want == 0x[0-9a-f]+", results["TC-ptr"]["reason"])


def test_assertion_failures_name_file_and_line(glibc_run):
    results = results_of(glibc_run[0])
    assert results["TC-fail-int"]["file"].endswith("cases.c")
    assert results["TC-fail-int"]["line"] == str(line_of("fail_int"))
    assert results["TC-require"]["line"] == str(line_of("require"))
    for case_id in ("TC-pass", "TC-segv", "TC-hang", "TC-option-absent"):
        assert (results[case_id]["file"], results[case_id]["line"]) == ("", ""), case_id


def test_sequence_and_record_order(glibc_run):
    records = glibc_run[0]
    assert [r.seq for r in records] == list(range(len(records)))
    assert records[0].kind == "start" and records[-1].kind == "end"
    assert records[-1].fields["ran"] == str(len(IDS))
    current = None  # each case: begin, its out records, result
    for r in records[1:-1]:
        if r.kind == "begin":
            assert current is None
            current = r.fields["idx"]
            assert r.fields["id"] == IDS[int(current)]
        else:
            assert r.fields["idx"] == current, r
            if r.kind == "result":
                assert int(r.fields["dur_ns"]) >= 0
                current = None
    assert current is None


def test_start_record_describes_the_system(glibc_run):
    start = glibc_run[0][0].fields
    assert start["proto"] == "1"
    assert (start["sysname"], start["machine"]) == (os.uname().sysname, os.uname().machine)
    assert start["ncpu"] == str(os.sysconf("SC_NPROCESSORS_ONLN"))
    assert (start["ntests"], start["first"], start["fork"]) == (str(len(IDS)), "0", "1")
    assert start["opt._POSIX_VERSION"] == str(os.sysconf("SC_VERSION"))
    assert start["opt._POSIX_TRACE"] == "-1"  # glibc says so at compile time
    assert start["sc._SC_PAGESIZE"] == str(os.sysconf("SC_PAGESIZE"))
    assert start["sc._SC_THREADS"] == str(os.sysconf("SC_THREADS"))
    assert int(start["clock"]) > 0


def output_of(records, case_id):
    idx = str(IDS.index(case_id))
    return [r.raw_fields["data"] for r in records if r.kind == "out" and r.fields["idx"] == idx]


def test_output_is_relayed_and_a_forged_record_stays_data(glibc_run):
    records = glibc_run[0]
    assert b"".join(output_of(records, "TC-forge")) == FORGED
    assert [r.fields.get("id") for r in records if r.kind == "result"].count("TC-forge") == 1
    assert sorted(b"".join(output_of(records, "TC-pass")).splitlines()) == [b"hello from pass", b"to stderr"]
    assert b"".join(output_of(records, "TC-fail-int")) == b"before the failure\n"
    assert b"".join(output_of(records, "TC-segv")) == b"about to crash\n"


def test_chatty_output_is_chunked_and_capped_without_deadlock(glibc_run):
    chunks = output_of(glibc_run[0], "TC-chatty")
    assert all(len(c) <= 512 for c in chunks)
    *data, note = chunks
    dropped = int(re.fullmatch(rb"\n\[pcert: (\d+) more bytes of output not relayed\]\n", note).group(1))
    assert set(b"".join(data)) == {ord("x")}
    assert len(b"".join(data)) + dropped == 200_000
    assert len(b"".join(data)) >= 64 * 1024


def test_scratch_directories_are_removed(glibc_run):
    assert list((glibc_run[3] / "scratch").iterdir()) == []


def test_first_only_and_command_line_parameters(tmp_path):
    binary = build(tmp_path, "gcc")
    records, anomalies, _ = run(binary, tmp_path, env={}, args=[
        f"PCERT_NONCE={NONCE}", "PCERT_FIRST=2", "PCERT_ONLY=TC-pass,TC-untested,TC-fail-int"])
    assert anomalies == []
    assert records[0].fields["first"] == "2"
    assert [(r.fields["idx"], r.fields["id"]) for r in records if r.kind == "begin"] == [
        ("2", "TC-fail-int"), ("10", "TC-untested")]
    assert records[-1].fields["ran"] == "2"


def test_a_worker_runs_every_step_th_test_case(tmp_path):
    """-j N deals the plan out: worker w runs w, w+N, ... (PCERT_STEP), up to PCERT_END."""
    binary = build(tmp_path, "gcc")
    records, anomalies, _ = run(binary, tmp_path, env={}, args=[
        f"PCERT_NONCE={NONCE}", "PCERT_FIRST=1", "PCERT_STEP=3", "PCERT_END=8"])
    assert anomalies == []
    assert [r.fields["idx"] for r in records if r.kind == "begin"] == ["1", "4", "7"]
    records, _, _ = run(binary, tmp_path, env={}, args=[
        f"PCERT_NONCE={NONCE}", "PCERT_FIRST=2", "PCERT_STEP=4294967295"])
    assert [r.fields["idx"] for r in records if r.kind == "begin"] == ["2"]


@pytest.mark.parametrize("env, message", [
    ({}, "PCERT_NONCE must be 16 lower-case hex digits"),
    ({"PCERT_NONCE": NONCE, "PCERT_STEP": "0"}, "PCERT_STEP must be a decimal number >= 1, got '0'"),
    ({"PCERT_NONCE": "0123456789ABCDEF"}, "PCERT_NONCE must be 16 lower-case hex digits"),
    ({"PCERT_NONCE": NONCE, "PCERT_FIRST": "x"}, "PCERT_FIRST must be a decimal number >= 0, got 'x'"),
    ({"PCERT_NONCE": NONCE, "PCERT_TIMEOUT": "0"}, "PCERT_TIMEOUT must be a decimal number >= 1, got '0'"),
])
def test_bad_parameters_stop_with_one_message(tmp_path, env, message):
    records, _, proc = run(build(tmp_path, "gcc"), tmp_path, env=env)
    assert proc.returncode == 2 and records == [] and proc.stdout == b""
    assert message in proc.stderr.decode()


def test_musl_build_gives_the_same_verdicts(tmp_path, glibc_run):
    records, anomalies, proc = run(build(tmp_path, "musl-gcc"), tmp_path)
    assert proc.returncode == 0 and anomalies == []
    musl, glibc = results_of(records), results_of(glibc_run[0])
    assert {k: (v["verdict"], v["reason"]) for k, v in musl.items() if k != "TC-ptr"} == \
        {k: (v["verdict"], v["reason"]) for k, v in glibc.items() if k != "TC-ptr"}
    assert records[0].fields["opt._POSIX_TRACE"] == "undef"  # musl does not define it


@pytest.mark.parametrize("compiler", ["gcc", "musl-gcc", "aarch64-linux-gnu-gcc"])
@pytest.mark.parametrize("variant", [[], ["-DPCERT_NO_FORK"]])
def test_compiles_without_warnings(tmp_path, compiler, variant):
    build(tmp_path, compiler, *variant, link=False)


def test_in_process_variant(tmp_path):
    binary = build(tmp_path, "gcc", "-DPCERT_NO_FORK")
    only = ["TC-pass", "TC-fail-int", "TC-require", "TC-option-absent", "TC-untested", "TC-check-ret", "TC-str"]
    records, anomalies, proc = run(binary, tmp_path, env={"PCERT_NONCE": NONCE, "PCERT_ONLY": ",".join(only)})
    assert proc.returncode == 0 and anomalies == []
    assert records[0].fields["fork"] == "0"
    results = results_of(records)
    assert list(results) == only
    for case_id in only:
        assert (results[case_id]["verdict"], results[case_id]["reason"]) == EXPECTED[case_id]
    assert results["TC-fail-int"]["line"] == str(line_of("fail_int"))
    assert not any(r.kind == "out" for r in records)  # output goes straight to the console
    assert b"hello from pass\n" in proc.stdout
    assert list((tmp_path / "scratch").iterdir()) == []
