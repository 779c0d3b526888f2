"""The Python oracles of the differential checks (conformance/agent/oracles.py), the property
table and the Hypothesis runner.

- Known values worked by hand from the standard's rules.
- Self-consistency properties (the oracles against each other and against datetime).
- `run_property` with test doubles: an agent answering from the oracles (PASS, deterministic
  per seed), one with a planted deviation (FAIL, shrunk, reproducer compiles), one that loses
  the channel (UNRESOLVED, lost).
- Every property against the host's C library through ctypes (tests/libc_agent.py).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conformance.agent import AgentError, AgentLost
from conformance.agent import oracles as o
from conformance.agent.hypo import jsonable, run_property
from conformance.agent.properties import BY_ID, PROPERTIES, show_bytes
from targets.protocol import percent_decode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from libc_agent import LibcAgent  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FAST = settings(max_examples=150, database=None, deadline=None,
                suppress_health_check=list(HealthCheck))


# --------------------------------------------------------------------------- known values

@pytest.mark.parametrize("s, base, value, end, errnos", [
    (b"  -0x1fz", 16, -31, 7, {"0"}),
    (b"0x", 16, 0, 1, {"0"}),                 # no hex digit after 0x: the subject is "0"
    (b"0xg", 0, 0, 1, {"0"}),
    (b"0X1A", 0, 26, 4, {"0"}),
    (b"017", 0, 15, 3, {"0"}),                # base 0, leading 0: octal
    (b"08", 0, 0, 1, {"0"}),                  # 8 is not an octal digit
    (b"\t\n\v\f\r 42", 10, 42, 8, {"0"}),
    (b"\xa042", 10, 0, 0, {"0", "EINVAL"}),   # NBSP is not space in the C locale
    (b"+-1", 10, 0, 0, {"0", "EINVAL"}),
    (b"", 10, 0, 0, {"0", "EINVAL"}),
    (b"zZ", 36, 35 * 36 + 35, 2, {"0"}),
    (b"1010", 2, 10, 4, {"0"}),
    (b"9223372036854775807", 10, 2 ** 63 - 1, 19, {"0"}),
    (b"9223372036854775808", 10, 2 ** 63 - 1, 19, {"ERANGE"}),
    (b"-9223372036854775808", 10, -2 ** 63, 20, {"0"}),
    (b"-9223372036854775809x", 10, -2 ** 63, 20, {"ERANGE"}),
])
def test_strtol_table(s, base, value, end, errnos):
    assert o.strtol(s, base) == o.IntResult(value, end, frozenset(errnos))


@pytest.mark.parametrize("s, base, value, end, errnos", [
    (b"-1", 10, 2 ** 64 - 1, 2, {"0"}),       # negated in unsigned arithmetic
    (b"-18446744073709551615", 10, 1, 21, {"0"}),
    (b"-18446744073709551616", 10, 2 ** 64 - 1, 21, {"ERANGE"}),
    (b"18446744073709551615", 10, 2 ** 64 - 1, 20, {"0"}),
    (b"0x10000000000000000", 0, 2 ** 64 - 1, 19, {"ERANGE"}),
    (b" -0x", 16, 0, 3, {"0"}),
])
def test_strtoul_table(s, base, value, end, errnos):
    assert o.strtoul(s, base) == o.IntResult(value, end, frozenset(errnos))


def test_strtol_unsupported_base_leaves_latitude():
    for base in (1, 37, -1):
        r = o.strtol(b"12", base)
        assert r.end is None and r.errnos == {"0", "EINVAL"}


@pytest.mark.parametrize("s, kind, value, end, errnos", [
    (b" 1.5e3x", "value", 1500.0, 6, {"0"}),
    (b"-0", "value", -0.0, 2, {"0"}),
    (b".5", "value", 0.5, 2, {"0"}),
    (b"5.", "value", 5.0, 2, {"0"}),
    (b"1e", "value", 1.0, 1, {"0"}),          # an exponent needs digits
    (b"1e+", "value", 1.0, 1, {"0"}),
    (b"0x1.8p3", "value", 12.0, 7, {"0"}),
    (b"0X.8", "value", 0.5, 4, {"0"}),
    (b"0x1p", "value", 1.0, 3, {"0"}),
    (b"0x", "value", 0.0, 1, {"0"}),
    (b"0x.p1", "value", 0.0, 1, {"0"}),
    (b"-InFiNiTy", "value", -math.inf, 9, {"0"}),
    (b"infinit", "value", math.inf, 3, {"0"}),
    (b"nan(12_ab)", "nan", None, 10, {"0"}),
    (b"NaN(1 2)", "nan", None, 3, {"0"}),
    (b"nan(", "nan", None, 3, {"0"}),
    (b".", "none", 0.0, 0, {"0", "EINVAL"}),
    (b"e5", "none", 0.0, 0, {"0", "EINVAL"}),
    (b"1e400", "overflow", math.inf, 5, {"ERANGE"}),
    (b"-0x1p1024", "overflow", -math.inf, 9, {"ERANGE"}),
    (b"0x1.fffffffffffff8p1023", "overflow", math.inf, 23, {"ERANGE"}),   # rounds up past MAX
    (b"1.7976931348623158e308", "value", o.DBL_MAX, 22, {"0"}),           # rounds down to MAX
    (b"1e-400", "underflow", 0.0, 6, {"ERANGE"}),
    (b"4.9406564584124654e-324", "underflow", 5e-324, 23, {"0", "ERANGE"}),
    (b"2.2250738585072011e-308", "underflow", 2.225073858507201e-308, 23, {"0", "ERANGE"}),
    (b"2.2250738585072014e-308", "value", o.DBL_MIN, 23, {"0"}),
])
def test_strtod_table(s, kind, value, end, errnos):
    r = o.strtod(s)
    assert (r.kind, r.end, r.errnos) == (kind, end, frozenset(errnos))
    if kind != "nan":
        assert o.double_bits(r.value) == o.double_bits(value)


def test_strtod_underflow_acceptance():
    r = o.strtod(b"-1e-310")
    assert o.strtod_accepts(r, o.double_bits(-1e-310))
    assert o.strtod_accepts(r, o.double_bits(-0.0))
    assert not o.strtod_accepts(r, o.double_bits(1e-310))        # wrong sign
    assert not o.strtod_accepts(r, o.double_bits(-1e-300))       # above DBL_MIN


@pytest.mark.parametrize("fmt, vtype, value, want", [
    (b"%lld", "ll", -42, b"-42"),
    (b"%+lld|% lld|%+ lld", "ll", 5, None),
    (b"%05lld", "ll", -42, b"-0042"),
    (b"%-5lld|", "ll", 42, b"42   |"),
    (b"%-05lld|", "ll", 42, b"42   |"),           # '-' beats '0'
    (b"%08.3lld", "ll", 7, b"     007"),          # a precision disables '0'
    (b"%.0lld", "ll", 0, b""),                    # no digits for 0 at precision 0
    (b"%5.0lld|", "ll", 0, b"     |"),
    (b"%#llo", "ull", 8, b"010"),
    (b"%#llo", "ull", 0, b"0"),
    (b"%#.0llo", "ull", 0, b"0"),                 # '#' keeps one 0
    (b"%#.5llo", "ull", 8, b"00010"),
    (b"%#llx", "ull", 0, b"0"),                   # no 0x for zero
    (b"%#llX", "ull", 255, b"0XFF"),
    (b"%#08llx", "ull", 255, b"0x0000ff"),
    (b"%+llu", "ull", 5, b"5"),                   # '+' only for signed conversions
    (b"%llu", "ull", 2 ** 64 - 1, b"18446744073709551615"),
    (b"%lli", "ll", -2 ** 63, b"-9223372036854775808"),
    (b"%e", "dbl", 1234.5, b"1.234500e+03"),
    (b"%.0e", "dbl", 2.5, b"2e+00"),              # ties to even on the exact value
    (b"%#.0e", "dbl", 2.0, b"2.e+00"),
    (b"%E", "dbl", 1e-300, b"1.000000E-300"),
    (b"%.0f", "dbl", 0.5, b"0"),
    (b"%.0f", "dbl", 1.5, b"2"),
    (b"%#.0f", "dbl", 1.0, b"1."),
    (b"%f", "dbl", -0.0, b"-0.000000"),
    (b"%+.2f", "dbl", 0.125, b"+0.12"),
    (b"%010.2f", "dbl", -1.5, b"-000001.50"),
    (b"%g", "dbl", 100000.0, b"100000"),
    (b"%g", "dbl", 1000000.0, b"1e+06"),
    (b"%g", "dbl", 0.0001, b"0.0001"),
    (b"%g", "dbl", 0.00001, b"1e-05"),
    (b"%.0g", "dbl", 123.0, b"1e+02"),
    (b"%#.3g", "dbl", 1.0, b"1.00"),
    (b"%#g", "dbl", 0.0, b"0.00000"),
    (b"%G", "dbl", 1e-10, b"1E-10"),
    (b"%g", "dbl", 0.5, b"0.5"),
    (b"%s|", "str", b"abc", b"abc|"),
    (b"%.2s|", "str", b"abc", b"ab|"),
    (b"%-5.1s|", "str", b"abc", b"a    |"),
    (b"%3c", "chr", 65, b"  A"),
    (b"%c", "chr", 256 + 66, b"B"),               # converted to unsigned char
    (b"100%%", "none", "", b"100%"),
])
def test_snprintf_table(fmt, vtype, value, want):
    if want is None:
        want = b"+5| 5|+5"
        before, text, after = o.snprintf_full(b"%+lld", vtype, value)
        assert text.exact == (b"+5",)
        assert o.snprintf_full(b"% lld", vtype, value)[1].exact == (b" 5",)
        assert o.snprintf_full(b"%+ lld", vtype, value)[1].exact == (b"+5",)
        return
    before, text, after = o.snprintf_full(fmt, vtype, value)
    assert before + text.example + after == want
    assert text.exact == (text.example,)


def test_snprintf_infinity_and_nan_spellings():
    text = o.snprintf_full(b"%010F", "dbl", -math.inf)[1]
    assert set(text.exact) == {b"      -INF", b" -INFINITY"}     # '0' never pads them
    nan = o.snprintf_full(b"%-8e|", "dbl", math.nan)[1]
    assert nan.ok(b"nan     ") and nan.ok(b"nan(0x1)")
    assert not nan.ok(b"NAN     ") and not nan.ok(b"   nan  ")
    neg = o.snprintf_full(b"%+e", "dbl", -math.nan)[1]
    assert neg.ok(b"-nan") and neg.ok(b"+nan") and not neg.ok(b"nan")


@pytest.mark.parametrize("fmt, x, good, bad", [
    (b"%a", 1.0, [b"0x1p+0", b"0x8p-3", b"0x1.0p+0"], [b"0x1p0", b"0x1.p+0", b"0X1P+0"]),
    (b"%#a", 1.0, [b"0x1.p+0"], [b"0x1p+0"]),
    (b"%A", -1.5, [b"-0X1.8P+0"], [b"-0x1.8p+0"]),
    (b"%+a", 0.0, [b"+0x0p+0"], [b"+0x0p+1", b"0x0p+0"]),
    (b"%010a", 1.5, [b"0x001.8p+0"], [b"  0x1.8p+0", b"0x0001.8p+0"]),
    (b"%-9a|", 1.5, [b"0x1.8p+0 "], [b" 0x1.8p+0"]),
])
def test_snprintf_hex_float_rules(fmt, x, good, bad):
    text = o.snprintf_full(fmt.rstrip(b"|"), "dbl", x)[1]
    for g in good:
        assert text.ok(g), g
    for b in bad:
        assert not text.ok(b), b
    assert text.ok(text.example)


def test_snprintf_view_truncates_and_stops_at_nul():
    assert o.snprintf_view(b"hello", 0) == (5, b"")
    assert o.snprintf_view(b"hello", 1) == (5, b"")
    assert o.snprintf_view(b"hello", 3) == (5, b"he")
    assert o.snprintf_view(b"hello", 6) == (5, b"hello")
    assert o.snprintf_view(b"a\0b", 10) == (3, b"a")           # %c of 0


@pytest.mark.parametrize("t, fields", [
    (0, (0, 0, 0, 1, 0, 70, 4, 0)),
    (-1, (59, 59, 23, 31, 11, 69, 3, 364)),
    (951782400, (0, 0, 0, 29, 1, 100, 2, 59)),                 # 2000-02-29, a Tuesday
    (2 ** 31, (8, 14, 3, 19, 0, 138, 2, 18)),                  # 2038-01-19T03:14:08
    (-62135596800, (0, 0, 0, 1, 0, -1899, 1, 0)),              # 0001-01-01, a Monday
    (253402300799, (59, 59, 23, 31, 11, 8099, 5, 364)),        # 9999-12-31, a Friday
    (4107542400, (0, 0, 0, 1, 2, 200, 1, 59)),                 # 2100-03-01: 2100 not leap
])
def test_gmtime_table(t, fields):
    tm = o.gmtime(t)
    assert tuple(tm[k] for k in o.TM_FIELDS[:8]) == fields and tm["isdst"] == 0


def test_gmtime_year_overflow():
    from conformance.agent.properties import T_YEAR_OVERFLOW, T_YEAR_UNDERFLOW
    assert o.gmtime(T_YEAR_OVERFLOW - 1)["year"] == o.INT_MAX
    assert o.gmtime(T_YEAR_OVERFLOW) is None
    assert o.gmtime(T_YEAR_UNDERFLOW + 1)["year"] == o.INT_MIN
    assert o.gmtime(T_YEAR_UNDERFLOW) is None
    assert o.gmtime(2 ** 63 - 1) is None and o.gmtime(-2 ** 63) is None


@pytest.mark.parametrize("tm, t", [
    ({"sec": 0, "min": 0, "hour": 0, "mday": 1, "mon": 12, "year": 69}, 0),      # month 12
    ({"sec": 0, "min": 0, "hour": 0, "mday": 0, "mon": 2, "year": 100}, 951782400),  # day 0
    ({"sec": 3600, "min": 0, "hour": 0, "mday": 1, "mon": 0, "year": 70}, 3600),
    ({"sec": 0, "min": -1, "hour": 0, "mday": 1, "mon": 0, "year": 70}, -60),
    ({"sec": 0, "min": 0, "hour": 0, "mday": 1, "mon": -1, "year": 70}, -31 * 86400),
    ({"sec": 0, "min": 0, "hour": 0, "mday": 366, "mon": 0, "year": 72}, 2 * 365 * 86400 + 365 * 86400),
])
def test_mktime_normalises(tm, t):
    got, fields = o.mktime_utc({**tm, "isdst": 0})
    assert got == t and fields == o.gmtime(t)


def test_strftime_table():
    tm = o.gmtime(1136073600)         # 2006-01-01T00:00:00, a Sunday in ISO week 2005-W52
    assert o.strftime_text("%a %A %b %B %h %C %d %e %j %m %y %Y", tm) == \
        "Sun Sunday Jan January Jan 20 01  1 001 01 06 2006"
    assert o.strftime_text("%c|%x|%X|%D|%F|%T|%R|%r", tm) == \
        "Sun Jan  1 00:00:00 2006|01/01/06|00:00:00|01/01/06|2006-01-01|00:00:00|00:00|12:00:00 AM"
    assert o.strftime_text("%G %g %V %u %w %U %W", tm) == "2005 05 52 7 0 01 00"
    assert o.strftime_text("%p %I %H %n%t%% %z %Z %Ec %Od", o.gmtime(1136073600 + 13 * 3600)) == \
        "PM 01 13 \n\t% +0000 UTC Sun Jan  1 13:00:00 2006 01"
    # 2008-12-29 (Monday) is in ISO week 1 of 2009; 2010-01-03 (Sunday) in week 53 of 2009.
    assert o.strftime_text("%G-W%V-%u", o.gmtime(1230508800)) == "2009-W01-1"
    assert o.strftime_text("%G-W%V-%u", o.gmtime(1262476800)) == "2009-W53-7"


def test_strftime_size_rule():
    tm = o.gmtime(0)
    assert o.strftime(11, b"%Y-%m-%d", tm) == (10, b"1970-01-01")
    assert o.strftime(10, b"%Y-%m-%d", tm) == (0, b"")         # no room for the NUL
    assert o.strftime(512, b"", tm) == (0, b"")
    with pytest.raises(o.Unspecified):
        o.strftime(512, b"%Q", tm)
    with pytest.raises(o.Unspecified):
        o.strftime(512, b"%Y", o.gmtime(-62135596800))     # year 1: spelling not fixed


def test_string_tables():
    assert o.strlen(b"ab\xff") == 3 and o.strlen(b"") == 0
    assert o.strcmp(b"a", b"ab") < 0 and o.strcmp(b"\x80", b"a") > 0 and o.strcmp(b"", b"") == 0
    assert o.strncmp(b"abX", b"abY", 2) == 0 and o.strncmp(b"a", b"b", 0) == 0
    assert o.memcmp(b"a\0b", b"a\0c", 3) < 0 and o.memcmp(b"\xff", b"\x01", 1) > 0
    assert o.strchr(b"abca", 0x61) == 0 and o.strrchr(b"abca", 0x61) == 3
    assert o.strchr(b"abc", 0) == 3 and o.strrchr(b"abc", 0) == 3 and o.strchr(b"abc", 0x7A) == -1
    assert o.strchr(b"a\xff", 0xFF) == 1 and o.strchr(b"a\xff", -1) == 1
    assert o.memchr(b"ab\0c", 0, 4) == 2 and o.memchr(b"abc", 0x63, 2) == -1
    assert o.memchr(b"abc", 0x61, 0) == -1
    assert o.strstr(b"abc", b"") == 0 and o.strstr(b"", b"") == 0 and o.strstr(b"ab", b"abc") == -1
    assert o.strstr(b"aab", b"ab") == 1
    assert o.strpbrk(b"abc", b"cb") == 1 and o.strpbrk(b"abc", b"") == -1
    assert o.strspn(b"aab", b"a") == 2 and o.strspn(b"aa", b"a") == 2 and o.strspn(b"a", b"") == 0
    assert o.strcspn(b"abc", b"c") == 2 and o.strcspn(b"abc", b"") == 3 and o.strcspn(b"", b"a") == 0
    assert o.strncpy(b"ab", 5) == b"ab\0\0\0" and o.strncpy(b"abcdef", 3) == b"abc"
    assert o.strncpy(b"abc", 3) == b"abc"                                 # no terminator
    assert o.qsort([3, -1, 3, 0]) == [-1, 0, 3, 3]
    assert o.bsearch_ok([1, 2, 2, 3], 2, 1) and o.bsearch_ok([1, 2, 2, 3], 2, 2)
    assert not o.bsearch_ok([1, 2, 2, 3], 2, 0) and o.bsearch_ok([], 5, -1)
    assert not o.bsearch_ok([1, 3], 2, 0)


@pytest.mark.parametrize("pattern, string, flags, want", [
    (b"a*c", b"abbc", "", True),
    (b"a?c", b"ac", "", False),
    (b"*", b"", "", True),
    (b"[abc]", b"b", "", True),
    (b"[!abc]", b"b", "", False),
    (b"[]a]", b"]", "", True),              # ']' first is literal
    (b"[!]]", b"]", "", False),
    (b"[a-]", b"-", "", True),
    (b"[a-c]", b"b", "", True),
    (b"[0-9A-F]", b"g", "", False),
    (b"[[:digit:][:upper:]]", b"Q", "", True),
    (b"[[:alpha:]]", b"\xe9", "", False),   # not a letter in the C locale
    (b"[[=a=]]", b"a", "", True),
    (b"\\*", b"*", "", True),
    (b"\\*", b"x", "", False),
    (b"\\*", b"\\x", "NOESCAPE", True),
    (b"\\\\", b"\\", "", True),
    (b"*", b"a/b", "", True),
    (b"*", b"a/b", "PATHNAME", False),
    (b"?", b"/", "PATHNAME", False),
    (b"[!a]", b"/", "PATHNAME", False),
    (b"*/b", b"a/b", "PATHNAME", True),
    (b"*", b".a", "PERIOD", False),
    (b"?a", b".a", "PERIOD", False),
    (b"[!a]a", b".a", "PERIOD", False),
    (b"[[:punct:]]a", b".a", "PERIOD", False),
    (b".*", b".a", "PERIOD", True),
    (b"*.c", b".c", "PERIOD", False),       # the period must be first in the pattern
    (b"a/*", b"a/.b", "PERIOD", True),      # not leading without PATHNAME
    (b"a/*", b"a/.b", "PATHNAME|PERIOD", False),
    (b"a/.*", b"a/.b", "PATHNAME|PERIOD", True),
    (b"a*", b"a.b", "PATHNAME|PERIOD", True),
])
def test_fnmatch_table(pattern, string, flags, want):
    f = flags.split("|")
    assert o.fnmatch(pattern, string, pathname="PATHNAME" in f, period="PERIOD" in f,
                     noescape="NOESCAPE" in f) is want


@pytest.mark.parametrize("pattern", [b"[abc", b"abc\\", b"[^a]", b"[a-[.b.]]", b"[z-a]",
                                     b"[a/b]", b"[[:nosuch:]]"])
def test_fnmatch_unspecified_patterns_are_refused(pattern):
    with pytest.raises(o.Unspecified):
        o.fnmatch(pattern, b"a")


# --------------------------------------------------------------------------- self-consistency

@FAST
@given(st.integers(-2 ** 63, 2 ** 63 - 1), st.integers(2, 36), st.sampled_from([b"", b" ", b"\t"]))
def test_strtol_reads_back_what_is_written(v, base, ws):
    digits = _digits(abs(v), base)
    s = ws + (b"-" if v < 0 else b"") + digits + b"!"
    assert o.strtol(s, base) == o.IntResult(v, len(s) - 1, frozenset({"0"}))


def _digits(v: int, base: int) -> bytes:
    out = b""
    while True:
        v, r = divmod(v, base)
        out = b"0123456789abcdefghijklmnopqrstuvwxyz"[r:r + 1] + out
        if v == 0:
            return out


@FAST
@given(st.integers(0, 2 ** 64 - 1))
def test_strtoul_negation_is_modular(v):
    s = b"-" + str(v).encode()
    assert o.strtoul(s, 10).value == (-v) % 2 ** 64


@FAST
@given(st.floats(allow_nan=False))
def test_strtod_reads_repr_and_hex(x):
    for text in (repr(x).encode(), float.hex(x).encode()):
        r = o.strtod(text)
        assert r.end == len(text)
        if r.kind == "value":
            assert o.double_bits(r.value) == o.double_bits(x)
        else:   # only subnormals are in the latitude zone
            assert r.kind == "underflow" and 0 < abs(x) < o.DBL_MIN and r.value == x


@FAST
@given(st.integers(-62135596800, 253402300799))
def test_gmtime_agrees_with_datetime(t):
    d = datetime(1970, 1, 1) + timedelta(seconds=t)
    tm = o.gmtime(t)
    assert (tm["year"] + 1900, tm["mon"] + 1, tm["mday"], tm["hour"], tm["min"], tm["sec"]) == \
        (d.year, d.month, d.day, d.hour, d.minute, d.second)
    assert tm["wday"] == d.isoweekday() % 7 and tm["yday"] == d.timetuple().tm_yday - 1
    iso = d.isocalendar()
    assert o.iso_week(d.year, tm["yday"], tm["wday"]) == (iso[0], iso[1])


@FAST
@given(st.integers(-10 ** 12, 10 ** 12), st.integers(-10 ** 6, 10 ** 6), st.integers(-500, 500))
def test_mktime_inverts_gmtime_and_normalises(t, dsec, dmon):
    tm = o.gmtime(t)
    assert o.mktime_utc(tm) == (t, tm)
    moved = {**tm, "sec": tm["sec"] + dsec}
    assert o.mktime_utc(moved)[0] == t + dsec
    # Moving the month by 12k moves the year by k and keeps the rest.
    k = dmon // 12
    assert o.mktime_utc({**tm, "mon": tm["mon"] + 12 * k})[1]["year"] == tm["year"] + k


@FAST
@given(st.integers(-2 ** 63, 2 ** 63 - 1), st.integers(0, 30))
def test_snprintf_plain_integers_match_python(v, width):
    assert o.format_integer(o.Spec("", width, None, "ll", "d"), v) == (b"%*d" % (width, v))
    assert o.format_integer(o.Spec("-", width, None, "ll", "d"), v) == (b"%-*d" % (width, v))


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from("eEfFgG"),
       st.integers(0, 17))
def test_snprintf_floats_read_back_close(x, conv, prec):
    text = o.snprintf_full(b"%." + str(prec).encode() + conv.encode(), "dbl", x)[1].example
    back = float(text)
    if conv in "eE" and prec >= 16 or conv in "gG" and prec >= 17:
        assert back == x
    assert math.copysign(1, back) == math.copysign(1, x) or back == 0


@FAST
@given(st.text("ab*?/.", max_size=6).map(str.encode), st.text("ab/.", max_size=6).map(str.encode))
def test_fnmatch_without_flags_matches_python_for_simple_patterns(pattern, string):
    # Python's fnmatchcase has the same meaning for '*', '?' and plain bytes with no flags.
    assert o.fnmatch(pattern, string) == fnmatchcase(string.decode(), pattern.decode())


@FAST
@given(st.sampled_from(PROPERTIES).flatmap(lambda p: st.tuples(st.just(p), p.strategy)))
def test_examples_are_jsonable_and_shown(pair):
    prop, ex = pair
    assert json.loads(json.dumps(jsonable(ex))) == jsonable(ex)
    assert prop.show(ex).startswith(prop.show(ex).split("(")[0])


# --------------------------------------------------------------------------- the table

def _catalog_ids() -> set[str]:
    ids = set()
    for path in (ROOT / "conformance" / "specs").glob("*.yaml"):
        ids |= set(re.findall(r"id: (REQ-[A-Za-z0-9_]+-[0-9]+)", path.read_text()))
    return ids


def test_property_table_is_well_formed():
    ids = [p.id for p in PROPERTIES]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"TC-DIFF-[a-z0-9-]+", i) for i in ids)
    catalog = _catalog_ids()
    for p in PROPERTIES:
        assert set(p.verifies) <= catalog, p.id
        for req in p.verifies:
            assert req.split("-")[1] in p.interfaces, (p.id, req)
        assert p.unit in ("stdlib", "strings", "time", "stdio", "patterns")
    wanted = {"strtol", "strtoul", "strtoll", "strtoull", "strtod", "snprintf", "gmtime",
              "mktime", "strftime", "qsort", "bsearch", "strlen", "strcmp", "strncmp", "strchr",
              "strrchr", "strstr", "strpbrk", "strspn", "strcspn", "memcmp", "memchr",
              "strncpy", "fnmatch"}
    assert wanted <= {i for p in PROPERTIES for i in p.interfaces}


# --------------------------------------------------------------------------- test doubles

class OracleAgent:
    """Answers every op from the oracles: a perfect library, as far as the oracles know."""

    def __init__(self):
        self.calls: list[tuple] = []

    def call(self, op, *args):
        self.calls.append((op, *args))
        return getattr(self, "op_" + op)(*args)

    @staticmethod
    def _errno(names):
        return b"ERANGE" if "ERANGE" in names else b"0"

    def _int(self, s, base, signed):
        r = o.strto_int(s, base, signed=signed)
        if r.end is None:
            return {"ret": b"0", "end": b"0", "errno": b"EINVAL"}
        return {"ret": str(r.value).encode(), "end": str(r.end).encode(),
                "errno": self._errno(r.errnos)}

    def op_strtol(self, s, base):
        return self._int(s, base, True)

    op_strtoll = op_strtol

    def op_strtoul(self, s, base):
        return self._int(s, base, False)

    op_strtoull = op_strtoul

    def op_strtod(self, s):
        r = o.strtod(s)
        return {"bits": b"%016x" % o.double_bits(r.value), "end": str(r.end).encode(),
                "errno": self._errno(r.errnos)}

    def op_snprintf(self, size, fmt, vtype, value):
        value = o.bits_double(int(value, 16)) if vtype == "dbl" else value
        before, text, after = o.snprintf_full(fmt, vtype, value)
        ret, out = o.snprintf_view(before + text.example + after, size)
        return {"ret": str(ret).encode(), "out": out}

    def op_gmtime(self, t):
        tm = o.gmtime(t)
        if tm is None:
            return {"null": b"1", "errno": b"EOVERFLOW"}
        return {"null": b"0", "errno": b"0", **{k: str(v).encode() for k, v in tm.items()}}

    def op_mktime(self, *fields):
        t, tm = o.mktime_utc(dict(zip(("sec", "min", "hour", "mday", "mon", "year", "isdst"),
                                      fields)))
        return {"ret": str(t).encode(), "errno": b"0",
                **{k: str(v).encode() for k, v in tm.items()}}

    def op_strftime(self, size, fmt, *fields):
        ret, out = o.strftime(size, fmt, dict(zip(o.TM_FIELDS, fields)))
        return {"ret": str(ret).encode(), "out": out}

    def op_qsort(self, data):
        values = sorted(int(x) for x in data.split(b",")) if data else []
        return {"out": ",".join(map(str, values)).encode()}

    def op_bsearch(self, data, key):
        values = [int(x) for x in data.split(b",")] if data else []
        return {"idx": str(values.index(key) if key in values else -1).encode()}

    def op_strncpy(self, src, n):
        return {"out": o.strncpy(src, n)}

    def op_fnmatch(self, pattern, string, flags):
        f = flags.split("|")
        hit = o.fnmatch(pattern, string, pathname="PATHNAME" in f, period="PERIOD" in f,
                        noescape="NOESCAPE" in f)
        return {"ret": b"0" if hit else b"FNM_NOMATCH"}

    def __getattr__(self, name):
        op = name[3:]
        if name.startswith("op_") and hasattr(o, op):     # the string functions
            def run(*args):
                r = getattr(o, op)(*args)
                key = "idx" if op in ("strchr", "strrchr", "strstr", "strpbrk", "memchr") \
                    else "ret"
                if op in ("strcmp", "strncmp", "memcmp"):
                    r *= 37          # only the sign is specified
                return {key: str(r).encode()}
            return run
        raise AttributeError(name)


def test_run_property_passes_against_the_oracles_for_every_property():
    agent = OracleAgent()
    for prop in PROPERTIES:
        agent.calls.clear()
        out = run_property(agent, prop, seed=7, max_examples=40)
        assert (out.verdict, out.reason, out.lost, out.falsifying) == ("PASS", "", False, None), \
            (prop.id, out.reason)
        assert out.examples == len(agent.calls) and 1 <= out.examples <= 40
        assert (out.id, out.seed, out.max_examples) == (prop.id, 7, 40)


def test_same_seed_same_examples():
    prop = BY_ID["TC-DIFF-snprintf-float"]
    runs = []
    for seed in (11, 11, 12):
        agent = OracleAgent()
        run_property(agent, prop, seed=seed, max_examples=30)
        runs.append(agent.calls)
    assert runs[0] == runs[1] and runs[0] != runs[2]


class ZeroXAgent(OracleAgent):
    """strtol with the classic bug: "0x" not followed by a hex digit is taken as a prefix, so
    the end pointer lands after the x instead of after the 0."""

    def op_strtol(self, s, base):
        reply = super().op_strtol(s, base)
        i = len(s) - len(s.lstrip(b" \t\n\v\f\r"))
        i += s[i:i + 1] in (b"+", b"-")
        if base in (0, 16) and s[i:i + 2].lower() == b"0x" and reply["end"] == str(i + 1).encode():
            reply["end"] = str(i + 2).encode()
        return reply


def test_planted_deviation_fails_shrinks_and_reproduces(tmp_path):
    prop = BY_ID["TC-DIFF-strtol"]
    out = run_property(ZeroXAgent(), prop, seed=3, max_examples=300)
    assert out.verdict == "FAIL" and not out.lost
    example = out.falsifying["input"]
    assert len(example["s"]) <= 3 and example["s"].lower().startswith("0x"), example
    assert out.reason.startswith("strtol(") and ": got " in out.reason and ", want " in out.reason
    assert out.falsifying["got"].startswith("ret=0 end=2")
    assert out.falsifying["want"].startswith("ret=0 end=1")
    json.dumps(out.to_json())          # the outcome is JSON as it stands
    again = run_property(ZeroXAgent(), prop, seed=3, max_examples=300)
    assert again.to_json() == out.to_json()      # deterministic, shrinking included

    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no gcc on this host")
    src = tmp_path / "repro.c"
    src.write_text(out.falsifying["reproducer"])
    subprocess.run([gcc, "-std=c99", "-Wall", "-Werror", "-o", str(tmp_path / "repro"), str(src)],
                   check=True, capture_output=True)
    run = subprocess.run([str(tmp_path / "repro")], capture_output=True, timeout=10)
    assert run.returncode in (0, 1) and b"got " in run.stdout and b"want " in run.stdout
    # Coherent with the host's library: exit 0 exactly when glibc agrees with the oracle.
    ex = {"s": percent_decode(example["s"]), "base": example["base"]}
    agrees = prop.check(ex, LibcAgent().call("strtol", ex["s"], ex["base"])) is None
    assert (run.returncode == 0) == agrees


class PlantedAgent(OracleAgent):
    """Three more plausible library bugs; each must be found and shrunk."""

    def op_gmtime(self, t):              # leap-year day count off before year 1
        r = super().op_gmtime(t)
        if t < -62135596800 and r["null"] == b"0" and int(r["mon"]) >= 2:
            r["yday"] = str(int(r["yday"]) + 1).encode()
        return r

    def op_fnmatch(self, p, s, f):       # '*' matching a leading period
        r = super().op_fnmatch(p, s, f)
        return {"ret": b"0"} if s.startswith(b".") and p.startswith(b"*") else r

    def op_strftime(self, size, fmt, *fields):   # no room kept for an exact fit
        r = super().op_strftime(size, fmt, *fields)
        return {"ret": b"0", "out": b""} if int(r["ret"]) + 1 == size else r


@pytest.mark.parametrize("pid, reason", [
    ("TC-DIFF-gmtime", "gmtime(-"),
    ("TC-DIFF-fnmatch", 'fnmatch("*", ".", '),
    ("TC-DIFF-strftime", "strftime(buf, "),
])
def test_planted_bugs_are_found(pid, reason):
    out = run_property(PlantedAgent(), BY_ID[pid], seed=1, max_examples=300)
    assert out.verdict == "FAIL" and out.reason.startswith(reason), out.reason


class LosingAgent(OracleAgent):
    def call(self, op, *args):
        self.calls.append((op, *args))
        raise AgentLost("no reply within 5 s")


class RefusingAgent(OracleAgent):
    def call(self, op, *args):
        self.calls.append((op, *args))
        raise AgentError(op, f"unknown op {op}")


def test_agent_lost_is_unresolved_and_stops():
    agent = LosingAgent()
    out = run_property(agent, BY_ID["TC-DIFF-strstr"], seed=0, max_examples=50)
    assert (out.verdict, out.lost, out.examples, len(agent.calls)) == ("UNRESOLVED", True, 1, 1)
    assert out.reason.startswith("agent lost during strstr(") and "no reply within 5 s" in out.reason


def test_agent_error_is_unresolved_with_the_reason():
    out = run_property(RefusingAgent(), BY_ID["TC-DIFF-fnmatch"], seed=0, max_examples=50)
    assert (out.verdict, out.lost, out.examples) == ("UNRESOLVED", False, 1)
    assert "unknown op fnmatch" in out.reason


# --------------------------------------------------------------------------- the host's libc

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ctypes agent targets glibc")
@pytest.mark.parametrize("prop", PROPERTIES, ids=lambda p: p.id)
def test_every_property_against_host_libc(prop):
    out = run_property(LibcAgent(), prop, seed=2024, max_examples=50)
    assert out.verdict == "PASS", out.reason + "\n" + (out.falsifying or {}).get("reproducer", "")
    assert 1 <= out.examples <= 50


def test_show_bytes_is_deterministic():
    assert show_bytes(b'a"\\\t\xff') == '"a\\"\\\\\\t\\xff"'
