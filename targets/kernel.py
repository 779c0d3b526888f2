"""The kernel a target boots: Debian's packaged kernel fetched once into a cache, or a file.

>>> info = ensure_kernel(load_target("linux-x86_64"))            # doctest: +SKIP
>>> info.package, info.version, info.path.name                   # doctest: +SKIP
('linux-image-6.1.0-56-cloud-amd64', '6.1.192-2', 'vmlinuz')
>>> ensure_kernel(target, override=Path("my-bzImage")).source      # doctest: +SKIP
'user'

How: `apt-cache depends META` names the versioned package the meta package points at;
`apt-get download` fetches its .deb into the cache (no root needed, nothing is installed);
`dpkg-deb --fsys-tarfile` streams its files, of which only boot/vmlinuz-* is kept. A JSON
sidecar next to the kernel records {package, version, deb_sha256, sha256, path}.

The kernel directory (`cache_dir`; by default `kernels/` in the pcert cache: `$PCERT_CACHE`,
else `$XDG_CACHE_HOME/pcert`, else `~/.cache/pcert`) holds:

    <package>/vmlinuz
    <package>/kernel.json      the sidecar
    <meta_package>.json        which package the meta package named last time

    apt-<arch>/lists, apt-<arch>/cache   apt's state for a foreign architecture

A cached kernel costs no download; when apt-cache cannot answer (no package lists, offline),
the package the meta package named last time is used if it is cached.

A kernel of another Debian architecture (`[kernel] architecture = "arm64"` on an amd64 machine)
is resolved and fetched with apt pointed at package lists of that architecture kept in the
kernel directory: `apt-get -oAPT::Architecture=arm64 -oDir::State::Lists=... update`; the
system's apt configuration and lists are never written. Those lists are fetched when missing
and again whenever the system's lists are newer (after an `apt-get update`).

A target whose kernel has `source = "file"` boots that file, identified by its sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from targets.bzimage import has_pvh_entry, unpack_bzimage
from targets.definition import Target
from targets.errors import TargetError
from targets.hashing import file_sha256, write_atomic

SIDECAR = "kernel.json"
# apt-get download of a ~60 MB .deb over a slow mirror; anything longer is a stuck network.
APT_TIMEOUT_S = 900
APT_LISTS = Path("/var/lib/apt/lists")


@dataclass(frozen=True)
class KernelInfo:
    """A kernel image and where it came from ("debian" package or "user" --kernel path)."""

    path: Path
    package: str | None
    version: str | None
    deb_sha256: str | None
    sha256: str
    source: str
    unpacked_from: str | None = None   # sha256 of the bzImage the booted ELF kernel came from

    @classmethod
    def from_path(cls, path: Path) -> KernelInfo:
        """A kernel the user gave with --kernel: identified by its sha256 alone."""
        path = Path(path)
        if not path.is_file():
            raise TargetError(f"{path}: kernel image not found (check the --kernel path)")
        return cls(path=path.resolve(), package=None, version=None, deb_sha256=None,
                   sha256=file_sha256(path), source="user")

    def to_json(self) -> dict[str, Any]:
        """For the bundle manifest: identity, not the machine-specific path."""
        return {"package": self.package, "version": self.version, "deb_sha256": self.deb_sha256,
                "sha256": self.sha256, "source": self.source,
                **({"unpacked_from": self.unpacked_from} if self.unpacked_from else {})}


def default_cache_dir() -> Path:
    """$PCERT_CACHE, else $XDG_CACHE_HOME/pcert, else ~/.cache/pcert."""
    if os.environ.get("PCERT_CACHE"):
        return Path(os.environ["PCERT_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "pcert"
    return Path.home() / ".cache" / "pcert"


def default_kernel_dir() -> Path:
    """Where kernels are kept unless a caller says otherwise."""
    return default_cache_dir() / "kernels"


def ensure_kernel(target: Target, cache_dir: Path | None = None,
                  override: Path | None = None) -> KernelInfo:
    """The target's kernel, from the kernel directory `cache_dir` or fetched into it.

    `override` (--kernel PATH) wins if given.
    """
    if override is not None:
        return KernelInfo.from_path(override)
    if target.kernel is None:
        raise TargetError(f"target {target.name} boots no kernel (it has no [kernel] table)")
    kernels = Path(cache_dir) if cache_dir is not None else default_kernel_dir()
    if target.kernel.source == "file":
        info = replace(KernelInfo.from_path(target.kernel.path), source="file")
        where = kernels / "unpacked" / info.sha256[:24]
    else:
        apt = Apt.for_architecture(target.kernel.architecture, kernels)
        package = resolve_package(target.kernel.meta_package, kernels, apt)
        info = cached_kernel(kernels, package) or _fetch(package, kernels, apt)
        where = kernels / package
    return unpacked_kernel(info, where) if target.kernel.pvh else info


def unpacked_kernel(info: KernelInfo, where: Path) -> KernelInfo:
    """The ELF kernel inside `info`'s bzImage (targets/bzimage.py), cached as where/vmlinux
    next to a sidecar naming the bzImage it came from; what then boots is that file."""
    elf_path, sidecar_path = where / "vmlinux", where / "vmlinux.json"
    sidecar = _read_json(sidecar_path) or {}
    if not (sidecar.get("from") == info.sha256 and elf_path.is_file()
            and file_sha256(elf_path) == sidecar.get("sha256")):
        elf = unpack_bzimage(info.path.read_bytes(), str(info.path))
        if not has_pvh_entry(elf):
            raise TargetError(f"{info.path}: its ELF kernel has no PVH entry note (Xen "
                              "PHYS32_ENTRY); boot the bzImage instead: remove pvh = true "
                              "from the target's [kernel] table")
        write_atomic(elf_path, elf)
        sidecar = {"from": info.sha256, "sha256": hashlib.sha256(elf).hexdigest()}
        _write_json(sidecar_path, sidecar)  # last: an ELF without it is never trusted
    return replace(info, path=elf_path.resolve(), sha256=sidecar["sha256"],
                   unpacked_from=info.sha256)


@dataclass(frozen=True)
class Apt:
    """How apt is asked: the system's way (no options), or with a foreign architecture's own
    package lists and cache under the kernel directory."""

    options: tuple[str, ...] = ()
    lists: Path = APT_LISTS
    private: bool = False

    @classmethod
    def for_architecture(cls, architecture: str | None, kernels: Path) -> Apt:
        if architecture is None or architecture == _native_architecture():
            return cls()
        state = kernels / f"apt-{architecture}"
        lists = state / "lists"
        return cls(options=(f"-oAPT::Architecture={architecture}",
                            f"-oAPT::Architectures={architecture}",
                            f"-oDir::State::Lists={lists}", f"-oDir::Cache={state / 'cache'}"),
                   lists=lists, private=True)

    def refresh(self) -> None:
        """Fetch the private package lists when missing or older than the system's."""
        if not self.private or not _lists_older(self.lists, APT_LISTS):
            return
        if shutil.which("apt-get") is None:
            raise TargetError("apt-get not found: apt-get install apt, or pass --kernel PATH")
        for folder in (self.lists / "partial", self.lists.parent / "cache" / "archives" / "partial"):
            folder.mkdir(parents=True, exist_ok=True)
        result = _run(["apt-get", "-q", *self.options, "update"], timeout=APT_TIMEOUT_S)
        if result.returncode != 0 or not _package_lists(self.lists):
            detail = result.stderr.strip().splitlines()[-1:] or ["no package lists"]
            raise TargetError(f"apt-get update of {self.lists} failed ({detail[0]}): check "
                              "the network and apt's sources, or pass --kernel PATH")


@functools.lru_cache(maxsize=1)
def _native_architecture() -> str | None:
    if shutil.which("dpkg") is None:
        return None
    result = _run(["dpkg", "--print-architecture"], timeout=60)
    return result.stdout.strip() or None


def _package_lists(lists: Path) -> list[Path]:
    try:
        return [p for p in lists.iterdir() if "_Packages" in p.name]
    except OSError:
        return []


def _lists_older(private: Path, system: Path) -> bool:
    """True when `private` has no package lists or the system's were updated after it."""
    own = _package_lists(private)
    if not own:
        return True
    try:
        newest_system = max((p.stat().st_mtime for p in system.iterdir() if p.is_file()),
                            default=0.0)
    except OSError:
        return False
    return newest_system > min(p.stat().st_mtime for p in own)


def resolve_package(meta: str, kernels: Path, apt: Apt | None = None) -> str:
    """The versioned package `meta` depends on; offline, the one it named last time.

    apt-cache takes over a second, and its answer can change only when apt's package lists do,
    so the answer is remembered with the lists' signature and reused while they are unchanged.
    """
    apt = apt or Apt()
    pointer_path = kernels / f"{meta}.json"
    remembered = _read_json(pointer_path) or {}
    try:
        apt.refresh()
    except TargetError:
        if cached_kernel(kernels, remembered.get("package", "")) is not None:
            return remembered["package"]
        raise
    lists = _apt_lists_signature(apt.lists)
    if (remembered.get("lists") == lists and lists is not None
            and cached_kernel(kernels, remembered.get("package", "")) is not None):
        return remembered["package"]
    try:
        found = _apt_depends(meta, apt.options)
    except TargetError:
        if cached_kernel(kernels, remembered.get("package", "")) is not None:
            return remembered["package"]
        raise
    pointer = {"meta_package": meta, "package": found, "lists": lists}
    if remembered != pointer:
        _write_json(pointer_path, pointer)
    return found


def _apt_lists_signature(lists: Path = APT_LISTS) -> str | None:
    """Changes whenever apt-get update changes a package list (files are replaced by rename)."""
    try:
        stamps = sorted(f"{p.name}:{p.stat().st_mtime_ns}:{p.stat().st_size}"
                        for p in lists.iterdir() if p.is_file())
    except OSError:
        return None
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest() if stamps else None


def cached_kernel(kernels: Path, package: str) -> KernelInfo | None:
    """The cached kernel of `package` if its sidecar is there and the file still matches it."""
    sidecar = _read_json(kernels / package / SIDECAR) if package else None
    if not sidecar:
        return None
    path = kernels / package / sidecar.get("path", "vmlinuz")
    if not path.is_file() or file_sha256(path) != sidecar.get("sha256"):
        return None  # damaged or half-written: fetch again
    return KernelInfo(path=path.resolve(), package=sidecar["package"], version=sidecar["version"],
                      deb_sha256=sidecar["deb_sha256"], sha256=sidecar["sha256"], source="debian")


def kernel_status(target: Target, cache_dir: Path | None = None) -> tuple[bool, str]:
    """(usable, one line) about the target's kernel, downloading no kernel.

    For a foreign architecture the first call fetches its package lists (a few MB)."""
    if target.kernel is None:
        return True, ("no kernel: runs on the host's own" if target.kind == "host"
                      else "no kernel: the image boots by itself")
    if target.kernel.source == "file":
        if target.kernel.path.is_file():
            return True, f"kernel file {target.kernel.path}"
        return False, (f"kernel file {target.kernel.path} not found (field kernel.path of "
                       f"{target.definition_path})")
    kernels = Path(cache_dir) if cache_dir is not None else default_kernel_dir()
    apt = Apt.for_architecture(target.kernel.architecture, kernels)
    try:
        package = resolve_package(target.kernel.meta_package, kernels, apt)
    except TargetError as problem:
        return False, f"kernel not cached and not resolvable: {problem}"
    cached = cached_kernel(kernels, package)
    if cached is not None:
        return True, f"kernel cached: {cached.package} {cached.version} at {cached.path}"
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return False, (f"kernel {package} is not cached and apt-get/dpkg-deb are missing: "
                       "pass --kernel PATH")
    return True, (f"kernel {package} not cached yet: apt-get download will fetch it "
                  f"into {kernels} on first use")


def _apt_depends(meta: str, options: tuple[str, ...] = ()) -> str:
    if shutil.which("apt-cache") is None:
        raise TargetError("apt-cache not found: kernels come from Debian packages "
                          "(run on Debian/Ubuntu, or pass --kernel PATH)")
    result = _run(["apt-cache", *options, "depends", meta], timeout=120)
    for line in result.stdout.splitlines():
        # "  Depends: linux-image-6.1.0-56-cloud-amd64"; other lines are Recommends, Breaks, ...
        key, _, value = line.strip().partition(": ")
        if key == "Depends" and value.startswith("linux-image-"):
            return value.strip()
    detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no Depends"
    raise TargetError(f"apt-cache depends {meta} names no kernel package ({detail}): "
                      "run apt-get update, or pass --kernel PATH")


def _fetch(package: str, kernels: Path, apt: Apt | None = None) -> KernelInfo:
    for tool, debian_package in (("apt-get", "apt"), ("dpkg-deb", "dpkg")):
        if shutil.which(tool) is None:
            raise TargetError(f"{tool} not found: apt-get install {debian_package}, "
                              "or pass --kernel PATH")
    kernels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=kernels, prefix=".fetch-") as tmp:
        work = Path(tmp)
        options = apt.options if apt is not None else ()
        result = _run(["apt-get", *options, "download", package], timeout=APT_TIMEOUT_S, cwd=work)
        debs = sorted(work.glob("*.deb"))
        if result.returncode != 0 or len(debs) != 1:
            raise TargetError(f"apt-get download {package} failed: {result.stderr.strip()} "
                              "(run apt-get update, check the network, or pass --kernel PATH)")
        deb = debs[0]
        fields = _deb_fields(deb, "Package", "Version")
        vmlinuz = work / "vmlinuz"
        _extract_vmlinuz(deb, vmlinuz)
        info = {"package": fields["Package"], "version": fields["Version"],
                "deb_sha256": file_sha256(deb), "sha256": file_sha256(vmlinuz),
                "path": "vmlinuz"}
        final = kernels / package
        final.mkdir(exist_ok=True)
        _fsync(vmlinuz)
        os.replace(vmlinuz, final / "vmlinuz")
        # The sidecar goes last: a kernel without one is never trusted.
        _write_json(final / SIDECAR, info)
    cached = cached_kernel(kernels, package)
    assert cached is not None
    return cached


def _deb_fields(deb: Path, *names: str) -> dict[str, str]:
    result = _run(["dpkg-deb", "--field", str(deb), *names], timeout=60)
    fields = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(": ")
        fields[key] = value.strip()
    missing = [n for n in names if not fields.get(n)]
    if result.returncode != 0 or missing:
        raise TargetError(f"{deb.name}: dpkg-deb --field found no {', '.join(missing)}: "
                          f"{result.stderr.strip()}")
    return fields


def _extract_vmlinuz(deb: Path, out: Path) -> None:
    """Stream the package's data tar and keep boot/vmlinuz-* only (modules are not needed)."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    found = False
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isfile() and name.startswith("boot/vmlinuz-"):
                    source = tar.extractfile(member)
                    with open(out, "wb") as f:
                        shutil.copyfileobj(source, f)
                    found = True
                    break
    except tarfile.TarError as exc:
        raise TargetError(f"{deb.name}: cannot read its files ({exc}): delete it and retry, "
                          "or pass --kernel PATH") from None
    finally:
        proc.stdout.close()
        proc.kill()  # we may stop reading early; the rest of the tar is not needed
        proc.wait(timeout=60)
        proc.stderr.close()
    if not found:
        raise TargetError(f"{deb.name} holds no boot/vmlinuz-*: is it a kernel image package? "
                          "Pass --kernel PATH instead")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _run(cmd: list[str], *, timeout: float,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # apt's messages are parsed and quoted in errors: keep them in English.
    env = {**os.environ, "LC_ALL": "C"}
    try:
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                              timeout=timeout, cwd=cwd, env=env)
    except subprocess.TimeoutExpired:
        raise TargetError(f"{' '.join(cmd)} did not finish within {timeout:.0f} s: check the "
                          "network and apt's sources, or pass --kernel PATH") from None
    except OSError as exc:
        raise TargetError(f"{cmd[0]}: cannot run: {exc.strerror}") from None
