"""A test-only agent that answers the ops of docs/agent.md by calling the host's C library
through ctypes, so that the oracles can be checked against a real libc without a guest.

Not an oracle: it is the thing under test in tests/test_oracles.py. It follows the reply
fields of docs/agent.md exactly (decimal numbers, symbolic errno, offsets for pointers).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_mod
import os

from conformance.agent import AgentError

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

C_ERRNO_NAMES = {errno_mod.ERANGE: "ERANGE", errno_mod.EINVAL: "EINVAL",
                 errno_mod.EOVERFLOW: "EOVERFLOW"}
FNM = {"PATHNAME": 1, "NOESCAPE": 2, "PERIOD": 4}   # glibc's values
FNM_NOMATCH = 1


class Tm(ctypes.Structure):
    _fields_ = [("tm_sec", ctypes.c_int), ("tm_min", ctypes.c_int), ("tm_hour", ctypes.c_int),
                ("tm_mday", ctypes.c_int), ("tm_mon", ctypes.c_int), ("tm_year", ctypes.c_int),
                ("tm_wday", ctypes.c_int), ("tm_yday", ctypes.c_int), ("tm_isdst", ctypes.c_int),
                ("tm_gmtoff", ctypes.c_long), ("tm_zone", ctypes.c_char_p)]


TM_FIELDS = ("sec", "min", "hour", "mday", "mon", "year", "wday", "yday", "isdst")


def _sig(name, restype, *argtypes):
    f = getattr(libc, name)
    f.restype, f.argtypes = restype, list(argtypes)
    return f


_P = ctypes.c_char_p
_PP = ctypes.POINTER(ctypes.c_char_p)
_strtol = _sig("strtol", ctypes.c_long, _P, ctypes.c_void_p, ctypes.c_int)
_strtoll = _sig("strtoll", ctypes.c_longlong, _P, ctypes.c_void_p, ctypes.c_int)
_strtoul = _sig("strtoul", ctypes.c_ulong, _P, ctypes.c_void_p, ctypes.c_int)
_strtoull = _sig("strtoull", ctypes.c_ulonglong, _P, ctypes.c_void_p, ctypes.c_int)
_strtod = _sig("strtod", ctypes.c_double, _P, ctypes.c_void_p)
_gmtime = _sig("gmtime", ctypes.POINTER(Tm), ctypes.POINTER(ctypes.c_int64))
_mktime = _sig("mktime", ctypes.c_int64, ctypes.POINTER(Tm))
_strftime = _sig("strftime", ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, _P,
                 ctypes.POINTER(Tm))
_tzset = _sig("tzset", None)
_fnmatch = _sig("fnmatch", ctypes.c_int, _P, _P, ctypes.c_int)
_CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


@_CMP
def _int_cmp(a, b):
    x = ctypes.cast(a, ctypes.POINTER(ctypes.c_int))[0]
    y = ctypes.cast(b, ctypes.POINTER(ctypes.c_int))[0]
    return (x > y) - (x < y)


_qsort = _sig("qsort", None, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, _CMP)
_bsearch = _sig("bsearch", ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                ctypes.c_size_t, _CMP)


def _b(arg) -> bytes:
    return arg if isinstance(arg, bytes) else str(arg).encode()


def _errname() -> bytes:
    e = ctypes.get_errno()
    return b"0" if e == 0 else C_ERRNO_NAMES.get(e, str(e)).encode()


def _tm_reply(tm: Tm) -> dict[str, bytes]:
    return {k: str(getattr(tm, "tm_" + k)).encode() for k in TM_FIELDS}


class LibcAgent:
    """Implements Agent.call for the ops the properties use."""

    def __init__(self):
        self.calls: list[tuple] = []
        os.environ["TZ"] = "UTC0"    # as agent mode does in the guest
        _tzset()

    def call(self, op: str, *args) -> dict[str, bytes]:
        self.calls.append((op, *args))
        handler = getattr(self, "op_" + op, None)
        if handler is None:
            raise AgentError(op, f"unknown op {op}")
        return handler(*args)

    # -- stdlib numbers
    def _strto(self, func, s, base):
        buf = ctypes.create_string_buffer(_b(s))
        end = ctypes.c_void_p(0)
        ctypes.set_errno(0)
        r = func(ctypes.cast(buf, _P), ctypes.byref(end), int(base))
        err = _errname()
        offset = -1 if not end.value else end.value - ctypes.addressof(buf)
        return {"ret": str(r).encode(), "end": str(offset).encode(), "errno": err}

    def op_strtol(self, s, base):
        return self._strto(_strtol, s, base)

    def op_strtoll(self, s, base):
        return self._strto(_strtoll, s, base)

    def op_strtoul(self, s, base):
        return self._strto(_strtoul, s, base)

    def op_strtoull(self, s, base):
        return self._strto(_strtoull, s, base)

    def op_strtod(self, s):
        buf = ctypes.create_string_buffer(_b(s))
        end = ctypes.c_void_p(0)
        ctypes.set_errno(0)
        r = _strtod(ctypes.cast(buf, _P), ctypes.byref(end))
        err = _errname()
        bits = ctypes.c_uint64.from_buffer(ctypes.c_double(r)).value
        return {"bits": b"%016x" % bits, "end": str(end.value - ctypes.addressof(buf)).encode(),
                "errno": err}

    # -- stdio
    def op_snprintf(self, size, fmt, vtype, value):
        size = int(size)
        buf = ctypes.create_string_buffer(520)
        if vtype == "ll":
            args = [ctypes.c_longlong(int(value))]
        elif vtype == "ull":
            args = [ctypes.c_ulonglong(int(value))]
        elif vtype == "dbl":
            args = [ctypes.c_double.from_buffer(ctypes.c_uint64(int(value, 16)))]
        elif vtype == "str":
            args = [ctypes.c_char_p(_b(value))]
        elif vtype == "chr":
            args = [ctypes.c_int(int(value))]
        else:
            args = []
        ret = libc.snprintf(buf if size else None, ctypes.c_size_t(size), ctypes.c_char_p(_b(fmt)),
                            *args)
        return {"ret": str(ret).encode(), "out": buf.value if size else b""}

    # -- time
    def op_gmtime(self, t):
        tt = ctypes.c_int64(int(t))
        ctypes.set_errno(0)
        p = _gmtime(ctypes.byref(tt))
        err = _errname()
        if not p:
            return {"null": b"1", "errno": err, **{k: b"0" for k in TM_FIELDS}}
        return {"null": b"0", "errno": err, **_tm_reply(p.contents)}

    def op_mktime(self, sec, min_, hour, mday, mon, year, isdst):
        tm = Tm(int(sec), int(min_), int(hour), int(mday), int(mon), int(year), 0, 0, int(isdst))
        ctypes.set_errno(0)
        r = _mktime(ctypes.byref(tm))
        return {"ret": str(r).encode(), "errno": _errname(), **_tm_reply(tm)}

    def op_strftime(self, size, fmt, *fields):
        tm = Tm(*(int(v) for v in fields))
        buf = ctypes.create_string_buffer(520)
        r = _strftime(buf, int(size), _b(fmt), ctypes.byref(tm))
        return {"ret": str(r).encode(), "out": buf.raw[:r] if r else b""}

    # -- sorting
    def op_qsort(self, data):
        values = [int(x) for x in _b(data).split(b",")] if data else []
        arr = (ctypes.c_int * max(1, len(values)))(*values)
        _qsort(arr, len(values), ctypes.sizeof(ctypes.c_int), _int_cmp)
        return {"out": ",".join(str(arr[i]) for i in range(len(values))).encode()}

    def op_bsearch(self, data, key):
        values = [int(x) for x in _b(data).split(b",")] if data else []
        arr = (ctypes.c_int * max(1, len(values)))(*values)
        k = ctypes.c_int(int(key))
        p = _bsearch(ctypes.byref(k), arr, len(values), ctypes.sizeof(ctypes.c_int), _int_cmp)
        idx = -1 if not p else (p - ctypes.addressof(arr)) // ctypes.sizeof(ctypes.c_int)
        return {"idx": str(idx).encode()}

    # -- strings
    def _ptr_op(self, name, s, *rest):
        buf = ctypes.create_string_buffer(_b(s), len(_b(s)) + 1)
        f = getattr(libc, name)
        f.restype = ctypes.c_void_p
        p = f(buf, *rest)
        return {"idx": str(-1 if not p else p - ctypes.addressof(buf)).encode()}

    def op_strlen(self, s):
        libc.strlen.restype = ctypes.c_size_t
        return {"ret": str(libc.strlen(_b(s))).encode()}

    def op_strcmp(self, a, b):
        return {"ret": str(libc.strcmp(_b(a), _b(b))).encode()}

    def op_strncmp(self, a, b, n):
        return {"ret": str(libc.strncmp(_b(a), _b(b), ctypes.c_size_t(int(n)))).encode()}

    def op_memcmp(self, a, b, n):
        return {"ret": str(libc.memcmp(_b(a), _b(b), ctypes.c_size_t(int(n)))).encode()}

    def op_strchr(self, s, c):
        return self._ptr_op("strchr", s, ctypes.c_int(int(c)))

    def op_strrchr(self, s, c):
        return self._ptr_op("strrchr", s, ctypes.c_int(int(c)))

    def op_memchr(self, s, c, n):
        return self._ptr_op("memchr", s, ctypes.c_int(int(c)), ctypes.c_size_t(int(n)))

    def op_strstr(self, hay, needle):
        return self._ptr_op("strstr", hay, ctypes.c_char_p(_b(needle)))

    def op_strpbrk(self, s, accept):
        return self._ptr_op("strpbrk", s, ctypes.c_char_p(_b(accept)))

    def op_strspn(self, s, accept):
        libc.strspn.restype = ctypes.c_size_t
        return {"ret": str(libc.strspn(_b(s), _b(accept))).encode()}

    def op_strcspn(self, s, reject):
        libc.strcspn.restype = ctypes.c_size_t
        return {"ret": str(libc.strcspn(_b(s), _b(reject))).encode()}

    def op_strncpy(self, src, n):
        n = int(n)
        dst = ctypes.create_string_buffer(b"\xaa" * (n + 8), n + 8)
        libc.strncpy(dst, _b(src), ctypes.c_size_t(n))
        return {"out": dst.raw[:n]}

    # -- patterns
    def op_fnmatch(self, pattern, string, flags):
        bits = 0
        for name in filter(None, str(flags).split("|")):
            bits |= FNM[name]
        r = _fnmatch(_b(pattern), _b(string), bits)
        return {"ret": b"0" if r == 0 else b"FNM_NOMATCH" if r == FNM_NOMATCH else str(r).encode()}
