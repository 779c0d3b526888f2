"""Target definitions: plain data read from TOML files (targets/definitions/*.toml).

A target says how to build and run an image: toolchain, kernel, image kind and machine. The
definition is data only; toolchain.py, kernel.py, image.py and drivers/ act on it.

>>> t = load_target("linux-x86_64")
>>> t.kind, t.toolchain.cc, t.kernel.meta_package, t.image_kind
('qemu-linux', 'gcc', 'linux-image-cloud-amd64', 'initramfs')
>>> "host" in list_targets()
True
>>> load_target("no-such-target")
Traceback (most recent call last):
  ...
targets.errors.TargetError: unknown target 'no-such-target': known targets are host, linux-x86_64 (or give a path to a .toml file)

Every field is checked on load; a bad one raises TargetError naming the file and the field, so
a typo is caught before any build starts.
"""

from __future__ import annotations

import hashlib
import platform
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from targets.errors import TargetError

DEFINITIONS_DIR = Path(__file__).resolve().parent / "definitions"

KINDS = ("qemu-linux", "host")
IMAGE_KINDS = ("initramfs", "none")
KERNEL_SOURCES = ("debian",)

# Placeholders allowed in machine.args and machine.append; anything else in braces is a typo.
ARGS_PLACEHOLDERS = ("{kernel}", "{image}", "{append}")
APPEND_PLACEHOLDERS = ("{guest_env}",)
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


@dataclass(frozen=True)
class ToolchainSpec:
    """Which compiler and flags build the runtime, and the Debian packages that provide them."""

    cc: str
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    packages: tuple[str, ...]


@dataclass(frozen=True)
class KernelSpec:
    """Where the kernel comes from: a Debian meta package naming the current kernel package."""

    source: str
    meta_package: str


@dataclass(frozen=True)
class MachineSpec:
    """How the image runs: the emulator and its arguments (None on host), and the time limits."""

    qemu: str | None
    packages: tuple[str, ...]
    args: tuple[str, ...]
    append: str | None
    boot_timeout_s: float
    idle_timeout_s: float
    run_timeout_s: float


@dataclass(frozen=True)
class Target:
    """One target definition as loaded; `definition_sha256` identifies the file it came from."""

    name: str
    description: str
    kind: str
    arch: str
    multi_process: bool
    toolchain: ToolchainSpec
    kernel: KernelSpec | None
    image_kind: str
    machine: MachineSpec
    definition_path: Path
    definition_sha256: str

    def to_json(self) -> dict[str, Any]:
        """The definition as the bundle manifest records it (no machine-specific paths).

        >>> load_target("host").to_json()["toolchain"]["ldflags"]
        []
        """
        kernel = None
        if self.kernel is not None:
            kernel = {"source": self.kernel.source, "meta_package": self.kernel.meta_package}
        machine: dict[str, Any] = {
            "boot_timeout_s": self.machine.boot_timeout_s,
            "idle_timeout_s": self.machine.idle_timeout_s,
            "run_timeout_s": self.machine.run_timeout_s,
        }
        if self.machine.qemu is not None:
            machine.update(qemu=self.machine.qemu, packages=list(self.machine.packages),
                           args=list(self.machine.args), append=self.machine.append)
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "arch": self.arch,
            "multi_process": self.multi_process,
            "toolchain": {
                "cc": self.toolchain.cc,
                "cflags": list(self.toolchain.cflags),
                "ldflags": list(self.toolchain.ldflags),
                "packages": list(self.toolchain.packages),
            },
            "kernel": kernel,
            "image": {"kind": self.image_kind},
            "machine": machine,
            "definition": {"file": self.definition_path.name, "sha256": self.definition_sha256},
        }


def list_targets() -> list[str]:
    """Names of the built-in targets, sorted."""
    return sorted(p.stem for p in DEFINITIONS_DIR.glob("*.toml"))


def load_target(name_or_path: str) -> Target:
    """Load a built-in target by name, or a definition file by path (anything ending in .toml).

    Raises TargetError for an unknown name, an unreadable file or any missing or bad field.
    """
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise TargetError(f"{path}: target definition file not found")
    else:
        path = DEFINITIONS_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(list_targets())
            raise TargetError(f"unknown target {name_or_path!r}: known targets are {known} "
                              "(or give a path to a .toml file)")
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TargetError(f"{path}: not valid TOML: {exc}") from None
    return _parse(data, path, hashlib.sha256(raw).hexdigest())


class _Fields:
    """Reads one TOML table, naming the file and dotted field in every complaint."""

    def __init__(self, table: dict[str, Any], path: Path, prefix: str = ""):
        self.table, self.path, self.prefix = table, path, prefix
        self.seen: set[str] = set()

    def error(self, key: str, problem: str) -> TargetError:
        return TargetError(f"{self.path}: field '{self.prefix}{key}': {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], *, required: bool = True) -> Any:
        self.seen.add(key)
        if key not in self.table:
            if required:
                raise self.error(key, "missing")
            return None
        value = self.table[key]
        # bool is an int in Python; a timeout of `true` is a typo, not 1 second.
        wrong_bool = isinstance(value, bool) and bool not in _as_tuple(kind)
        if not isinstance(value, kind) or wrong_bool:
            raise self.error(key, f"must be {_kind_name(kind)}, "
                                  f"got {type(value).__name__} {value!r}")
        return value

    def text(self, key: str, *, choices: tuple[str, ...] | None = None,
             required: bool = True) -> Any:
        value = self.get(key, str, required=required)
        if value is None:
            return None
        if not value.strip():
            raise self.error(key, "must not be empty")
        if choices is not None and value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def strings(self, key: str, *, required: bool = True) -> tuple[str, ...]:
        value = self.get(key, list, required=required)
        if value is None:
            return ()
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{key}[{i}]", f"must be a string, got {item!r}")
        return tuple(value)

    def seconds(self, key: str) -> float:
        value = self.get(key, (int, float))
        if value <= 0:
            raise self.error(key, f"must be a positive number of seconds, got {value!r}")
        return float(value)

    def table_(self, key: str, *, required: bool = True) -> _Fields | None:
        value = self.get(key, dict, required=required)
        if value is None:
            return None
        return _Fields(value, self.path, f"{self.prefix}{key}.")

    def no_others(self) -> None:
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            raise self.error(unknown[0], "unknown field (a typo?)")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", bool: "true or false", int: "a number", float: "a number",
             list: "a list", dict: "a table"}
    return " or ".join(dict.fromkeys(names[k] for k in _as_tuple(kind)))


def _check_placeholders(fields: _Fields, key: str, values: tuple[str, ...],
                        allowed: tuple[str, ...]) -> None:
    for value in values:
        for found in _PLACEHOLDER.findall(value):
            if found not in allowed:
                raise fields.error(key, f"unknown placeholder {found} "
                                        f"(allowed: {' '.join(allowed)})")


def _parse(data: dict[str, Any], path: Path, sha256: str) -> Target:
    top = _Fields(data, path)
    name = top.text("name")
    if name != path.stem:
        raise top.error("name", f"is {name!r} but the file is named {path.name}: make them agree")
    description = top.text("description")
    kind = top.text("kind", choices=KINDS)
    arch = top.text("arch")
    if arch == "native":
        arch = platform.machine()
    multi_process = top.get("multi_process", bool)

    tc = top.table_("toolchain")
    toolchain = ToolchainSpec(cc=tc.text("cc"), cflags=tc.strings("cflags"),
                              ldflags=tc.strings("ldflags"), packages=tc.strings("packages"))
    tc.no_others()

    image = top.table_("image")
    image_kind = image.text("kind", choices=IMAGE_KINDS)
    image.no_others()

    kernel_fields = top.table_("kernel", required=kind == "qemu-linux")
    kernel = None
    if kernel_fields is not None:
        if kind == "host":
            raise top.error("kernel", "a host target boots no kernel: remove the [kernel] table")
        kernel = KernelSpec(source=kernel_fields.text("source", choices=KERNEL_SOURCES),
                            meta_package=kernel_fields.text("meta_package"))
        kernel_fields.no_others()

    m = top.table_("machine")
    if kind == "qemu-linux":
        if image_kind != "initramfs":
            raise image.error("kind", "a qemu-linux target needs kind = \"initramfs\"")
        qemu, packages = m.text("qemu"), m.strings("packages")
        args, append = m.strings("args"), m.text("append")
        _check_placeholders(m, "args", args, ARGS_PLACEHOLDERS)
        _check_placeholders(m, "append", (append,), APPEND_PLACEHOLDERS)
        for needed in ("{kernel}", "{append}", "{image}"):
            if not any(needed in a for a in args):
                raise m.error("args", f"has no {needed} placeholder: QEMU would not get it")
    else:
        if image_kind != "none":
            raise image.error("kind", "a host target runs the binary itself: kind = \"none\"")
        qemu, packages, args, append = None, (), (), None
    machine = MachineSpec(qemu=qemu, packages=packages, args=args, append=append,
                          boot_timeout_s=m.seconds("boot_timeout_s"),
                          idle_timeout_s=m.seconds("idle_timeout_s"),
                          run_timeout_s=m.seconds("run_timeout_s"))
    m.no_others()
    top.no_others()
    return Target(name=name, description=description, kind=kind, arch=arch,
                  multi_process=multi_process, toolchain=toolchain, kernel=kernel,
                  image_kind=image_kind, machine=machine, definition_path=path.resolve(),
                  definition_sha256=sha256)
