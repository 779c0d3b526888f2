"""Target definitions: plain data read from TOML files (targets/definitions/*.toml).

A target says how to build and run an image: toolchain, kernel, image kind and machine. The
definition is data only; toolchain.py, kernel.py, image.py and drivers/ act on it.

>>> t = load_target("linux-x86_64")
>>> t.kind, t.toolchain.cc, t.kernel.meta_package, t.image_kind, t.needs_kernel
('qemu-linux', 'gcc', 'linux-image-cloud-amd64', 'initramfs', True)
>>> b = load_target("baremetal-aarch64-picolibc")
>>> b.kind, b.image_kind, b.needs_kernel, b.multi_process
('qemu-semihost', 'elf', False, False)
>>> "host" in list_targets()
True
>>> load_target("no-such-target")                 # doctest: +ELLIPSIS
Traceback (most recent call last):
  ...
targets.errors.TargetError: unknown target 'no-such-target': known targets are ..., host, ... (or give a path to a .toml file)

Kinds (how a run happens; the driver is chosen by kind, see targets/drivers):

- "host": the runtime binary runs natively (image kind "none").
- "qemu-linux": QEMU boots a Linux kernel with an initramfs whose /init is the runtime.
- "qemu-semihost": QEMU runs one bare-metal ELF (image kind "elf"); console, arguments and exit
  status pass through semihosting. No processes: multi_process must be false.
- "qemu-generic": any QEMU command line (bring your own OS): a kernel is optional, the image
  is an initramfs or the ELF, and nothing about the guest is assumed.

Paths in a definition (toolchain.sysroot, kernel.path) are relative to the definition file.

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

KINDS = ("qemu-linux", "qemu-semihost", "qemu-generic", "host")
IMAGE_KINDS = ("initramfs", "elf", "none")
KERNEL_SOURCES = ("debian", "file")
# The image kinds each kind can run.
KIND_IMAGES = {"qemu-linux": ("initramfs",), "qemu-semihost": ("elf",),
               "qemu-generic": ("initramfs", "elf"), "host": ("none",)}

# Placeholders allowed in machine.args and machine.append; anything else in braces is a typo.
ARGS_PLACEHOLDERS = ("{kernel}", "{image}", "{append}")
APPEND_PLACEHOLDERS = ("{guest_env}",)
# In machine.agent_args: the host end of the agent channel, a Unix socket (docs/agent.md).
AGENT_PLACEHOLDERS = ("{agent_socket}",)
# In toolchain.cflags and ldflags: the definition's sysroot, and the compiler's own header
# directory (`cc -print-file-name=include`), which -nostdinc would otherwise drop.
FLAG_PLACEHOLDERS = ("{sysroot}", "{cc_include}")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
# Linux's COMMAND_LINE_SIZE on x86 and arm64, less its terminating NUL.
DEFAULT_APPEND_MAX = 2047


@dataclass(frozen=True)
class ToolchainSpec:
    """Which compiler and flags build the runtime, and the Debian packages that provide them.

    `sysroot` (absolute, or None) replaces {sysroot} in the flags."""

    cc: str
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    packages: tuple[str, ...]
    sysroot: Path | None = None


@dataclass(frozen=True)
class KernelSpec:
    """Where the kernel comes from.

    source "debian": the meta package naming the current kernel package, fetched for the
    Debian `architecture` (None: this machine's). source "file": `path`, a kernel the user has.
    """

    source: str
    meta_package: str | None = None
    architecture: str | None = None
    path: Path | None = None
    pvh: bool = False   # boot the ELF kernel inside the bzImage through QEMU's PVH entry


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
    append_max: int = DEFAULT_APPEND_MAX
    # The agent channel (docs/agent.md), optional: QEMU arguments that add it, and the device
    # the guest opens. Empty/None: the target has none (a host target always has one).
    agent_args: tuple[str, ...] = ()
    agent_device: str | None = None
    # Boot from a saved VM state (targets/snapshot.py): needs the agent channel, which carries
    # each restored guest's run parameters.
    snapshot: bool = False


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

    @property
    def agent_channel(self) -> bool:
        """Whether agent mode can reach this target (docs/agent.md)."""
        return self.kind == "host" or bool(self.machine.agent_args)

    @property
    def needs_kernel(self) -> bool:
        """Whether a run must find a kernel first (targets.kernel.ensure_kernel)."""
        return self.kernel is not None

    def to_json(self) -> dict[str, Any]:
        """The definition as the bundle manifest records it (no machine-specific paths).

        >>> load_target("host").to_json()["toolchain"]["cc"]
        'gcc'
        """
        kernel = None
        if self.kernel is not None:
            kernel = {"source": self.kernel.source, "meta_package": self.kernel.meta_package,
                      "pvh": self.kernel.pvh,
                      "architecture": self.kernel.architecture,
                      "file": self.kernel.path.name if self.kernel.path else None}
        machine: dict[str, Any] = {
            "boot_timeout_s": self.machine.boot_timeout_s,
            "idle_timeout_s": self.machine.idle_timeout_s,
            "run_timeout_s": self.machine.run_timeout_s,
        }
        if self.machine.qemu is not None:
            machine.update(qemu=self.machine.qemu, packages=list(self.machine.packages),
                           args=list(self.machine.args), append=self.machine.append,
                           append_max=self.machine.append_max)
            if self.machine.agent_args:
                machine.update(agent_args=list(self.machine.agent_args),
                               agent_device=self.machine.agent_device,
                               snapshot=self.machine.snapshot)
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
                "sysroot": str(self.toolchain.sysroot) if self.toolchain.sysroot else None,
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
    if kind == "qemu-semihost" and multi_process:
        raise top.error("multi_process", "a bare-metal (qemu-semihost) image has no processes: "
                                         "set it to false")
    toolchain = _toolchain(top.table_("toolchain"), path)

    image = top.table_("image")
    image_kind = image.text("kind", choices=IMAGE_KINDS)
    if image_kind not in KIND_IMAGES[kind]:
        wanted = " or ".join(f'"{k}"' for k in KIND_IMAGES[kind])
        raise image.error("kind", f"a {kind} target needs kind = {wanted}")
    image.no_others()

    kernel = _kernel(top, kind, path)
    machine = _machine(top.table_("machine"), kind, kernel is not None)
    top.no_others()
    return Target(name=name, description=description, kind=kind, arch=arch,
                  multi_process=multi_process, toolchain=toolchain, kernel=kernel,
                  image_kind=image_kind, machine=machine, definition_path=path.resolve(),
                  definition_sha256=sha256)


def _relative_path(fields: _Fields, key: str, definition: Path) -> Path | None:
    """A path field, relative to the definition file's folder; None when absent."""
    text = fields.text(key, required=False)
    if text is None:
        return None
    return (definition.resolve().parent / Path(text).expanduser()).resolve()


def _toolchain(tc: _Fields, path: Path) -> ToolchainSpec:
    spec = ToolchainSpec(cc=tc.text("cc"), cflags=tc.strings("cflags"),
                         ldflags=tc.strings("ldflags"), packages=tc.strings("packages"),
                         sysroot=_relative_path(tc, "sysroot", path))
    for key in ("cflags", "ldflags"):
        flags = getattr(spec, key)
        _check_placeholders(tc, key, flags, FLAG_PLACEHOLDERS)
        if spec.sysroot is None and any("{sysroot}" in f for f in flags):
            raise tc.error(key, "uses {sysroot} but the toolchain has no sysroot field")
    tc.no_others()
    return spec


def _kernel(top: _Fields, kind: str, path: Path) -> KernelSpec | None:
    fields = top.table_("kernel", required=kind == "qemu-linux")
    if fields is None:
        return None
    if kind in ("host", "qemu-semihost"):
        what = "host target runs on this machine's kernel" if kind == "host" else \
            "bare-metal image is its own kernel"
        raise top.error("kernel", f"a {what}: remove the [kernel] table")
    source = fields.text("source", choices=KERNEL_SOURCES)
    pvh = bool(fields.get("pvh", bool, required=False))
    if source == "debian":
        kernel = KernelSpec(source=source, meta_package=fields.text("meta_package"),
                            architecture=fields.text("architecture", required=False), pvh=pvh)
    else:
        kernel = KernelSpec(source=source, path=_relative_path(fields, "path", path), pvh=pvh)
        if kernel.path is None:
            raise fields.error("path", "missing (source = \"file\" names the kernel image)")
    fields.no_others()
    return kernel


def _machine(m: _Fields, kind: str, has_kernel: bool) -> MachineSpec:
    timeouts = {key: m.seconds(key) for key in ("boot_timeout_s", "idle_timeout_s",
                                                "run_timeout_s")}
    if kind == "host":
        m.no_others()
        return MachineSpec(qemu=None, packages=(), args=(), append=None, **timeouts)
    qemu, packages = m.text("qemu"), m.strings("packages")
    args, append = m.strings("args"), m.text("append")
    append_max = m.get("append_max", int, required=False)
    append_max = DEFAULT_APPEND_MAX if append_max is None else append_max
    if append_max <= 0:
        raise m.error("append_max", f"must be a positive number of bytes, got {append_max}")
    _check_placeholders(m, "args", args, ARGS_PLACEHOLDERS)
    _check_placeholders(m, "append", (append,), APPEND_PLACEHOLDERS)
    agent_args = m.strings("agent_args", required=False)
    agent_device = m.text("agent_device", required=False)
    _check_placeholders(m, "agent_args", agent_args, AGENT_PLACEHOLDERS)
    if bool(agent_args) != (agent_device is not None):
        raise m.error("agent_args" if agent_device else "agent_device",
                      "agent_args and agent_device go together (docs/agent.md)")
    if agent_args and not any("{agent_socket}" in a for a in agent_args):
        raise m.error("agent_args", "has no {agent_socket} placeholder: the host could not "
                                    "reach the channel")
    needed = ["{image}", "{append}"] + (["{kernel}"] if has_kernel else [])
    for placeholder in needed:
        if not any(placeholder in a for a in args):
            raise m.error("args", f"has no {placeholder} placeholder: QEMU would not get it")
    if not has_kernel and any("{kernel}" in a for a in args):
        raise m.error("args", "uses {kernel} but the target has no [kernel] table")
    if "{guest_env}" not in append:
        raise m.error("append", "has no {guest_env} placeholder: the runtime would not get "
                                "its nonce")
    snapshot = m.get("snapshot", bool, required=False) or False
    if snapshot and not agent_args:
        raise m.error("snapshot", "needs the agent channel (agent_args, agent_device): it "
                                  "carries a restored guest's run parameters")
    m.no_others()
    return MachineSpec(qemu=qemu, packages=packages, args=args, append=append,
                       append_max=append_max, agent_args=agent_args, agent_device=agent_device,
                       snapshot=snapshot, **timeouts)
