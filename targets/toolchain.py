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
headers in the include directories, the flags and the compiler's identity (binary sha256 and
version), so an unchanged build is a lookup.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from targets.definition import Target
from targets.errors import TargetError
from targets.hashing import file_sha256

COMPILE_TIMEOUT_S = 600
# Header suffixes hashed into the cache key; the include dirs are the project's own.
HEADER_SUFFIXES = (".h", ".inc")


class Toolchain:
    """A compiler driver with its flags; `compiles` counts compiler invocations."""

    def __init__(self, cc: str, cflags: Sequence[str] = (), ldflags: Sequence[str] = (),
                 packages: Sequence[str] = ()):
        self.cc = cc
        self.cflags = tuple(cflags)
        self.ldflags = tuple(ldflags)
        self.packages = tuple(packages)
        self.compiles = 0
        self._version: str | None = None
        self._sha256: str | None = None
        self._libc_sha256: str | None = None

    @classmethod
    def for_target(cls, target: Target) -> Toolchain:
        spec = target.toolchain
        return cls(spec.cc, spec.cflags, spec.ldflags, spec.packages)

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

    def libc_path(self) -> Path | None:
        """The static C library the compiler links (`-print-file-name=libc.a`), or None."""
        result = _run([str(self.path()), "-print-file-name=libc.a"], timeout=60)
        # gcc prints the bare name back when it cannot find the file.
        found = Path(result.stdout.strip())
        return found if found.is_absolute() and found.is_file() else None

    def libc_sha256(self) -> str:
        """sha256 of `libc_path()`, or "none".

        A C library update changes a static binary without changing the compiler, so the build
        key includes it.
        """
        if self._libc_sha256 is None:
            found = self.libc_path()
            self._libc_sha256 = "none" if found is None else file_sha256(found)
        return self._libc_sha256

    def to_json(self) -> dict[str, str]:
        """For the bundle manifest's tools.compiler."""
        return {"command": self.cc, "version": self.version(), "sha256": self.sha256()}

    def command(self, sources: Sequence[Path], include_dirs: Sequence[Path],
                output: Path) -> list[str]:
        """The one compile-and-link command line (absolute paths; run it from "/")."""
        sources = [Path(s).resolve() for s in sources]
        include_dirs = [Path(d).resolve() for d in include_dirs]
        prefixes = {str(s.parent) + "/" for s in sources} | {str(d) + "/" for d in include_dirs}
        # GCC tries the last -ffile-prefix-map first: put the longest (most specific) last.
        maps = [f"-ffile-prefix-map={p}=" for p in sorted(prefixes, key=lambda p: (len(p), p))]
        return [str(self.path()), *self.cflags, *maps,
                *(f"-I{d}" for d in include_dirs),
                *(str(s) for s in sources),
                "-o", str(Path(output).resolve()), *self.ldflags]

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
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            cmd = self.command(sources, include_dirs, tmp)
            self.compiles += 1
            env = {**os.environ, "LC_ALL": "C", "SOURCE_DATE_EPOCH": "0"}
            result = _run(cmd, timeout=COMPILE_TIMEOUT_S, env=env, cwd="/")
            if result.returncode != 0:
                names = " ".join(Path(s).name for s in sources)
                raise TargetError(f"{self.cc} failed to build {output.name} from {names}:\n"
                                  f"{result.stderr.strip()}")
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o755)
            os.replace(tmp, output)
        finally:
            tmp.unlink(missing_ok=True)

    def build_key(self, sources: Sequence[Path], include_dirs: Sequence[Path]) -> str:
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
        return digest.hexdigest()

    def cached_build(self, sources: Sequence[Path], include_dirs: Sequence[Path],
                     cache_dir: Path, name: str = "pcert-runtime") -> Path:
        """The binary built from these inputs: from `cache_dir/<key>/<name>` if built before."""
        key = self.build_key(sources, include_dirs)
        output = Path(cache_dir) / key / name
        if output.is_file():
            return output
        self.compile_and_link(sources, include_dirs, output)
        return output


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
