"""The C toolchain that builds the guest runtime and its procedures into one binary.

>>> tc = Toolchain.for_target(load_target("linux-x86_64"))         # doctest: +SKIP
>>> tc.version()                                                    # doctest: +SKIP
'gcc (Debian 12.2.0-14+deb12u1) 12.2.0'
>>> init = tc.cached_build([Path("runtime/runtime.c"), Path("gen/procs.c")],
...                        [Path("runtime")], cache_dir)            # doctest: +SKIP

Builds are reproducible: the same sources, flags and compiler give a byte-identical binary,
wherever the sources lie. Directory prefixes are mapped away (-ffile-prefix-map, so __FILE__
is "file-io.c", not "/tmp/xyz/file-io.c"), the compiler runs from "/" so the recorded working
directory never varies, and SOURCE_DATE_EPOCH pins __DATE__ and __TIME__.

`cached_build` keys its output by the sha256 of the source contents (and their names), the
headers in the include directories, the flags and the compiler's identity (binary sha256,
version, and the libraries a link reads), so an unchanged build is a lookup.

Partial builds. Not every C library has every interface (picolibc has no <pthread.h>, no
mkdir()). Sources named `optional` may fail: as glibc's conform/ does, everything is compiled
together first and one by one only on failure. A source that does not compile is left out; each
symbol the link then misses gets a stub that ends the test case calling it UNSUPPORTED, with
the compiler's error or "not provided by this target's libraries" as the reason:

>>> info = tc.cached_build_info([rt / "pcert.c", *generated], [rt], cache_dir,
...                             optional=generated)                 # doctest: +SKIP
>>> info.stubs["tc_TC_pthread_create_001"]                         # doctest: +SKIP
'not built for this target: threads.c:6:10: fatal error: pthread.h: No such file or directory'
>>> info.stubs["mkdir"]                                             # doctest: +SKIP
"mkdir: not provided by this target's libraries (undefined at link time)"

The runtime (the sources not named optional) must build and link on its own, with an empty
case table; a stub is never made for `main` or a `pcert_` symbol. A stub is a function: a test
case that reads a missing *variable* would read code, so stubs are listed in `BuildInfo` (and
so in the evidence) for review.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from targets.definition import Target
from targets.errors import TargetError
from targets.hashing import file_sha256, write_atomic

COMPILE_TIMEOUT_S = 600
# Header suffixes hashed into the cache key; the include dirs are the project's own.
HEADER_SUFFIXES = (".h", ".inc")
STUB_SOURCE = "pcert_stubs.c"
SIDECAR = "build.json"
_EMPTY_TABLE = b"""#include "pcert.h"
const struct pcert_case pcert_cases[] = { { 0, 0, 0, 0 } };
const unsigned pcert_ncases = 0;
"""
# GNU ld: undefined reference to `name'; lld: undefined symbol: name.
_UNDEFINED = re.compile(r"undefined (?:reference to [`'\u2018]([^'`\u2019\s]+)['\u2019]"
                        r"|symbol: (\S+))")
_C_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What `-Wl,--trace` lists that identifies the libraries: archives and shared objects.
_LIBRARY = re.compile(r"^(/\S+?\.(?:a|so(?:\.\d+)*))(?:\(.*\))?$")


@dataclass(frozen=True)
class BuildInfo:
    """A built binary and what could not be built into it (both empty for a complete build).

    `left_out`: source name -> the compiler's first error; `stubs`: symbol -> the reason the
    test case calling it reports (UNSUPPORTED); `stub_source`: the C file defining the stubs.
    """

    path: Path
    left_out: dict[str, str]
    stubs: dict[str, str]
    stub_source: bytes | None = None

    @property
    def complete(self) -> bool:
        return not self.left_out and not self.stubs

    def to_json(self) -> dict[str, Any]:
        """For the bundle: what was left out and stubbed (the stub source is a file of its own)."""
        return {"left_out": dict(sorted(self.left_out.items())),
                "stubs": dict(sorted(self.stubs.items()))}


class Toolchain:
    """A compiler driver with its flags; `compiles` counts compiler invocations.

    Flags may hold {sysroot} (the definition's sysroot) and {cc_include} (the compiler's own
    header directory); `cflags` and `ldflags` give them filled in.
    """

    def __init__(self, cc: str, cflags: Sequence[str] = (), ldflags: Sequence[str] = (),
                 packages: Sequence[str] = (), sysroot: Path | None = None):
        self.cc = cc
        self._cflags = tuple(cflags)
        self._ldflags = tuple(ldflags)
        self.packages = tuple(packages)
        self.sysroot = sysroot
        self.compiles = 0
        self._version: str | None = None
        self._sha256: str | None = None
        self._cc_include: str | None = None
        self._probe: tuple[str | None, tuple[Path, ...]] | None = None

    @classmethod
    def for_target(cls, target: Target) -> Toolchain:
        spec = target.toolchain
        return cls(spec.cc, spec.cflags, spec.ldflags, spec.packages, spec.sysroot)

    @property
    def cflags(self) -> tuple[str, ...]:
        return self._expand(self._cflags)

    @property
    def ldflags(self) -> tuple[str, ...]:
        return self._expand(self._ldflags)

    def _expand(self, flags: tuple[str, ...]) -> tuple[str, ...]:
        if not any("{" in f for f in flags):
            return flags
        values = {"{sysroot}": str(self.sysroot) if self.sysroot else "{sysroot}"}
        if any("{cc_include}" in f for f in flags):
            values["{cc_include}"] = self.cc_include()
        out = []
        for flag in flags:
            for placeholder, value in values.items():
                flag = flag.replace(placeholder, value)
            out.append(flag)
        return tuple(out)

    def cc_include(self) -> str:
        """The compiler's own header directory (stddef.h, stdarg.h), for -nostdinc builds."""
        if self._cc_include is None:
            result = _run([str(self.path()), "-print-file-name=include"], timeout=60)
            found = result.stdout.strip()
            if result.returncode != 0 or not Path(found).is_dir():
                raise TargetError(f"{self.cc} -print-file-name=include names no directory "
                                  f"({found or result.stderr.strip()}): {{cc_include}} needs it")
            self._cc_include = found
        return self._cc_include

    def path(self) -> Path:
        """The compiler as found on PATH (run by this name: gcc reads its argv[0])."""
        found = shutil.which(self.cc)
        if found is None:
            install = " ".join(self.packages) or self.cc
            raise TargetError(f"{self.cc} not found: apt-get install {install}")
        return Path(found)

    def version(self) -> str:
        """First line of `cc --version`."""
        if self._version is None:
            result = _run([str(self.path()), "--version"], timeout=60)
            lines = result.stdout.splitlines()
            if result.returncode != 0 or not lines:
                raise TargetError(f"{self.cc} --version failed: {result.stderr.strip()}")
            self._version = lines[0].strip()
        return self._version

    def sha256(self) -> str:
        """sha256 of the compiler binary, symlinks resolved (gcc -> x86_64-linux-gnu-gcc-12)."""
        if self._sha256 is None:
            self._sha256 = file_sha256(Path(os.path.realpath(self.path())))
        return self._sha256

    def probe_link(self) -> tuple[str | None, tuple[Path, ...]]:
        """Link a trivial program with the flags: (None, libraries read) or (what failed, ())."""
        if self._probe is None:
            with tempfile.TemporaryDirectory(prefix="pcert-probe-") as tmp:
                (Path(tmp) / "probe.c").write_text("int main(void) { return 0; }\n")
                result = _run([str(self.path()), *self.cflags, "probe.c", "-o", "probe",
                               *self.ldflags, "-Wl,--trace"], timeout=COMPILE_TIMEOUT_S,
                              cwd=tmp, env={**os.environ, "LC_ALL": "C"})
            if result.returncode != 0:
                lines = result.stderr.strip().splitlines() or ["no diagnostics"]
                self._probe = (f"{self.cc} cannot link a trivial program with the target's "
                               f"flags: {lines[-1] if len(lines) == 1 else lines[0]}", ())
            else:
                found = {Path(os.path.realpath(m.group(1)))
                         for line in result.stdout.splitlines()
                         if (m := _LIBRARY.match(line.strip()))}
                self._probe = (None, tuple(sorted(found)))
        return self._probe

    def libc_path(self) -> Path | None:
        """The C library a link reads (libc.a, or libc.so for a dynamic link), or None."""
        return next((p for p in self.probe_link()[1] if p.name.startswith("libc.")), None)

    def libc_sha256(self) -> str:
        """sha256 over the libraries a link reads (C library, libm, libgcc, ...), or "none".

        A C library update changes a static binary without changing the compiler, so the build
        key includes it.
        """
        libraries = self.probe_link()[1]
        if not libraries:
            return "none"
        digest = hashlib.sha256()
        for library in libraries:
            digest.update(f"{library.name}:{file_sha256(library)}\n".encode())
        return digest.hexdigest()

    def to_json(self) -> dict[str, str]:
        """For the bundle manifest's tools.compiler."""
        return {"command": self.cc, "version": self.version(), "sha256": self.sha256()}

    def _compile_flags(self, sources: Sequence[Path], include_dirs: Sequence[Path]) -> list[str]:
        prefixes = {str(s.parent) + "/" for s in sources} | {str(d) + "/" for d in include_dirs}
        # GCC tries the last -ffile-prefix-map first: put the longest (most specific) last.
        maps = [f"-ffile-prefix-map={p}=" for p in sorted(prefixes, key=lambda p: (len(p), p))]
        return [*self.cflags, *maps, *(f"-I{d}" for d in include_dirs)]

    def command(self, sources: Sequence[Path], include_dirs: Sequence[Path],
                output: Path) -> list[str]:
        """The one compile-and-link command line (absolute paths; run it from "/")."""
        sources = [Path(s).resolve() for s in sources]
        include_dirs = [Path(d).resolve() for d in include_dirs]
        return [str(self.path()), *self._compile_flags(sources, include_dirs),
                *(str(s) for s in sources), "-o", str(Path(output).resolve()), *self.ldflags]

    def compile_and_link(self, sources: Sequence[Path], include_dirs: Sequence[Path],
                         output: Path) -> None:
        """Compile and link `sources` into `output` in one invocation; output appears atomically.

        Raises TargetError carrying the compiler's diagnostics when it fails.
        """
        if not sources:
            raise TargetError("compile_and_link: no source files given")
        for source in sources:
            if not Path(source).is_file():
                raise TargetError(f"{source}: source file not found")
        names = " ".join(Path(s).name for s in sources)
        with _atomic_output(Path(output)) as tmp:
            self._invoke(self.command(sources, include_dirs, tmp),
                         f"{self.cc} failed to build {Path(output).name} from {names}")

    def _invoke(self, cmd: list[str], failure: str) -> None:
        self.compiles += 1
        env = {**os.environ, "LC_ALL": "C", "SOURCE_DATE_EPOCH": "0"}
        result = _run(cmd, timeout=COMPILE_TIMEOUT_S, env=env, cwd="/")
        if result.returncode != 0:
            raise TargetError(f"{failure}:\n{result.stderr.strip()}")

    def build_key(self, sources: Sequence[Path], include_dirs: Sequence[Path],
                  optional: Sequence[Path] = ()) -> str:
        """sha256 over everything that decides the binary's bytes."""
        digest = hashlib.sha256()

        def add(label: str, data: bytes) -> None:
            # Length-prefixed fields: no two different inputs can run together alike.
            digest.update(f"{label}:{len(data)}:".encode() + data)

        add("compiler", json.dumps([self.sha256(), self.version(), self.libc_sha256()]).encode())
        add("flags", json.dumps([self.cflags, self.ldflags]).encode())
        for source in sources:
            source = Path(source)
            add("source", source.name.encode())
            add("content", _read(source))
        for directory in include_dirs:
            directory = Path(directory)
            if not directory.is_dir():
                raise TargetError(f"{directory}: include directory not found")
            add("include", b"")
            for header in sorted(p for p in directory.rglob("*")
                                 if p.is_file() and p.suffix in HEADER_SUFFIXES):
                add("header", header.relative_to(directory).as_posix().encode())
                add("content", header.read_bytes())
        if optional:
            add("optional", json.dumps(sorted(Path(p).name for p in optional)).encode())
        return digest.hexdigest()

    def cached_build(self, sources: Sequence[Path], include_dirs: Sequence[Path],
                     cache_dir: Path, name: str = "pcert-runtime", *,
                     optional: Sequence[Path] = ()) -> Path:
        """The binary built from these inputs: from `cache_dir/<key>/<name>` if built before."""
        return self.cached_build_info(sources, include_dirs, cache_dir, name,
                                      optional=optional).path

    def cached_build_info(self, sources: Sequence[Path], include_dirs: Sequence[Path],
                          cache_dir: Path, name: str = "pcert-runtime", *,
                          optional: Sequence[Path] = ()) -> BuildInfo:
        """As cached_build, with what was left out and stubbed (see the module docstring)."""
        sources = [Path(s).resolve() for s in sources]
        include_dirs = [Path(d).resolve() for d in include_dirs]
        optional = {Path(p).resolve() for p in optional}
        folder = Path(cache_dir) / self.build_key(sources, include_dirs, sorted(optional))
        output = folder / name
        if output.is_file():
            return _read_info(output)
        try:
            self.compile_and_link(sources, include_dirs, output)
        except TargetError:
            if not optional:
                raise
            return self._partial_build(sources, include_dirs, output, optional)
        (folder / SIDECAR).unlink(missing_ok=True)  # no sidecar: built whole
        return BuildInfo(path=output, left_out={}, stubs={})

    # -- partial builds ------------------------------------------------------------------------

    def _partial_build(self, sources: list[Path], include_dirs: list[Path], output: Path,
                       optional: set[Path]) -> BuildInfo:
        with tempfile.TemporaryDirectory(prefix="pcert-partial-") as tmp:
            work = Path(tmp)
            objects, left_out = self._compile_each(sources, include_dirs, work)
            for source in sources:
                if source.name in left_out and source not in optional:
                    raise TargetError(f"{self.cc} cannot build the runtime ({source.name}): "
                                      f"{left_out[source.name]}")
            self._check_runtime_alone([objects[s] for s in sources if s not in optional],
                                      include_dirs, work)
            built = [objects[s] for s in sources if s in objects]
            stubs, stub_source = self._link_with_stubs(built, sources, left_out, include_dirs,
                                                       work / "linked")
            info = BuildInfo(path=output, left_out=left_out, stubs=stubs, stub_source=stub_source)
            if stub_source is not None:
                write_atomic(output.parent / STUB_SOURCE, stub_source)
            # The binary comes last: a cached binary is trusted with the sidecar beside it.
            write_atomic(output.parent / SIDECAR,
                         (json.dumps(info.to_json(), indent=2) + "\n").encode())
            with _atomic_output(output) as final:
                shutil.copyfile(work / "linked", final)
        return info

    def _check_runtime_alone(self, runtime: list[Path], include_dirs: list[Path],
                             work: Path) -> None:
        """The runtime must link with an empty case table: no stub may ever stand in for it."""
        (work / "empty_table.c").write_bytes(_EMPTY_TABLE)
        error = self._compile_one(work / "empty_table.c", include_dirs, work / "empty.o")
        if error is not None:
            raise TargetError(f"{self.cc} cannot compile an empty case table: {error}")
        self._link([*runtime, work / "empty.o"], work / "runtime-alone",
                   f"the runtime does not link on its own with {self.cc}")

    def _link_with_stubs(self, objects: list[Path], sources: list[Path],
                         left_out: dict[str, str], include_dirs: list[Path],
                         output: Path) -> tuple[dict[str, str], bytes | None]:
        """Link; if symbols are missing, once more with stubs for them: (stubs, stub source)."""
        problem = self._try_link(objects, output)
        if problem is None:
            return {}, None
        stubs = self._stub_reasons(problem, sources, left_out)
        source = stub_file(stubs)
        (output.parent / STUB_SOURCE).write_bytes(source)
        error = self._compile_one(output.parent / STUB_SOURCE, include_dirs,
                                  output.parent / "stubs.o", extra=("-fno-builtin", "-w"))
        if error is not None:
            raise TargetError(f"{self.cc} cannot compile the stubs: {error}")
        self._link([*objects, output.parent / "stubs.o"], output,
                   f"{self.cc} cannot link even with stubs for the missing symbols")
        return stubs, source

    def _compile_each(self, sources: list[Path], include_dirs: list[Path],
                      work: Path) -> tuple[dict[Path, Path], dict[str, str]]:
        """Each source to an object, in parallel: (source -> object, name -> first error)."""
        targets = {s: work / f"{i:03d}-{s.stem}.o" for i, s in enumerate(sources)}
        with ThreadPoolExecutor(max_workers=max(1, min(len(sources), os.cpu_count() or 1))) as pool:
            errors = dict(zip(sources, pool.map(
                lambda s: self._compile_one(s, include_dirs, targets[s]), sources)))
        objects = {s: o for s, o in targets.items() if errors[s] is None}
        left_out = {s.name: e for s, e in errors.items() if e is not None}
        return objects, left_out

    def _compile_one(self, source: Path, include_dirs: list[Path], obj: Path,
                     extra: Sequence[str] = ()) -> str | None:
        """Compile one source; None, or the first error line (paths made relative)."""
        self.compiles += 1
        cmd = [str(self.path()), *self._compile_flags([source], include_dirs), *extra,
               "-c", str(source), "-o", str(obj)]
        env = {**os.environ, "LC_ALL": "C", "SOURCE_DATE_EPOCH": "0"}
        result = _run(cmd, timeout=COMPILE_TIMEOUT_S, env=env, cwd="/")
        if result.returncode == 0:
            return None
        lines = [line.replace(str(source.parent) + "/", "")
                 for line in result.stderr.splitlines() if line.strip()]
        return next((line for line in lines if "error" in line), lines[0] if lines else
                    f"{self.cc} exited with status {result.returncode}")

    def _try_link(self, objects: list[Path], output: Path) -> str | None:
        self.compiles += 1
        cmd = [str(self.path()), *self.cflags, *(str(o) for o in objects), "-o", str(output),
               *self.ldflags]
        result = _run(cmd, timeout=COMPILE_TIMEOUT_S, env={**os.environ, "LC_ALL": "C"},
                      cwd=str(output.parent))
        return None if result.returncode == 0 else result.stderr

    def _link(self, objects: list[Path], output: Path, failure: str) -> None:
        problem = self._try_link(objects, output)
        if problem is not None:
            raise TargetError(f"{failure}:\n{problem.strip()}")

    def _stub_reasons(self, link_errors: str, sources: list[Path],
                      left_out: dict[str, str]) -> dict[str, str]:
        missing = sorted({a or b for a, b in _UNDEFINED.findall(link_errors)})
        if not missing:
            raise TargetError(f"{self.cc} failed to link, and not for missing symbols:\n"
                              f"{link_errors.strip()}")
        texts = {s.name: _read(s).decode("utf-8", "replace") for s in sources
                 if s.name in left_out}
        reasons = {}
        for symbol in missing:
            if not _C_NAME.fullmatch(symbol) or symbol == "main" or symbol.startswith("pcert_"):
                raise TargetError(f"{self.cc} could not link the runtime: {symbol} is missing:\n"
                                  f"{link_errors.strip()}")
            # A definition starts a line with its type ("void tc_x(void)"); calls are indented.
            definition = re.compile(rf"^[A-Za-z_][\w \t*]*\b{symbol}\s*\([^;]*?\)\s*(?:\{{|$)",
                                    re.MULTILINE)
            defined_in = next((n for n, text in sorted(texts.items())
                               if definition.search(text)), None)
            reasons[symbol] = (f"not built for this target: {left_out[defined_in]}"
                               if defined_in else
                               f"{symbol}: not provided by this target's libraries "
                               "(undefined at link time)")
        return reasons


def stub_file(stubs: dict[str, str]) -> bytes:
    """The C source of the stubs: one function per missing symbol, in name order.

    >>> print(stub_file({"mkdir": "mkdir: not provided"}).decode().splitlines()[-1])
    void mkdir(void) { pcert_end_case(PCERT_UNSUPPORTED, "", 0, "%s", "mkdir: not provided"); }
    """
    lines = ["/* Generated by pcert (targets/toolchain.py): each function stands in for a symbol",
             " * this target's build could not provide, and ends the test case calling it",
             " * UNSUPPORTED with the reason given. */",
             '#include "pcert.h"', ""]
    for symbol, reason in sorted(stubs.items()):
        lines.append(f"void {symbol}(void);")
        lines.append(f"void {symbol}(void) {{ pcert_end_case(PCERT_UNSUPPORTED, \"\", 0, "
                     f"\"%s\", {_c_string(reason)}); }}")
    return ("\n".join(lines) + "\n").encode()


def _c_string(text: str) -> str:
    """A C string literal of `text`'s UTF-8 bytes; octal escapes for all but plain ASCII."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if 0x20 <= byte < 0x7F and char not in '\\"?':
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _read_info(output: Path) -> BuildInfo:
    """The BuildInfo of a cached binary; no sidecar means it was built whole."""
    try:
        data = json.loads((output.parent / SIDECAR).read_text())
    except (OSError, ValueError):
        return BuildInfo(path=output, left_out={}, stubs={})
    stub_path = output.parent / STUB_SOURCE
    stubs = data.get("stubs", {})
    return BuildInfo(path=output, left_out=data.get("left_out", {}), stubs=stubs,
                     stub_source=stub_path.read_bytes() if stubs and stub_path.is_file() else None)


class _atomic_output:
    """A temporary name next to `path`, renamed to it (executable) when the block succeeds."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                with open(self.tmp, "rb") as f:
                    os.fsync(f.fileno())
                os.chmod(self.tmp, 0o755)
                os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TargetError(f"{path}: cannot read source file: {exc.strerror}") from None


def _run(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None,
         cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                              timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise TargetError(f"{Path(cmd[0]).name} did not finish within {timeout:.0f} s: "
                          f"{' '.join(cmd[:4])} ...") from None
    except OSError as exc:
        raise TargetError(f"{cmd[0]}: cannot run: {exc.strerror}") from None
