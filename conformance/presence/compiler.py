"""Run the target's compiler for presence checks: syntax checks, preprocessing, linking.

The target's own compiler, flags and libraries are used, except the flags that would change
what the headers declare (feature-test macros, -std) or what is reported (warnings,
optimisation): those come from the edition being checked.

>>> from targets.toolchain import Toolchain
>>> from conformance.presence.scope import EDITIONS
>>> c = Compiler(Toolchain("gcc", ["-std=c99", "-O2", "-D_GNU_SOURCE", "-Wall", "-march=x86-64"]),
...              EDITIONS["2024"])
>>> c.flags("xsi")[:4]
['-march=x86-64', '-std=c17', '-D_XOPEN_SOURCE=800', '-w']

Diagnostics are read in the C locale with paths relative to a scratch directory, so the same
compiler gives the same text wherever it runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from targets.errors import TargetError
from targets.toolchain import Toolchain

from .scope import Edition

TIMEOUT_S = 120
# Flags of the target that we replace: feature-test macros, the C edition, warnings (any
# warning is noise here; only errors decide), optimisation and debug info.
_FEATURE_MACRO = re.compile(
    r"^(_POSIX_C_SOURCE|_POSIX_SOURCE|_XOPEN_SOURCE|_XOPEN_SOURCE_EXTENDED|_GNU_SOURCE|"
    r"_DEFAULT_SOURCE|_BSD_SOURCE|_SVID_SOURCE|_ISOC\w*_SOURCE|_ALL_SOURCE|_DARWIN_C_SOURCE|"
    r"_NETBSD_SOURCE)(=.*)?$")
_DROPPED = re.compile(
    r"^(-std=.*|-ansi|-O.*|-g.*|-pedantic.*|-W(?![lap],).*|-c|-S|-E|-fsyntax-only)$")
# The data leaves `restrict` out of prototypes; a header that follows the standard and keeps it
# would otherwise "mismatch" wherever it qualifies a pointed-to type.
NO_RESTRICT = ("-Drestrict=", "-D__restrict=", "-D__restrict__=")
DIAGNOSTIC_FLAGS = ("-w", "-fno-diagnostics-color", "-fno-diagnostics-show-caret",
                    "-fmessage-length=0")
EXTENSION_MACROS = ("-D_GNU_SOURCE", "-D_DEFAULT_SOURCE", "-D_BSD_SOURCE")
# The standard libraries of POSIX's c99 utility, linked when the toolchain has them.
POSIX_LIBRARIES = ("m", "rt", "pthread")
MAX_REASON_CHARS = 1500
MAX_REASON_LINES = 16


@dataclass(frozen=True)
class Outcome:
    ok: bool
    stderr: str
    stdout: str = ""
    command: tuple[str, ...] = ()


def target_flags(flags) -> list[str]:
    """The target's flags minus those presence checks replace.

    >>> target_flags(["-O2", "-D", "_GNU_SOURCE", "-D", "FOO=1", "-Wl,-z,now", "-Werror"])
    ['-D', 'FOO=1', '-Wl,-z,now']
    """
    flags, kept, i = list(flags), [], 0
    while i < len(flags):
        group = flags[i:i + 2] if flags[i] in ("-D", "-U") else flags[i:i + 1]
        i += len(group)
        joined = "".join(group)
        if joined.startswith(("-D", "-U")) and _FEATURE_MACRO.match(joined[2:]):
            continue
        if not _DROPPED.match(joined):
            kept += group
    return kept


class Compiler:
    """The target's compiler driven for one edition; counts the processes it starts."""

    def __init__(self, toolchain: Toolchain, edition: Edition):
        self.toolchain = toolchain
        self.edition = edition
        self.invocations = 0
        self._cc: str | None = None
        self._libraries: list[str] | None = None

    @property
    def cc(self) -> str:
        if self._cc is None:
            self._cc = str(self.toolchain.path())
        return self._cc

    def flags(self, level: str, *, extensions: bool = False) -> list[str]:
        """Compile flags for a unit at `level` (base | xsi)."""
        return [*target_flags(self.toolchain.cflags), f"-std={self.edition.c_standard}",
                *self.edition.macros(level), *(EXTENSION_MACROS if extensions else ()),
                *DIAGNOSTIC_FLAGS]

    def identity(self) -> dict:
        """What decides every result besides the sources: compiler, C library and flags."""
        return {"command": self.toolchain.cc, "version": self.toolchain.version(),
                "sha256": self.toolchain.sha256(), "libc_sha256": self.toolchain.libc_sha256(),
                "cflags": list(self.toolchain.cflags), "ldflags": list(self.toolchain.ldflags)}

    def libraries(self, known: list[str] | None = None) -> list[str]:
        """`-lm -lrt -lpthread`, each where the toolchain has that library (`known`: the
        answer of an earlier probe of the same toolchain, from a cache)."""
        if known is not None:
            self._libraries = list(known)
        if self._libraries is None:
            static = "-static" in self.toolchain.ldflags
            found = []
            for name in POSIX_LIBRARIES:
                for suffix in ((".a",) if static else (".so", ".a")):
                    result = self._run([self.cc, *target_flags(self.toolchain.cflags),
                                        f"-print-file-name=lib{name}{suffix}"], Path("/"))
                    path = Path(result.stdout.strip())
                    if result.returncode == 0 and path.is_absolute() and path.exists():
                        found.append(f"-l{name}")
                        break
            self._libraries = found
        return self._libraries

    # -- the three operations --------------------------------------------------------------

    def syntax(self, name: str, text: str, level: str, *, extensions: bool = False,
               keep_preprocessed: bool = False) -> Outcome:
        """Compile `text` as file `name` without generating code.

        With `keep_preprocessed`, the same compiler run also keeps its preprocessed output,
        macro definitions included (GCC's -save-temps with -dD), in `stdout`: the namespace
        check then costs no second run. Empty where the compiler keeps none.
        """
        flags = [*self.flags(level, extensions=extensions), *NO_RESTRICT]
        keep = ["-save-temps", "-Wp,-dD"] if keep_preprocessed else []
        with _scratch() as work:
            (work / name).write_text(text, encoding="utf-8")
            result = self._run([self.cc, *flags, *keep, "-fsyntax-only", name], work)
            kept = sorted(work.glob("*.i"))
            preprocessed = kept[0].read_text(errors="replace") if keep and kept else ""
        return Outcome(result.returncode == 0, result.stderr, preprocessed,
                       command=(self.cc, *flags, "-fsyntax-only", name))

    def preprocess(self, name: str, text: str, level: str, extra: tuple[str, ...] = ()) -> Outcome:
        flags = [*self.flags(level), *extra]
        with _scratch() as work:
            (work / name).write_text(text, encoding="utf-8")
            result = self._run([self.cc, *flags, "-E", name], work)
        return Outcome(result.returncode == 0, result.stderr, result.stdout,
                       command=(self.cc, *flags, "-E", name))

    def link(self, name: str, text: str, level: str) -> Outcome:
        """Compile `text` to an object, then link it into a program with the target's
        ldflags and the POSIX libraries; the object has a fixed name, so diagnostics do too."""
        flags = self.flags(level)
        obj = Path(name).with_suffix(".o").name
        link_cmd = [self.cc, *target_flags(self.toolchain.cflags), obj, "-o", "a.out",
                    *self.toolchain.ldflags, *self.libraries()]
        with _scratch() as work:
            (work / name).write_text(text, encoding="utf-8")
            compiled = self._run([self.cc, *flags, "-c", name, "-o", obj], work)
            if compiled.returncode != 0:
                return Outcome(False, compiled.stderr, command=tuple(link_cmd))
            linked = self._run(link_cmd, work)
        return Outcome(linked.returncode == 0, linked.stderr, command=(
            self.cc, *flags, "-c", name, "-o", obj, "&&", *link_cmd))

    def link_command(self, name: str, level: str) -> list[str]:
        """The commands `link` runs, for the record (`&&` between the two)."""
        obj = Path(name).with_suffix(".o").name
        return [self.cc, *self.flags(level), "-c", name, "-o", obj, "&&", self.cc,
                *target_flags(self.toolchain.cflags), obj, "-o", "a.out",
                *self.toolchain.ldflags, *self.libraries()]

    def _run(self, cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
        self.invocations += 1
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        env.pop("GCC_COLORS", None)
        try:
            return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                                  errors="replace", timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise TargetError(f"{Path(cmd[0]).name} did not finish within {TIMEOUT_S} s "
                              f"checking {cmd[-1]}") from None
        except OSError as exc:
            raise TargetError(f"{cmd[0]}: cannot run: {exc.strerror}") from None


class _scratch:
    """A private scratch directory, removed afterwards."""

    def __enter__(self) -> Path:
        self._dir = tempfile.TemporaryDirectory(prefix="pcert-presence-")
        return Path(self._dir.name)

    def __exit__(self, *exc) -> None:
        self._dir.cleanup()


_NOISE = re.compile(r"^(compilation terminated\.|collect2: error: ld returned .*|"
                    r"\d+ errors? generated\.)$")


def diagnostic(stderr: str, *, lines: int = MAX_REASON_LINES, chars: int = MAX_REASON_CHARS) -> str:
    """The compiler's or linker's own messages, trimmed and bounded for a result's reason.

    >>> diagnostic("t.c:3:1: error: x\\ncompilation terminated.\\n")
    't.c:3:1: error: x'
    """
    kept = [line.rstrip() for line in stderr.splitlines()
            if line.strip() and not _NOISE.match(line.strip())]
    text = "\n".join(kept[:lines])
    if len(kept) > lines:
        text += f"\n[... {len(kept) - lines} more lines]"
    if len(text) > chars:
        text = text[:chars] + " [...]"
    return text or "(the compiler failed without a message)"


def error_lines(stderr: str, file: str) -> list[int]:
    """Line numbers of `file` at which the compiler reported an error, in order.

    >>> error_lines("u.c:7:3: error: a\\n/usr/include/x.h:3:1: note: b\\nu.c:9: error: c", "u.c")
    [7, 9]
    """
    pattern = re.compile(rf"^{re.escape(file)}:(\d+):(?:\d+:)? (?:fatal )?error:")
    return [int(m.group(1)) for m in map(pattern.match, stderr.splitlines()) if m]


def linker_blame(stderr: str, prefix: str) -> list[int]:
    """Indexes N of the functions `<prefix>N` that the linker names as referring to a missing
    symbol (GNU ld and lld both say "in function ...").

    >>> linker_blame("ld: link.o: in function `pcert_l4':\\nlink.c:(.text+0x4): undefined "
    ...              "reference to `crypt'", "pcert_l")
    [4]
    """
    return [int(n) for n in re.findall(rf"function [`'\"]?{re.escape(prefix)}(\d+)\b", stderr)]
