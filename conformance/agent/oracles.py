"""Python oracles for the differential checks: our own reading of what POSIX (and the C standard
it builds on) requires of a C library call, written without the host's C library.

Rules kept here:

- No ctypes, no `time.strftime`, no locale-dependent Python function. Integer parsing uses
  `int(s, base)` on a subject sequence we have delimited ourselves; floating values use `float()`
  and `float.fromhex()`, which are correctly rounded (round half to even); calendar arithmetic
  uses `datetime.date` ordinals shifted by whole 400-year cycles.
- Where the standard leaves latitude (an errno that "may" be set, the spelling of infinity, the
  digits of `%a`) the oracle says what is *acceptable*, not one answer.
- Where the standard leaves the behaviour unspecified or undefined the oracle raises
  `Unspecified`; the strategies in properties.py never generate such inputs, and the tests
  check that they do not.

    >>> strtol(b"  -0x1fz", 16)
    IntResult(value=-31, end=7, errnos=frozenset({'0'}))
    >>> strtol(b"0x", 16).end          # "0x" with no hex digit after it: the subject is "0"
    1
    >>> fnmatch(b"*.c", b".x.c", period=True)
    False
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from functools import lru_cache
from typing import Callable


class Unspecified(ValueError):
    """The input is outside what the standard specifies; a strategy must not generate it."""


# --------------------------------------------------------------------------- C locale classes

C_SPACE = frozenset(b" \t\n\v\f\r")
_UPPER = frozenset(range(0x41, 0x5B))
_LOWER = frozenset(range(0x61, 0x7B))
_DIGIT = frozenset(range(0x30, 0x3A))
_GRAPH = frozenset(range(0x21, 0x7F))
# The twelve character classes of the POSIX locale; bytes above 0x7f belong to none of them.
C_CLASSES: dict[str, frozenset[int]] = {
    "alpha": _UPPER | _LOWER,
    "digit": _DIGIT,
    "alnum": _UPPER | _LOWER | _DIGIT,
    "upper": _UPPER,
    "lower": _LOWER,
    "space": C_SPACE,
    "blank": frozenset(b" \t"),
    "punct": _GRAPH - _UPPER - _LOWER - _DIGIT,
    "print": _GRAPH | {0x20},
    "graph": _GRAPH,
    "cntrl": frozenset(range(0, 0x20)) | {0x7F},
    "xdigit": _DIGIT | frozenset(b"abcdefABCDEF"),
}


def _digit_value(byte: int) -> int:
    """The value of a digit in bases up to 36 (letters of either case), or 99 for a non-digit."""
    if 0x30 <= byte <= 0x39:
        return byte - 0x30
    if 0x61 <= byte <= 0x7A:
        return byte - 0x61 + 10
    if 0x41 <= byte <= 0x5A:
        return byte - 0x41 + 10
    return 99


def _skip_space(s: bytes, i: int = 0) -> int:
    while i < len(s) and s[i] in C_SPACE:
        i += 1
    return i


# --------------------------------------------------------------------------- strtol family

@dataclass(frozen=True)
class IntResult:
    """What strtol() and friends must return. `errnos` is the set of acceptable errno values
    (symbolic names, "0" for unchanged); `end` is None when the end pointer is not specified."""
    value: int
    end: int | None
    errnos: frozenset[str]


def strto_int(s: bytes, base: int, *, bits: int = 64, signed: bool = True) -> IntResult:
    """strtol (signed) or strtoul (unsigned) for an integer type of `bits` bits.

    An unsupported base (not 0, not 2..36) is something the implementation "may" detect: then
    errno may be EINVAL and the value 0; the end pointer is not specified. When no subject
    sequence exists the value is 0 and the end is the start; errno may be set to EINVAL
    (a "may fail" too), so both 0 and EINVAL are acceptable.
    """
    if base != 0 and not 2 <= base <= 36:
        return IntResult(0, None, frozenset({"0", "EINVAL"}))
    i = _skip_space(s)
    negative = False
    if i < len(s) and s[i] in b"+-":
        negative = s[i] == 0x2D
        i += 1
    # A 0x/0X prefix only counts when a hex digit follows; otherwise the subject is the "0".
    if base in (0, 16) and s[i:i + 2] in (b"0x", b"0X") and i + 2 < len(s) \
            and _digit_value(s[i + 2]) < 16:
        i += 2
        base = 16
    elif base == 0:
        base = 8 if s[i:i + 1] == b"0" else 10
    j = i
    while j < len(s) and _digit_value(s[j]) < base:
        j += 1
    if j == i:
        return IntResult(0, 0, frozenset({"0", "EINVAL"}))
    magnitude = int(s[i:j].decode("ascii"), base)
    ok = frozenset({"0"})
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        value = -magnitude if negative else magnitude
        if value > hi:
            return IntResult(hi, j, frozenset({"ERANGE"}))
        if value < lo:
            return IntResult(lo, j, frozenset({"ERANGE"}))
        return IntResult(value, j, ok)
    top = (1 << bits) - 1
    if magnitude > top:        # the range check applies to the magnitude, before any negation
        return IntResult(top, j, frozenset({"ERANGE"}))
    return IntResult((-magnitude) & top if negative else magnitude, j, ok)


def strtol(s: bytes, base: int, bits: int = 64) -> IntResult:
    return strto_int(s, base, bits=bits, signed=True)


def strtoul(s: bytes, base: int, bits: int = 64) -> IntResult:
    return strto_int(s, base, bits=bits, signed=False)


# --------------------------------------------------------------------------- strtod

DBL_MIN = 2.0 ** -1022
DBL_MAX = float.fromhex("0x1.fffffffffffffp+1023")


def double_bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def bits_double(b: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", b))[0]


@dataclass(frozen=True)
class FloatResult:
    """What strtod() must return.

    kind: "value" (bits must be equal), "nan" (any NaN), "overflow" (±HUGE_VAL, ERANGE),
    "underflow" (a value of the right sign and magnitude at most DBL_MIN), "none" (no
    subject sequence: +0, end 0). `value` is the correctly rounded value (for messages).
    """
    kind: str
    value: float
    end: int
    errnos: frozenset[str]


_HEX_EXP_CLAMP = 100_000  # far beyond any exponent that matters for a mantissa we generate


def _mantissa(s: bytes, i: int, base: int) -> tuple[bytes, bytes, int]:
    """The digits before and after a radix point from s[i], and where they end (a lone "."
    is no mantissa: the end stays before it)."""
    j = _scan_digits(s, i, base)
    int_digits, frac_digits = s[i:j], b""
    if j < len(s) and s[j] == 0x2E:
        k = _scan_digits(s, j + 1, base)
        frac_digits = s[j + 1:k]
        if int_digits or frac_digits:
            j = k
    return int_digits, frac_digits, j


def _scan_digits(s: bytes, i: int, base: int) -> int:
    while i < len(s) and _digit_value(s[i]) < base:
        i += 1
    return i


def _scan_exponent(s: bytes, i: int, letters: bytes) -> int:
    """End of an exponent part starting at i, or i when there is no complete one."""
    if i < len(s) and s[i] in letters:
        k = i + 1
        if k < len(s) and s[k] in b"+-":
            k += 1
        e = _scan_digits(s, k, 10)
        if e > k:
            return e
    return i


def strtod(s: bytes) -> FloatResult:
    """strtod in the C locale (radix character '.')."""
    i = _skip_space(s)
    negative = False
    if i < len(s) and s[i] in b"+-":
        negative = s[i] == 0x2D
        i += 1
    sign = -1.0 if negative else 1.0
    low = s[i:].lower()
    if low.startswith(b"inf"):
        end = i + (8 if low.startswith(b"infinity") else 3)
        return FloatResult("value", sign * math.inf, end, frozenset({"0"}))
    if low.startswith(b"nan"):
        end = i + 3
        m = re.match(rb"\(([0-9A-Za-z_]*)\)", s[end:])
        if m:
            end += m.end()
        return FloatResult("nan", math.nan, end, frozenset({"0"}))
    if low[:2] == b"0x":
        int_digits, frac_digits, j = _mantissa(s, i + 2, 16)
        if int_digits or frac_digits:
            e_end = _scan_exponent(s, j, b"pP")
            exp = int(s[j + 1:e_end].decode()) if e_end > j else 0
            return _float_result(negative, e_end, hex_parts=(int_digits, frac_digits, exp))
        # "0x" without a hex digit: the subject is the decimal "0" before the x.
    int_digits, frac_digits, j = _mantissa(s, i, 10)
    if not (int_digits or frac_digits):
        return FloatResult("none", 0.0, 0, frozenset({"0", "EINVAL"}))
    e_end = _scan_exponent(s, j, b"eE")
    return _float_result(negative, e_end, dec_subject=s[i:e_end])


def _float_result(negative: bool, end: int, *, dec_subject: bytes = b"",
                  hex_parts: tuple[bytes, bytes, int] | None = None) -> FloatResult:
    sign = -1.0 if negative else 1.0
    if hex_parts is not None:
        int_digits, frac_digits, exp = hex_parts
        mantissa = int((int_digits + frac_digits).decode() or "0", 16)
        exp = max(-_HEX_EXP_CLAMP, min(_HEX_EXP_CLAMP, exp))
        if mantissa == 0:
            return FloatResult("value", sign * 0.0, end, frozenset({"0"}))
        text = "0x" + (int_digits.decode() or "0") + "." + frac_digits.decode() + f"p{exp}"
        try:
            rounded = float.fromhex(text)
        except OverflowError:
            rounded = math.inf

        def exact() -> Fraction:
            return Fraction(mantissa, 16 ** len(frac_digits)) * Fraction(2) ** exp
    else:
        digits = dec_subject.lower().split(b"e")[0].replace(b".", b"")
        if not digits.strip(b"0"):
            return FloatResult("value", sign * 0.0, end, frozenset({"0"}))
        rounded = float(dec_subject.decode())

        def exact() -> Fraction:
            return Fraction(dec_subject.decode())
    if math.isinf(rounded):
        return FloatResult("overflow", sign * math.inf, end, frozenset({"ERANGE"}))
    if rounded == 0.0:
        # Nothing representable is close: POSIX requires ERANGE here.
        return FloatResult("underflow", sign * 0.0, end, frozenset({"ERANGE"}))
    if rounded < DBL_MIN or (rounded == DBL_MIN and exact() < DBL_MIN):
        # Subnormal range: whether this "underflows" (and sets ERANGE) is the implementation's
        # call, and the value only has to be no larger in magnitude than DBL_MIN.
        return FloatResult("underflow", sign * rounded, end, frozenset({"0", "ERANGE"}))
    return FloatResult("value", sign * rounded, end, frozenset({"0"}))


def strtod_accepts(want: FloatResult, got_bits: int) -> bool:
    """Whether the double the implementation returned is acceptable (errno and end apart)."""
    got = bits_double(got_bits)
    if want.kind == "nan":
        return math.isnan(got)
    if want.kind == "underflow":
        return (not math.isnan(got) and abs(got) <= DBL_MIN
                and math.copysign(1.0, got) == math.copysign(1.0, want.value))
    return got_bits == double_bits(want.value)


# --------------------------------------------------------------------------- snprintf

@dataclass(frozen=True)
class Spec:
    """One conversion specification: %[flags][width][.precision][length]conv."""
    flags: str
    width: int | None
    precision: int | None
    length: str
    conv: str

    def text(self) -> str:
        return ("%" + self.flags + ("" if self.width is None else str(self.width))
                + ("" if self.precision is None else "." + str(self.precision))
                + self.length + self.conv)


_SPEC_RE = re.compile(rb"%([-+ #0]*)([0-9]*)(?:\.([0-9]*))?(ll|l|h|hh|L|j|z|t)?(.)", re.S)


def parse_format(fmt: bytes) -> tuple[bytes, Spec | None, bytes]:
    """Split a format with at most one conversion into (text before, spec, text after); the
    texts have %% already replaced by %."""
    before, spec, after, pos = [], None, [], 0
    out = before
    while pos < len(fmt):
        k = fmt.find(b"%", pos)
        if k < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:k])
        if fmt[k:k + 2] == b"%%":
            out.append(b"%")
            pos = k + 2
            continue
        m = _SPEC_RE.match(fmt, k)
        if not m or spec is not None:
            raise Unspecified(f"format {fmt!r}")
        flags, width, prec, length, conv = m.groups()
        spec = Spec(flags.decode(), int(width) if width else None,
                    None if prec is None else int(prec or b"0"),
                    (length or b"").decode(), conv.decode("latin-1"))
        out = after
        pos = m.end()
    return b"".join(before), spec, b"".join(after)


def _pad(sign: str, body: str, spec: Spec, zero_ok: bool) -> str:
    """Apply the field width: '-' pads on the right, '0' (when it applies) pads with zeros
    after the sign or base prefix (passed in `sign`), else spaces on the left."""
    width = spec.width or 0
    n = len(sign) + len(body)
    if n >= width:
        return sign + body
    if "-" in spec.flags:
        return sign + body + " " * (width - n)
    if "0" in spec.flags and zero_ok:
        return sign + "0" * (width - n) + body
    return " " * (width - n) + sign + body


def _sign(negative: bool, spec: Spec) -> str:
    if negative:
        return "-"
    if "+" in spec.flags:          # '+' wins over ' '
        return "+"
    if " " in spec.flags:
        return " "
    return ""


def format_integer(spec: Spec, value: int) -> bytes:
    """d i (signed) and o u x X (value already reduced to the unsigned type)."""
    conv = spec.conv
    if "#" in spec.flags and conv in "diu":
        raise Unspecified("# with d, i or u")
    base = {"d": 10, "i": 10, "u": 10, "o": 8, "x": 16, "X": 16}[conv]
    negative = conv in "di" and value < 0
    magnitude = -value if negative else value
    digits = {8: "%o", 10: "%d", 16: "%x"}[base] % magnitude
    if spec.precision is not None:
        # An explicit precision is a minimum digit count; precision 0 and value 0 give no digits.
        digits = "" if (spec.precision == 0 and magnitude == 0) else digits.zfill(spec.precision)
    prefix = ""
    if "#" in spec.flags:
        if conv == "o" and not digits.startswith("0"):
            digits = "0" + digits     # '#' raises the precision just enough for a leading 0
        elif conv in "xX" and magnitude != 0:
            prefix = "0x"              # only for a non-zero value
    if conv == "X":
        digits, prefix = digits.upper(), prefix.upper()
    # '+' and ' ' only concern signed conversions.
    sign = _sign(negative, spec) if conv in "di" else ""
    # With a precision, the '0' flag is ignored for integer conversions.
    return _pad(sign + prefix, digits, spec, zero_ok=spec.precision is None).encode()


def _strip_zeros(text: str) -> str:
    """%g without '#': drop trailing zeros of the fraction, then a bare radix point."""
    mantissa, e, exp = text.partition("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return mantissa + e + exp


def format_finite(spec: Spec, x: float) -> str:
    """The digits of e E f F g G for a finite double (without sign or padding).

    Python's '%.*e' / '%.*f' give the exact decimal expansion correctly rounded (ties to even on
    the exact binary value), which is what a C library in round-to-nearest produces; the C
    standard only *recommends* correct rounding beyond DECIMAL_DIG (17) significant digits, so
    this oracle is stricter than the letter there (our targets' libraries round exactly).
    """
    alt = "#" in spec.flags
    conv = spec.conv.lower()
    p = 6 if spec.precision is None else spec.precision
    if conv == "e":
        body = "%.*e" % (p, x)
        if alt and p == 0:
            body = body.replace("e", ".e")
    elif conv == "f":
        body = "%.*f" % (p, x)
        if alt and p == 0:
            body += "."
    else:  # g: the style depends on the exponent X an e conversion would have
        P = 1 if p == 0 else p
        x_exp = int(("%.*e" % (P - 1, x)).split("e")[1])
        if P > x_exp >= -4:
            body = "%.*f" % (P - 1 - x_exp, x)
        else:
            body = "%.*e" % (P - 1, x)
        if alt:
            if "." not in body:
                body = body.replace("e", ".e") if "e" in body else body + "."
        else:
            body = _strip_zeros(body)
    return body.upper() if spec.conv.isupper() else body


@dataclass(frozen=True)
class TextExpect:
    """The acceptable full outputs of one snprintf call: either a finite tuple `exact`, or a
    predicate `accepts` when the standard leaves the spelling open (NaN, %a); `example` is
    one acceptable output, for messages and reproducers."""
    exact: tuple[bytes, ...]
    accepts: Callable[[bytes], bool] | None = None

    @property
    def example(self) -> bytes:
        return self.exact[0]

    def ok(self, text: bytes) -> bool:
        return text in self.exact or (self.accepts is not None and self.accepts(text))


_NAN_BODY = re.compile(rb"nan(\([0-9A-Za-z_]*\))?", re.I)
_HEXFLOAT = re.compile(rb"([-+ ]?)0x(0*)([0-9a-f])(\.[0-9a-f]*)?p([-+])([0-9]+)")


def _hexfloat_ok(text: bytes, spec: Spec, x: float) -> bool:
    """%a/%A without precision: the text must read back (float.fromhex) as exactly x; one hex
    digit before the point (non-zero for a normal x); a point only with digits after it or '#';
    an exponent with a sign and at least one digit, 0 for zero; padding per the flags."""
    upper = spec.conv == "A"
    if text != (text.upper() if upper else text.lower()):
        return False
    width = spec.width or 0
    if "-" in spec.flags:
        core = text.rstrip(b" ")
    elif "0" in spec.flags:
        core = text
    else:
        core = text.lstrip(b" ")
    if len(core) != len(text) and len(text) != width:
        return False
    m = _HEXFLOAT.fullmatch(core.lower())
    if not m:
        return False
    sign, pad, lead, frac, esign, exp = m.groups()
    if sign.decode() != _sign(math.copysign(1.0, x) < 0, spec):
        return False
    if pad and not ("0" in spec.flags and "-" not in spec.flags and len(text) == width):
        return False
    if frac == b"." and "#" not in spec.flags:
        return False
    if frac is None and "#" in spec.flags:
        return False
    if x != 0 and abs(x) >= DBL_MIN and lead == b"0":
        return False
    if x == 0 and int(exp) != 0:
        return False
    value = float.fromhex("0x" + (lead + (frac or b"") + b"p" + esign + exp).decode())
    return value == abs(x)


def format_double(spec: Spec, x: float) -> TextExpect:
    """e E f F g G a A of a double."""
    if spec.conv in "aA" and spec.precision is not None:
        raise Unspecified("the digits of %a with a precision are not modelled")
    upper = spec.conv.isupper()
    negative = math.copysign(1.0, x) < 0
    if math.isinf(x):
        # "inf" or "infinity" is the implementation's choice; '0' never pads them.
        names = ("inf", "infinity")
        return TextExpect(tuple(_pad(_sign(negative, spec), n.upper() if upper else n, spec,
                                     False).encode() for n in names))
    if math.isnan(x):
        # "nan" or "nan(chars)"; whether a NaN with the sign bit set shows '-' is not fixed.
        signs = {_sign(False, spec), _sign(negative, spec)}

        def nan_ok(text: bytes) -> bool:
            if text != (text.upper() if upper else text.lower()):
                return False
            k = text.lower().find(b"nan")
            body = text[k:].rstrip(b" ")
            return k >= 0 and bool(_NAN_BODY.fullmatch(body)) and any(
                _pad(sg, body.decode(), spec, False).encode() == text for sg in signs)
        example = _pad(_sign(negative, spec), "NAN" if upper else "nan", spec, False).encode()
        return TextExpect((example,), nan_ok)
    if spec.conv in "aA":
        return TextExpect((_hex_example(spec, x),), lambda t: _hexfloat_ok(t, spec, x))
    body = format_finite(spec, abs(x))
    return TextExpect((_pad(_sign(negative, spec), body, spec, True).encode(),))


def _hex_example(spec: Spec, x: float) -> bytes:
    """One acceptable %a text (the glibc-like normalised form), for messages."""
    h = float.hex(abs(x))                     # '0x1.8000000000000p+3'
    mant, exp = h[2:].split("p")
    mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
    if "#" in spec.flags and "." not in mant:
        mant += "."
    if abs(x) == 0:
        exp = "+0"
    negative = math.copysign(1.0, x) < 0
    sign = _sign(negative, spec)
    width = spec.width or 0
    body = "0x" + mant + "p" + exp
    if "0" in spec.flags and "-" not in spec.flags and len(sign) + len(body) < width:
        body = "0x" + "0" * (width - len(sign) - len(body)) + mant + "p" + exp
        text = sign + body
    else:
        text = _pad(sign, body, spec, False)
    return (text.upper() if spec.conv == "A" else text).encode()


def format_one(spec: Spec | None, vtype: str, value) -> TextExpect:
    """The text of one conversion of `value` passed as `vtype` (docs/agent.md)."""
    if spec is None:
        return TextExpect((b"",))
    if spec.conv in "diouxX":
        if spec.length != "ll":
            raise Unspecified("integer conversions are sent as ll")
        return TextExpect((format_integer(spec, value),))
    if spec.conv in "eEfFgGaA":
        return format_double(spec, value)
    if spec.conv == "s":
        if "0" in spec.flags or "#" in spec.flags:
            raise Unspecified("0 or # with s")
        data = value if spec.precision is None else value[:spec.precision]
        return TextExpect((_pad_bytes(data, spec),))
    if spec.conv == "c":
        if spec.precision is not None or "0" in spec.flags or "#" in spec.flags:
            raise Unspecified("precision, 0 or # with c")
        return TextExpect((_pad_bytes(bytes([value & 0xFF]), spec),))
    raise Unspecified(f"conversion {spec.conv!r}")


def _pad_bytes(data: bytes, spec: Spec) -> bytes:
    width = spec.width or 0
    if len(data) >= width:
        return data
    fill = b" " * (width - len(data))
    return data + fill if "-" in spec.flags else fill + data


def snprintf_full(fmt: bytes, vtype: str, value) -> tuple[bytes, TextExpect, bytes]:
    """(text before, the conversion's acceptable texts, text after) of the whole output."""
    before, spec, after = parse_format(fmt)
    return before, format_one(spec, vtype, value), after


def snprintf_view(full: bytes, size: int) -> tuple[int, bytes]:
    """(ret, out) as the agent reports them for a full output: ret is the whole length; the
    buffer holds at most size-1 bytes and a NUL, and `out` stops at the first NUL (a %c of 0
    writes one)."""
    out = full[:size - 1] if size > 0 else b""
    return len(full), out.split(b"\0", 1)[0]


# --------------------------------------------------------------------------- calendar

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_CYCLE_DAYS = 146097          # days in 400 Gregorian years (a whole number of weeks too)
INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
TM_FIELDS = ("sec", "min", "hour", "mday", "mon", "year", "wday", "yday", "isdst")


def civil_from_days(days: int) -> tuple[int, int, int, int]:
    """(year, month 1-12, day, day of year 0-365) of a day count from 1970-01-01, for any
    year: shift by whole 400-year cycles into the range of datetime.date."""
    ordinal = days + _EPOCH_ORDINAL
    cycles = (ordinal - 1) // _CYCLE_DAYS
    d = date.fromordinal(ordinal - cycles * _CYCLE_DAYS)
    return d.year + 400 * cycles, d.month, d.day, d.timetuple().tm_yday - 1


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to year-month-day (month 1-12, day may be out of range)."""
    cycles = (year - 1) // 400
    base = date(year - 400 * cycles, month, 1).toordinal()
    return base + cycles * _CYCLE_DAYS + day - 1 - _EPOCH_ORDINAL


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def gmtime(t: int) -> dict[str, int] | None:
    """Broken-down UTC time of t, or None when tm_year would not fit an int (EOVERFLOW)."""
    days, secs = divmod(t, 86400)
    year, month, day, yday = civil_from_days(days)
    if not INT_MIN <= year - 1900 <= INT_MAX:
        return None
    return {"sec": secs % 60, "min": secs // 60 % 60, "hour": secs // 3600, "mday": day,
            "mon": month - 1, "year": year - 1900, "wday": (days + 4) % 7, "yday": yday,
            "isdst": 0}


def mktime_utc(tm: dict[str, int]) -> tuple[int, dict[str, int]]:
    """mktime with TZ=UTC0: the fields are taken at face value whatever their range (a month
    of 13 is January of the next year, a day of 0 the last day of the month before, and so
    on); returns (time, the normalised fields that mktime stores back)."""
    year = tm["year"] + 1900 + tm["mon"] // 12
    days = days_from_civil(year, tm["mon"] % 12 + 1, 1) + tm["mday"] - 1
    t = days * 86400 + tm["hour"] * 3600 + tm["min"] * 60 + tm["sec"]
    fields = gmtime(t)
    if fields is None:
        raise Unspecified("result year out of int range")
    return t, fields


# --------------------------------------------------------------------------- strftime

_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")

# Conversions modelled, with their POSIX-locale definitions. Deliberately left out:
#   %E/%O with conversions other than those listed in STRFTIME_MODIFIED (undefined);
#   flags and field widths (%+4Y, %010Y): their handling of short years is new in POSIX.1-2008
#     and implementations differ on the padding character for conversions other than C F G Y;
#   %s (not in POSIX.1-2017), %k %l %P %+ (extensions).
# The years the strategies produce stay in 1001..9998 so that %Y, %G and %C never meet a year
# of fewer than four digits (whose spelling POSIX.1-2017 leaves open) or a negative year.
STRFTIME_CONVERSIONS = "aAbBcCdDeFgGhHIjmMnprRStTuUVwWxXyYzZ%"
STRFTIME_MODIFIED = ("Ec", "EC", "Ex", "EX", "Ey", "EY", "Od", "Oe", "OH", "OI", "Om", "OM",
                     "OS", "Ou", "OU", "OV", "Ow", "OW", "Oy")


def iso_week(year: int, yday: int, wday: int) -> tuple[int, int]:
    """(ISO 8601 week-based year, week 1-53): the week belongs to the year of its Thursday."""
    thursday = yday - (wday + 6) % 7 + 3
    if thursday < 0:
        year -= 1
        thursday += 366 if is_leap(year) else 365
    elif thursday >= (366 if is_leap(year) else 365):
        thursday -= 366 if is_leap(year) else 365
        year += 1
    return year, thursday // 7 + 1


def _strftime_one(c: str, tm: dict[str, int]) -> str:
    year = tm["year"] + 1900
    hour12 = tm["hour"] % 12 or 12
    table: dict[str, Callable[[], str]] = {
        "a": lambda: _DAYS[tm["wday"]][:3],
        "A": lambda: _DAYS[tm["wday"]],
        "b": lambda: _MONTHS[tm["mon"]][:3],
        "h": lambda: _MONTHS[tm["mon"]][:3],
        "B": lambda: _MONTHS[tm["mon"]],
        "c": lambda: strftime_text("%a %b %e %H:%M:%S %Y", tm),
        "C": lambda: "%02d" % (year // 100),
        "d": lambda: "%02d" % tm["mday"],
        "D": lambda: strftime_text("%m/%d/%y", tm),
        "e": lambda: "%2d" % tm["mday"],
        "F": lambda: strftime_text("%Y-%m-%d", tm),
        "g": lambda: "%02d" % (iso_week(year, tm["yday"], tm["wday"])[0] % 100),
        "G": lambda: "%d" % iso_week(year, tm["yday"], tm["wday"])[0],
        "H": lambda: "%02d" % tm["hour"],
        "I": lambda: "%02d" % hour12,
        "j": lambda: "%03d" % (tm["yday"] + 1),
        "m": lambda: "%02d" % (tm["mon"] + 1),
        "M": lambda: "%02d" % tm["min"],
        "n": lambda: "\n",
        "p": lambda: "AM" if tm["hour"] < 12 else "PM",
        "r": lambda: strftime_text("%I:%M:%S %p", tm),
        "R": lambda: strftime_text("%H:%M", tm),
        "S": lambda: "%02d" % tm["sec"],
        "t": lambda: "\t",
        "T": lambda: strftime_text("%H:%M:%S", tm),
        "u": lambda: "%d" % (tm["wday"] or 7),
        "U": lambda: "%02d" % ((tm["yday"] + 7 - tm["wday"]) // 7),
        "V": lambda: "%02d" % iso_week(year, tm["yday"], tm["wday"])[1],
        "w": lambda: "%d" % tm["wday"],
        "W": lambda: "%02d" % ((tm["yday"] + 7 - (tm["wday"] + 6) % 7) // 7),
        "x": lambda: strftime_text("%m/%d/%y", tm),
        "X": lambda: strftime_text("%H:%M:%S", tm),
        "y": lambda: "%02d" % (year % 100),
        "Y": lambda: "%d" % year,
        # TZ=UTC0: the offset is +0000 and the zone name UTC (tm_isdst is 0).
        "z": lambda: "+0000",
        "Z": lambda: "UTC",
        "%": lambda: "%",
    }
    return table[c]()


def strftime_text(fmt: str, tm: dict[str, int]) -> str:
    if tm["isdst"] != 0:
        raise Unspecified("only tm_isdst 0 is modelled")
    if not 1001 <= tm["year"] + 1900 <= 9998:
        raise Unspecified("years outside 1001..9998")
    out, i = [], 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        rest = fmt[i + 1:i + 3]
        if rest[:1] in ("E", "O"):
            if rest not in STRFTIME_MODIFIED:
                raise Unspecified(f"%{rest}")
            # In the POSIX locale there are no alternative forms: %Ec is %c, %Od is %d.
            out.append(_strftime_one(rest[1], tm))
            i += 3
            continue
        if not rest or rest[0] not in STRFTIME_CONVERSIONS:
            raise Unspecified(f"%{rest[:1]}")
        out.append(_strftime_one(rest[0], tm))
        i += 2
    return "".join(out)


def strftime(size: int, fmt: bytes, tm: dict[str, int]) -> tuple[int, bytes]:
    """(ret, out) of strftime into a buffer of `size` bytes: the whole text when it fits with
    its NUL, else 0 (and the buffer's content is then not specified: out is reported empty)."""
    text = strftime_text(fmt.decode("latin-1"), tm).encode("latin-1")
    if len(text) + 1 > size:
        return 0, b""
    return len(text), text


# --------------------------------------------------------------------------- sorting, searching

def qsort(values: list[int]) -> list[int]:
    return sorted(values)


def bsearch_ok(values: list[int], key: int, idx: int) -> bool:
    """Any index of an element equal to the key is right; -1 (NULL) exactly when none is."""
    if key in values:
        return 0 <= idx < len(values) and values[idx] == key
    return idx == -1


# --------------------------------------------------------------------------- strings

def cstr(s: bytes) -> bytes:
    """The C string: up to the first NUL."""
    return s.split(b"\0", 1)[0]


def sign(n: int) -> int:
    return (n > 0) - (n < 0)


def strlen(s: bytes) -> int:
    return len(cstr(s))


def memcmp(a: bytes, b: bytes, n: int) -> int:
    """Sign of the comparison of the first n bytes as unsigned char."""
    return sign((a[:n] > b[:n]) - (a[:n] < b[:n]))


def strcmp(a: bytes, b: bytes) -> int:
    a, b = cstr(a), cstr(b)
    return sign((a > b) - (a < b))       # bytes compare as unsigned, a prefix sorts first


def strncmp(a: bytes, b: bytes, n: int) -> int:
    return strcmp(cstr(a)[:n], cstr(b)[:n])


def strchr(s: bytes, c: int) -> int:
    """Index of the first c (converted to char), the terminator counting for c = 0; -1 for NULL."""
    s = cstr(s)
    c &= 0xFF
    return len(s) if c == 0 else s.find(bytes([c]))


def strrchr(s: bytes, c: int) -> int:
    s = cstr(s)
    c &= 0xFF
    return len(s) if c == 0 else s.rfind(bytes([c]))


def memchr(s: bytes, c: int, n: int) -> int:
    return s[:n].find(bytes([c & 0xFF]))


def strstr(hay: bytes, needle: bytes) -> int:
    return cstr(hay).find(cstr(needle))        # find gives 0 for an empty needle


def strpbrk(s: bytes, accept: bytes) -> int:
    s, accept = cstr(s), set(cstr(accept))
    return next((i for i, ch in enumerate(s) if ch in accept), -1)


def strspn(s: bytes, accept: bytes) -> int:
    s, accept = cstr(s), set(cstr(accept))
    return next((i for i, ch in enumerate(s) if ch not in accept), len(s))


def strcspn(s: bytes, reject: bytes) -> int:
    s, reject = cstr(s), set(cstr(reject))
    return next((i for i, ch in enumerate(s) if ch in reject), len(s))


def strncpy(src: bytes, n: int) -> bytes:
    """All n bytes of the destination: src up to its NUL, cut at n, then NULs up to n (so no
    terminator when src has n bytes or more)."""
    data = cstr(src)[:n]
    return data + b"\0" * (n - len(data))


# --------------------------------------------------------------------------- fnmatch

# Pattern tokens: ("lit", byte), ("any",), ("star",), ("set", frozenset of bytes matched).
Token = tuple


def parse_bracket(p: bytes, i: int) -> tuple[frozenset[int], int]:
    """Parse the bracket expression that starts after the '[' at p[i-1]; return (set of bytes
    it matches, index after the closing ']'). Raises Unspecified for what POSIX leaves open or
    we do not model: no closing bracket, '^' first, a backslash or '/' inside, a range whose
    end point is a class, an equivalence class or a collating symbol, or whose ends are in
    decreasing order; '[' not starting a [: [= [. construct."""
    negate = False
    if i < len(p) and p[i] == 0x21:            # '!'
        negate, i = True, i + 1
    elif i < len(p) and p[i] == 0x5E:
        raise Unspecified("bracket starting with ^")
    members: set[int] = set()
    first = True
    while True:
        if i >= len(p):
            raise Unspecified("unterminated bracket expression")
        ch = p[i]
        if ch == 0x5D and not first:           # ']' closes unless it comes first
            i += 1
            break
        first = False
        if ch in b"\\/":
            raise Unspecified("backslash or slash in a bracket expression")
        if ch == 0x5B and i + 1 < len(p) and p[i + 1] in b":=.":
            kind = p[i + 1]
            close = p.find(bytes([kind, 0x5D]), i + 2)
            if close < 0:
                raise Unspecified("unterminated [: [= or [.")
            name = p[i + 2:close]
            if kind == 0x3A:
                if name.decode("latin-1") not in C_CLASSES:
                    raise Unspecified(f"class {name!r}")
                members |= C_CLASSES[name.decode()]
            else:
                # In the POSIX locale each collating element is a single byte and each
                # equivalence class holds one character.
                if len(name) != 1:
                    raise Unspecified(f"collating element {name!r}")
                members.add(name[0])
            i = close + 2
            if i + 1 < len(p) and p[i] == 0x2D and p[i + 1] != 0x5D:
                raise Unspecified("range starting at a class or collating element")
            continue
        if ch == 0x5B:
            raise Unspecified("'[' inside a bracket expression")
        if i + 2 < len(p) and p[i + 1] == 0x2D and p[i + 2] != 0x5D:
            hi = p[i + 2]
            if hi in b"[\\/":
                raise Unspecified("range ending in [ \\ or /")
            if hi < ch:
                raise Unspecified("decreasing range")
            members |= set(range(ch, hi + 1))   # the POSIX locale collates in byte order
            i += 3
            continue
        members.add(ch)
        i += 1
    return frozenset(set(range(256)) - members if negate else members), i


def parse_pattern(p: bytes, noescape: bool = False) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(p):
        ch = p[i]
        if ch == 0x5C and not noescape:         # backslash: the next byte is literal
            if i + 1 >= len(p):
                raise Unspecified("trailing backslash")
            tokens.append(("lit", p[i + 1]))
            i += 2
        elif ch == 0x2A:
            tokens.append(("star",))
            i += 1
        elif ch == 0x3F:
            tokens.append(("any",))
            i += 1
        elif ch == 0x5B:
            members, i = parse_bracket(p, i + 1)
            tokens.append(("set", members))
        else:
            tokens.append(("lit", ch))
            i += 1
    return tokens


def fnmatch(pattern: bytes, string: bytes, *, pathname: bool = False, period: bool = False,
            noescape: bool = False) -> bool:
    """Whether `string` matches `pattern` (True: fnmatch returns 0; False: FNM_NOMATCH).

    PATHNAME: a '/' in the string is matched only by a literal '/' in the pattern.
    PERIOD: a leading '.' (at the start, or after a '/' when PATHNAME is set) is matched only by
    a literal '.' that is itself first in the pattern or right after a literal '/'.
    """
    tokens = parse_pattern(pattern, noescape)
    n = len(string)

    def leading_period(si: int) -> bool:
        return period and string[si] == 0x2E and (
            si == 0 or (pathname and string[si - 1] == 0x2F))

    def pattern_leading(ti: int) -> bool:
        return ti == 0 or (pathname and tokens[ti - 1] == ("lit", 0x2F))

    def wildcard_ok(si: int) -> bool:
        return not (pathname and string[si] == 0x2F) and not leading_period(si)

    @lru_cache(maxsize=None)
    def rec(ti: int, si: int) -> bool:
        if ti == len(tokens):
            return si == n
        tok = tokens[ti]
        if tok[0] == "star":
            if rec(ti + 1, si):
                return True
            return si < n and wildcard_ok(si) and rec(ti, si + 1)
        if si >= n:
            return False
        if tok[0] == "lit":
            if string[si] != tok[1]:
                return False
            if leading_period(si) and not pattern_leading(ti):
                return False
            return rec(ti + 1, si + 1)
        if not wildcard_ok(si):
            return False
        if tok[0] == "set" and string[si] not in tok[1]:
            return False
        return rec(ti + 1, si + 1)

    return rec(0, 0)
