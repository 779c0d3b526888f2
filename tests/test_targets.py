"""Tests of the targets package: definitions, initramfs, toolchain, kernel cache, drivers.

The tests marked `qemu` boot a real Debian kernel in QEMU (the kernel is fetched with apt-get
download into the pcert cache the first time, ~14 MB).
"""

from __future__ import annotations

import dataclasses
import doctest
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import targets.definition
import targets.drivers
import targets.drivers.host
import targets.drivers.qemu
import targets.drivers.semihost
import targets.errors
import targets.image
import targets.initramfs
import targets.toolchain
from targets import kernel as kernel_module
from targets.definition import DEFINITIONS_DIR, load_target, list_targets
from targets.drivers.base import RunOutcome
from targets.drivers.host import HostMachine
from targets.drivers.qemu import QemuMachine
from targets.errors import TargetError
from targets.image import build_image
from targets.initramfs import (Entry, build_initramfs, chardev, directory, regular,
                               write_initramfs)
from targets.kernel import KernelInfo, cached_kernel, default_cache_dir, ensure_kernel
from targets.readiness import check_ready, describe
from targets.protocol import RecordParser
from targets.toolchain import Toolchain

LINUX_TOML = (DEFINITIONS_DIR / "linux-x86_64.toml").read_text()


@pytest.mark.parametrize("module", [targets.errors, targets.definition, targets.initramfs,
                                    targets.drivers.qemu, targets.drivers.host,
                                    targets.drivers.semihost, targets.drivers,
                                    targets.toolchain])
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.failed == 0


# --- definitions -------------------------------------------------------------------------

def test_builtin_targets_load_and_serialise():
    assert list_targets() == ["baremetal-aarch64-picolibc", "example-generic-x86_64", "host",
                              "linux-aarch64", "linux-x86_64", "linux-x86_64-musl",
                              "linux-x86_64-rt"]
    linux = load_target("linux-x86_64")
    assert (linux.kind, linux.arch, linux.multi_process) == ("qemu-linux", "x86_64", True)
    assert linux.toolchain.ldflags[0] == "-static"
    assert "-D_POSIX_C_SOURCE=200809L" in linux.toolchain.cflags
    assert linux.kernel.meta_package == "linux-image-cloud-amd64"
    assert linux.machine.qemu == "qemu-system-x86_64"
    host = load_target("host")
    assert (host.kind, host.kernel, host.image_kind, host.machine.qemu) == \
        ("host", None, "none", None)
    assert host.arch == platform.machine()
    for target in map(load_target, list_targets()):
        as_json = target.to_json()
        assert json.loads(json.dumps(as_json)) == as_json
        assert as_json["definition"]["sha256"] == hashlib.sha256(
            target.definition_path.read_bytes()).hexdigest()


def test_load_by_path(tmp_path):
    path = tmp_path / "linux-x86_64.toml"
    path.write_text(LINUX_TOML)
    loaded = load_target(str(path))
    assert loaded.definition_path == path
    assert loaded.to_json() == load_target("linux-x86_64").to_json()


def test_unknown_target_names_the_known_ones():
    with pytest.raises(TargetError, match="unknown target 'vax'.*host, linux-aarch64, "
                                          "linux-x86_64, "):
        load_target("vax")


@pytest.mark.parametrize("old, new, field", [
    ('kind = "qemu-linux"', 'kind = "vm"', "'kind': must be one of"),
    ('qemu = "qemu-system-x86_64"\n', "", "'machine.qemu': missing"),
    ('ldflags = ["-static", "-lm"]', 'ldflags = "-static"', "'toolchain.ldflags': must be a list"),
    ('ldflags = ["-static", "-lm"]', 'ldflags = ["-static", 3]', "'toolchain.ldflags[1]'"),
    ('multi_process = true', 'multi_process = "yes"', "'multi_process': must be true or false"),
    ('run_timeout_s = 1800', 'run_timeout_s = 0', "'machine.run_timeout_s': must be a positive"),
    ('run_timeout_s = 1800', 'run_timeout_s = true', "'machine.run_timeout_s': must be a number"),
    ('"-kernel", "{kernel}"', '"-kernel", "{kernal}"', "'machine.args': unknown placeholder"),
    ('"-initrd", "{image}",', "", "'machine.args': has no {image}"),
    ('quiet panic=-1', 'quiet {nonce}', "'machine.append': unknown placeholder {nonce}"),
    ('cc = "gcc"', 'cc = "gcc"\ncflgas = []', "'toolchain.cflgas': unknown field"),
    ('name = "linux-x86_64"', 'name = "linux"', "'name': is 'linux' but the file"),
    ('[kernel]', '[kernels]', "'kernel': missing"),
    ('source = "debian"', 'source = "fedora"', "'kernel.source': must be one of debian"),
    ('kind = "initramfs"', 'kind = "none"', "'image.kind': a qemu-linux target needs"),
    ('kind = "initramfs"', 'kind = "elf"', "'image.kind': a qemu-linux target needs kind = \"initramfs\""),
    ('source = "debian"', 'source = "file"', "'kernel.path': missing (source = \"file\""),
    ('meta_package = "linux-image-cloud-amd64"', 'meta_package = "linux-image-cloud-amd64"\n'
     'architecture = ""', "'kernel.architecture': must not be empty"),
    ('cc = "gcc"', 'cc = "gcc"\nsysroot = 7', "'toolchain.sysroot': must be a string"),
    ('"-Wall",', '"-Wall", "--sysroot={sysroot}",', "'toolchain.cflags': uses {sysroot} but"),
    ('"-Wall",', '"-Wall", "-I{includes}",', "'toolchain.cflags': unknown placeholder {includes}"),
    ('append = "console=ttyS0', 'append_max = 0\nappend = "console=ttyS0',
     "'machine.append_max': must be a positive"),
    ('cryptomgr.notests {guest_env}', 'cryptomgr.notests',
     "'machine.append': has no {guest_env}"),
    ('kind = "qemu-linux"', 'kind = "qemu-semihost"', "'multi_process': a bare-metal"),
])
def test_bad_field_is_named(tmp_path, old, new, field):
    assert old in LINUX_TOML
    path = tmp_path / "linux-x86_64.toml"
    path.write_text(LINUX_TOML.replace(old, new, 1))
    with pytest.raises(TargetError) as caught:
        load_target(str(path))
    assert str(path) in str(caught.value)
    assert field in str(caught.value)


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(TargetError, match=r"broken.toml: not valid TOML"):
        load_target(str(path))


def test_missing_definition_file(tmp_path):
    with pytest.raises(TargetError, match="not found"):
        load_target(str(tmp_path / "nope.toml"))


# --- initramfs ---------------------------------------------------------------------------

def read_newc(data: bytes) -> list[dict]:
    """A small independent newc reader: the entries up to TRAILER!!!."""
    entries, offset = [], 0
    while True:
        assert data[offset:offset + 6] == b"070701", f"bad magic at {offset}"
        fields = [int(data[offset + 6 + 8 * i: offset + 14 + 8 * i], 16) for i in range(13)]
        ino, mode, uid, gid, nlink, mtime, size, _, _, rmaj, rmin, namesize, check = fields
        name_start = offset + 110
        name = data[name_start:name_start + namesize - 1].decode()
        assert data[name_start + namesize - 1] == 0
        offset = name_start + namesize
        offset += -offset % 4
        body = data[offset:offset + size]
        offset += size
        offset += -offset % 4
        if name == "TRAILER!!!":
            assert offset == len(data)
            return entries
        assert (uid, gid, mtime, check) == (0, 0, 0, 0)
        entries.append({"name": name, "ino": ino, "mode": mode, "nlink": nlink, "data": body,
                        "rdev": (rmaj, rmin)})


def test_initramfs_is_deterministic_and_lists_with_cpio(tmp_path):
    init = tmp_path / "init-binary"
    init.write_bytes(b"\x7fELF pretend" * 100)
    first = build_initramfs(init, tmp_path / "a.cpio")
    os.utime(init, (12345, 12345))  # mtimes must not matter
    second = build_initramfs(init, tmp_path / "b.cpio")
    assert first == second
    assert (tmp_path / "a.cpio").read_bytes() == (tmp_path / "b.cpio").read_bytes()
    assert hashlib.sha256((tmp_path / "a.cpio").read_bytes()).hexdigest() == first

    listing = subprocess.run(["cpio", "-it"], stdin=open(tmp_path / "a.cpio", "rb"),
                             capture_output=True, text=True, check=True).stdout.split()
    assert listing == ["dev", "dev/console", "dev/shm", "init", "proc", "sys", "tmp"]
    verbose = subprocess.run(["cpio", "-itv"], stdin=open(tmp_path / "a.cpio", "rb"),
                             capture_output=True, text=True, check=True).stdout.splitlines()
    console = next(line for line in verbose if line.endswith("dev/console"))
    assert console.startswith("crw-------") and "5,   1" in console
    init_line = next(line for line in verbose if line.endswith(" init"))
    assert init_line.startswith("-rwxr-xr-x")

    entries = {e["name"]: e for e in read_newc((tmp_path / "a.cpio").read_bytes())}
    assert entries["init"]["data"] == init.read_bytes()
    assert entries["dev/console"]["rdev"] == (5, 1)
    assert [e["ino"] for e in entries.values()] == list(range(1, 8))


def test_entry_order_and_parents_do_not_depend_on_input(tmp_path):
    a = [regular("etc/x/y", b"1"), chardev("/dev/null", 1, 3), directory("etc")]
    b = [directory("./etc"), chardev("dev/null", 1, 3), regular("etc/x/y", b"1")]
    assert write_initramfs(a, tmp_path / "a") == write_initramfs(b, tmp_path / "b")
    names = [e["name"] for e in read_newc((tmp_path / "a").read_bytes())]
    assert names == ["dev", "dev/null", "etc", "etc/x", "etc/x/y"]


@pytest.mark.parametrize("entries, message", [
    ([regular("../escape", b"")], "without '..'"),
    ([regular("a", b""), regular("/a", b"")], "given twice"),
    ([regular("a", b""), regular("a/b", b"")], "parent 'a' is not a directory"),
    ([Entry("fifo", "fifo")], "unknown kind"),
    ([regular("x", b"", mode=0o100644)], "more than permission bits"),
    ([regular("", b"")], "plain relative path"),
])
def test_initramfs_refuses_bad_entries(tmp_path, entries, message):
    with pytest.raises(TargetError, match=message):
        write_initramfs(entries, tmp_path / "out.cpio")
    assert not (tmp_path / "out.cpio").exists()


_component = st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                            blacklist_characters="/\0"),
                     min_size=1, max_size=12).filter(lambda c: c not in (".", ".."))
_files = st.dictionaries(st.lists(_component, min_size=1, max_size=3).map("/".join),
                         st.tuples(st.binary(max_size=300), st.integers(0, 0o7777)),
                         max_size=8)


def _consistent(files: dict) -> dict:
    # Drop files that another file would need as its directory.
    return {n: v for n, v in files.items()
            if n.split("/")[0] != "TRAILER!!!" and not any(other.startswith(n + "/") for other in files)}


def test_an_entry_named_like_the_trailer_is_refused(tmp_path):
    # Found by the property test below: the kernel would stop reading at such an entry.
    with pytest.raises(TargetError, match="end of a newc archive"):
        write_initramfs([regular("TRAILER!!!", b"")], tmp_path / "out.cpio")
    with pytest.raises(TargetError, match="end of a newc archive"):
        write_initramfs([regular("TRAILER!!!/x", b"")], tmp_path / "out.cpio")


@given(_files)
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_newc_writer_round_trips(tmp_path, files):
    files = _consistent(files)
    out = tmp_path / "prop.cpio"
    sha = write_initramfs([regular(n, d, m) for n, (d, m) in files.items()], out)
    data = out.read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha
    read = read_newc(data)
    by_name = {e["name"]: e for e in read}
    assert len(by_name) == len(read)
    for name, (content, mode) in files.items():
        assert by_name[name]["data"] == content
        assert by_name[name]["mode"] == 0o100000 | mode
    for name, entry in by_name.items():
        if name not in files:  # added parent
            assert entry["mode"] == 0o040755 and any(f.startswith(name + "/") for f in files)
    # Every directory comes before its contents.
    seen = set()
    for entry in read:
        if "/" in entry["name"]:
            assert entry["name"].rsplit("/", 1)[0] in seen
        seen.add(entry["name"])


_ascii_component = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1,
                           max_size=8).filter(lambda c: c not in (".", ".."))


@given(st.dictionaries(st.lists(_ascii_component, min_size=1, max_size=3).map("/".join),
                       st.binary(max_size=200), min_size=1, max_size=6))
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_system_cpio_extracts_what_was_written(tmp_path, files):
    files = _consistent(files)
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    archive = work / "a.cpio"
    write_initramfs([regular(n, d, 0o640) for n, d in files.items()], archive)
    into = work / "out"
    into.mkdir()
    with open(archive, "rb") as stdin:
        subprocess.run(["cpio", "-id", "--quiet"], stdin=stdin, cwd=into, check=True)
    for name, content in files.items():
        assert (into / name).read_bytes() == content
        assert (into / name).stat().st_mode & 0o777 == 0o640
    shutil.rmtree(work)


# --- toolchain ---------------------------------------------------------------------------

HELLO_C = b'#include <stdio.h>\nint main(void) { printf("%s\\n", __FILE__); return 0; }\n'


def linux_toolchain() -> Toolchain:
    return Toolchain.for_target(load_target("linux-x86_64"))


def test_toolchain_identity():
    tc = linux_toolchain()
    assert tc.version().startswith("gcc ")
    assert len(tc.sha256()) == 64
    assert tc.to_json()["command"] == "gcc"


def test_cached_build_hits_without_compiling(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "inc").mkdir()
    source = tmp_path / "src" / "hello.c"
    source.write_bytes(HELLO_C)
    header = tmp_path / "inc" / "pcert.h"
    header.write_text("#define X 1\n")
    tc = linux_toolchain()
    cache = tmp_path / "cache"
    first = tc.cached_build([source], [tmp_path / "inc"], cache)
    assert tc.compiles == 1
    stamp = first.stat().st_mtime_ns
    again = Toolchain.for_target(load_target("linux-x86_64"))
    assert again.cached_build([source], [tmp_path / "inc"], cache) == first
    assert again.compiles == 0 and first.stat().st_mtime_ns == stamp
    # A changed header or source is a new build.
    header.write_text("#define X 2\n")
    second = again.cached_build([source], [tmp_path / "inc"], cache)
    assert second != first and again.compiles == 1
    source.write_bytes(HELLO_C + b"/* changed */\n")
    third = again.cached_build([source], [tmp_path / "inc"], cache)
    assert third not in (first, second) and again.compiles == 2
    assert subprocess.run([third], capture_output=True, text=True).stdout == "hello.c\n"


def test_builds_are_reproducible_wherever_the_sources_are(tmp_path):
    outputs = []
    for place in ("one", "two/deeper"):
        src = tmp_path / place / "src"
        src.mkdir(parents=True)
        (src / "hello.c").write_bytes(HELLO_C)
        out = tmp_path / place / "bin" / "hello"
        linux_toolchain().compile_and_link([src / "hello.c"], [src], out)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert str(tmp_path).encode() not in outputs[0]


def test_compiler_errors_are_reported(tmp_path):
    bad = tmp_path / "bad.c"
    bad.write_text("int main(void) { return undeclared_thing; }\n")
    with pytest.raises(TargetError, match="gcc failed to build out from bad.c:(.|\n)*"
                                          "undeclared_thing"):
        linux_toolchain().compile_and_link([bad], [], tmp_path / "out")
    assert list(tmp_path.iterdir()) == [bad]  # no partial output left behind


def test_missing_compiler_says_what_to_install(tmp_path):
    tc = Toolchain("no-such-cc-1", packages=["gcc-no-such"])
    with pytest.raises(TargetError, match="no-such-cc-1 not found: apt-get install gcc-no-such"):
        tc.version()
    with pytest.raises(TargetError, match="include directory not found"):
        linux_toolchain().build_key([], [tmp_path / "nope"])


# --- kernel cache (no network) -----------------------------------------------------------

def fake_cached_kernel(kernels: Path, package: str, meta: str, lists: str | None) -> Path:
    (kernels / package).mkdir(parents=True)
    vmlinuz = kernels / package / "vmlinuz"
    vmlinuz.write_bytes(b"pretend kernel")
    sidecar = {"package": package, "version": "6.1.1-1", "deb_sha256": "d" * 64,
               "sha256": hashlib.sha256(b"pretend kernel").hexdigest(), "path": "vmlinuz"}
    (kernels / package / "kernel.json").write_text(json.dumps(sidecar))
    (kernels / f"{meta}.json").write_text(json.dumps(
        {"meta_package": meta, "package": package, "lists": lists}))
    return vmlinuz


def bzimage_target():
    """linux-x86_64 booting its bzImage as it is (these tests' kernels are not real ones)."""
    target = load_target("linux-x86_64")
    return dataclasses.replace(target, kernel=dataclasses.replace(target.kernel, pvh=False))


def test_cached_kernel_needs_no_apt(tmp_path, monkeypatch):
    kernels = tmp_path
    vmlinuz = fake_cached_kernel(kernels, "linux-image-9-cloud-amd64", "linux-image-cloud-amd64",
                                 lists="unchanged lists")
    monkeypatch.setattr(kernel_module, "_apt_lists_signature", lambda *lists: "unchanged lists")

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"unexpected subprocess {args}")
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    info = ensure_kernel(bzimage_target(), cache_dir=tmp_path)
    assert (info.path, info.package, info.version, info.source) == \
        (vmlinuz.resolve(), "linux-image-9-cloud-amd64", "6.1.1-1", "debian")
    assert info.to_json()["sha256"] == hashlib.sha256(b"pretend kernel").hexdigest()


def test_offline_falls_back_to_the_cached_kernel(tmp_path, monkeypatch):
    kernels = tmp_path
    fake_cached_kernel(kernels, "linux-image-9-cloud-amd64", "linux-image-cloud-amd64",
                       "old lists")

    def offline(meta, *options):
        raise TargetError("apt-cache depends: no lists")
    monkeypatch.setattr(kernel_module, "_apt_depends", offline)
    info = ensure_kernel(bzimage_target(), cache_dir=tmp_path)
    assert info.package == "linux-image-9-cloud-amd64"
    # A damaged kernel is not trusted: with no apt either, the error says what to do.
    info.path.write_bytes(b"tampered")
    assert cached_kernel(kernels, "linux-image-9-cloud-amd64") is None
    with pytest.raises(TargetError, match="no lists"):
        ensure_kernel(bzimage_target(), cache_dir=tmp_path)


def test_user_kernel_and_host_target(tmp_path):
    bz = tmp_path / "bzImage"
    bz.write_bytes(b"my kernel")
    info = ensure_kernel(load_target("linux-x86_64"), cache_dir=tmp_path, override=bz)
    assert (info.source, info.package, info.sha256) == \
        ("user", None, hashlib.sha256(b"my kernel").hexdigest())
    with pytest.raises(TargetError, match="kernel image not found"):
        KernelInfo.from_path(tmp_path / "missing")
    with pytest.raises(TargetError, match="boots no kernel"):
        ensure_kernel(load_target("host"), cache_dir=tmp_path)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PCERT_CACHE", str(tmp_path / "p"))
    assert default_cache_dir() == tmp_path / "p"
    monkeypatch.delenv("PCERT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "pcert"


def test_readiness_names_missing_tools(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    problems = check_ready(load_target("linux-x86_64"), cache_dir=tmp_path)
    assert "gcc not found: apt-get install gcc libc6-dev" in problems
    assert "qemu-system-x86_64 not found: apt-get install qemu-system-x86" in problems
    assert any("kernel" in p and "--kernel PATH" in p for p in problems)


def test_readiness_of_host_target():
    assert check_ready(load_target("host")) == []
    assert describe(load_target("host"))[0].startswith("compiler: gcc")


# --- image -------------------------------------------------------------------------------

def test_build_image_kinds(tmp_path):
    binary = tmp_path / "runtime"
    binary.write_bytes(b"binary")
    host = build_image(load_target("host"), binary, tmp_path / "out")
    assert (host.path, host.kind, host.size) == (binary, "none", 6)
    linux = build_image(load_target("linux-x86_64"), binary, tmp_path / "out")
    assert linux.kind == "initramfs" and linux.path == tmp_path / "out" / "initramfs.cpio"
    assert linux.to_json() == {"kind": "initramfs", "size": linux.path.stat().st_size,
                               "sha256": hashlib.sha256(linux.path.read_bytes()).hexdigest()}
    with pytest.raises(TargetError, match="runtime binary not found"):
        build_image(load_target("host"), tmp_path / "missing", tmp_path)


# --- QEMU command line -------------------------------------------------------------------

def test_qemu_command_substitutes_each_element():
    target = load_target("linux-x86_64")
    m = QemuMachine(target, Path("/k dir/vmlinuz"), Path("/img/initramfs.cpio"),
                    {"PCERT_NONCE": "0123456789abcdef", "PCERT_FIRST": "3"})
    cmd = m.command()
    assert cmd[0] == "qemu-system-x86_64"
    assert len(cmd) == 1 + len(target.machine.args)
    assert cmd[cmd.index("-kernel") + 1] == "/k dir/vmlinuz"
    assert cmd[cmd.index("-initrd") + 1] == "/img/initramfs.cpio"
    assert cmd[cmd.index("-append") + 1] == \
        "console=ttyS0 quiet panic=-1 cryptomgr.notests PCERT_FIRST=3 PCERT_NONCE=0123456789abcdef"
    assert ["-accel", "tcg,thread=single"] == cmd[cmd.index("-accel"):cmd.index("-accel") + 2]
    assert not any("{" in arg for arg in cmd)
    assert QemuMachine(target, Path("k"), Path("i"), {}).append_line() == \
        "console=ttyS0 quiet panic=-1 cryptomgr.notests"


@pytest.mark.parametrize("env, message", [
    ({"PCERT.NONCE": "x"}, "no dots"),
    ({"PCERT_ONLY": "a b"}, "without spaces"),
    ({"PCERT_ONLY": 'say"hi"'}, "double quotes"),
])
def test_qemu_refuses_guest_env_the_kernel_would_mangle(env, message):
    with pytest.raises(TargetError, match=message):
        QemuMachine(load_target("linux-x86_64"), Path("k"), Path("i"), env)


def test_qemu_refuses_a_too_long_command_line():
    m = QemuMachine(load_target("linux-x86_64"), Path("k"), Path("i"),
                    {"PCERT_ONLY": ",".join(f"TC-open-{i:03}" for i in range(300))})
    with pytest.raises(TargetError, match="guest command line is .* bytes, the limit of target "
                                          "linux-x86_64 is 2047"):
        m.command()


def test_missing_qemu_says_what_to_install(tmp_path):
    path = tmp_path / "linux-x86_64.toml"
    path.write_text(LINUX_TOML.replace('qemu = "qemu-system-x86_64"', 'qemu = "qemu-nope"'))
    m = QemuMachine(load_target(str(path)), tmp_path, tmp_path, {})
    with pytest.raises(TargetError, match="qemu-nope not found: apt-get install qemu-system-x86"):
        m.run(lambda b: None, idle_timeout_s=1, run_timeout_s=1)


# --- host machine ------------------------------------------------------------------------

def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "runtime.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def collect(machine, **limits) -> tuple[RunOutcome, bytes]:
    chunks: list[bytes] = []
    limits.setdefault("idle_timeout_s", 20)
    limits.setdefault("run_timeout_s", 60)
    outcome = machine.run(chunks.append, **limits)
    return outcome, b"".join(chunks)


def test_host_runs_with_guest_env_in_a_fresh_directory(tmp_path):
    binary = script(tmp_path, 'echo "nonce=$PCERT_NONCE"; echo "files=$(ls -A | wc -l)"\n'
                              'echo oops >&2; touch left-behind; exit 3\n')
    outcome, output = collect(HostMachine(binary, {"PCERT_NONCE": "00ff"}))
    assert output == b"nonce=00ff\nfiles=0\noops\n"
    assert (outcome.reason, outcome.exit_status) == ("exited", 3)
    assert outcome.first_output_s is not None and outcome.command == [str(binary)]


def test_host_idle_timeout_stops_a_silent_process(tmp_path):
    binary = script(tmp_path, "echo started; exec sleep 300\n")
    outcome, output = collect(HostMachine(binary, {}), idle_timeout_s=0.5)
    assert output == b"started\n"
    assert outcome.reason == "idle timeout"
    assert outcome.exit_status == -signal.SIGTERM


def test_host_run_timeout_stops_a_chatty_process(tmp_path):
    binary = script(tmp_path, "while true; do echo tick; sleep 0.05; done\n")
    outcome, output = collect(HostMachine(binary, {}), idle_timeout_s=5, run_timeout_s=1)
    assert outcome.reason == "run timeout"
    assert output.startswith(b"tick\n")


def test_host_until_ends_the_wait_after_the_grace_period(tmp_path):
    binary = script(tmp_path, "echo END; exec sleep 300\n")
    chunks: list[bytes] = []
    outcome = HostMachine(binary, {}).run(chunks.append, idle_timeout_s=30, run_timeout_s=60,
                                          until=lambda: b"END" in b"".join(chunks),
                                          end_grace_s=0.2)
    assert outcome.reason == "killed"


def test_host_signal_death_is_killed(tmp_path):
    binary = script(tmp_path, "echo bye; kill -KILL $$\n")
    outcome, output = collect(HostMachine(binary, {}))
    assert (outcome.reason, outcome.exit_status, output) == ("killed", -9, b"bye\n")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie waiting for its new parent to reap it


def test_host_leftover_children_are_stopped(tmp_path):
    binary = script(tmp_path, "sleep 300 &\necho $!\n")
    outcome, output = collect(HostMachine(binary, {}))
    assert (outcome.reason, outcome.exit_status) == ("exited", 0)
    child = int(output.split()[0])
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child)


def test_host_output_callback_errors_propagate_and_reap(tmp_path):
    binary = script(tmp_path, "echo $$; exec sleep 300\n")
    pids = []

    def explode(chunk: bytes) -> None:
        pids.append(int(chunk.split()[0]))
        raise RuntimeError("parser bug")
    with pytest.raises(RuntimeError, match="parser bug"):
        HostMachine(binary, {}).run(explode, idle_timeout_s=30, run_timeout_s=60)
    assert _gone(pids[0])


def test_host_missing_binary(tmp_path):
    with pytest.raises(TargetError, match="runtime binary not found"):
        HostMachine(tmp_path / "nope", {}).run(lambda b: None, idle_timeout_s=1, run_timeout_s=1)


# --- real boot ---------------------------------------------------------------------------

HELLO_INIT_C = b"""\
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/reboot.h>
int main(void) {
    const char *nonce = getenv("PCERT_NONCE");
    printf("hello from init nonce=%s\\n", nonce ? nonce : "(none)");
    fflush(stdout);
    reboot(RB_POWER_OFF);   /* PID 1: power the machine off */
    return 1;
}
"""


def boot(tmp_path: Path, source: bytes, guest_env: dict[str, str]):
    target = load_target("linux-x86_64")
    (tmp_path / "init.c").write_bytes(source)
    binary = Toolchain.for_target(target).cached_build([tmp_path / "init.c"], [],
                                                        tmp_path / "build")
    image = build_image(target, binary, tmp_path)
    kernel = ensure_kernel(target)  # fetched with apt-get download into the pcert cache
    assert kernel.source == "debian" and kernel.path.is_file()
    machine = QemuMachine(target, kernel.path, image.path, guest_env)
    start = time.monotonic()
    arrivals: list[tuple[float, bytes]] = []
    outcome = machine.run(lambda b: arrivals.append((time.monotonic() - start, b)),
                          idle_timeout_s=60, run_timeout_s=120)
    return outcome, arrivals


@pytest.mark.qemu
def test_boot_hello_init_and_power_off(tmp_path):
    outcome, arrivals = boot(tmp_path, HELLO_INIT_C, {"PCERT_NONCE": "0123456789abcdef"})
    console = b"".join(b for _, b in arrivals)
    assert b"hello from init nonce=0123456789abcdef" in console, console
    assert (outcome.reason, outcome.exit_status) == ("powered off", 0)
    hello_at = next(t for t, seen in _cumulative(arrivals) if b"hello from init" in seen)
    print(f"\nboot to first output {outcome.first_output_s:.2f} s, to 'hello from init' "
          f"{hello_at:.2f} s, wall {outcome.wall_s:.2f} s")


def _cumulative(arrivals):
    seen = b""
    for t, chunk in arrivals:
        seen += chunk
        yield t, seen


@pytest.mark.qemu
def test_kernel_panic_ends_qemu_and_is_on_the_console(tmp_path):
    # /init that just returns: the kernel panics ("Attempted to kill init!"); panic=-1 resets
    # at once and -no-reboot turns the reset into QEMU's exit.
    outcome, arrivals = boot(tmp_path, b"int main(void) { return 7; }\n", {})
    console = b"".join(b for _, b in arrivals)
    assert b"Kernel panic" in console and b"Attempted to kill init" in console
    assert outcome.reason == "powered off"


# --- the target matrix: kinds, definitions ------------------------------------------------

GENERIC_TOML = (DEFINITIONS_DIR / "example-generic-x86_64.toml").read_text()
BAREMETAL_TOML = (DEFINITIONS_DIR / "baremetal-aarch64-picolibc.toml").read_text()
RUNTIME_DIR = Path(targets.definition.__file__).resolve().parent / "runtime"


def write_definition(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text.replace(f'name = "{_name_in(text)}"', f'name = "{name}"', 1))
    return path


def _name_in(text: str) -> str:
    return text.split('name = "', 1)[1].split('"', 1)[0]


def test_each_builtin_kind_says_what_it_needs():
    kinds = {n: load_target(n) for n in list_targets()}
    assert {n: (t.kind, t.image_kind, t.needs_kernel, t.multi_process)
            for n, t in kinds.items()} == {
        "baremetal-aarch64-picolibc": ("qemu-semihost", "elf", False, False),
        "example-generic-x86_64": ("qemu-generic", "initramfs", True, True),
        "host": ("host", "none", False, True),
        "linux-aarch64": ("qemu-linux", "initramfs", True, True),
        "linux-x86_64": ("qemu-linux", "initramfs", True, True),
        "linux-x86_64-musl": ("qemu-linux", "initramfs", True, True),
        "linux-x86_64-rt": ("qemu-linux", "initramfs", True, True),
    }
    assert kinds["linux-aarch64"].kernel.architecture == "arm64"
    assert kinds["linux-x86_64-rt"].kernel.meta_package == "linux-image-rt-amd64"
    assert kinds["linux-x86_64-musl"].toolchain.cc == "musl-gcc"
    bare = kinds["baremetal-aarch64-picolibc"]
    assert bare.toolchain.sysroot == Path("/usr/lib/picolibc/aarch64-linux-gnu")
    assert "-DPCERT_MINIMAL" in bare.toolchain.cflags and bare.machine.append_max == 1000
    for name in ("linux-x86_64", "linux-aarch64", "linux-x86_64-musl", "linux-x86_64-rt"):
        args = kinds[name].machine.args
        assert args[args.index("-smp") + 1] == "2", name  # the start record then says ncpu=2


def test_user_kernel_file_is_relative_to_the_definition(tmp_path):
    text = GENERIC_TOML.replace('source = "debian"\nmeta_package = "linux-image-cloud-amd64"',
                                'source = "file"\npath = "vendor/bzImage"')
    path = write_definition(tmp_path, "my-os", text)
    target = load_target(str(path))
    assert target.kernel.path == tmp_path / "vendor" / "bzImage"
    assert any("kernel file" in p and "kernel.path" in p for p in check_ready(target))
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "bzImage").write_bytes(b"vendor kernel")
    info = ensure_kernel(target, cache_dir=tmp_path / "cache")
    assert (info.source, info.package, info.sha256) == \
        ("file", None, hashlib.sha256(b"vendor kernel").hexdigest())
    assert target.to_json()["kernel"]["file"] == "bzImage"   # no machine-specific path
    assert not (tmp_path / "cache").exists()                  # nothing fetched


def test_generic_kind_may_boot_without_a_kernel(tmp_path):
    no_kernel = GENERIC_TOML.replace('[kernel]\n', '[nothing]\n').split("[nothing]")[0] + \
        GENERIC_TOML.split('meta_package = "linux-image-cloud-amd64"\n', 1)[1]
    text = no_kernel.replace('"-kernel", "{kernel}",\n    "-initrd", "{image}",',
                             '"-kernel", "{image}",')
    target = load_target(str(write_definition(tmp_path, "rtos", text)))
    assert (target.kind, target.needs_kernel) == ("qemu-generic", False)
    with pytest.raises(TargetError, match="'machine.args': uses {kernel} but the target has no"):
        load_target(str(write_definition(tmp_path, "rtos2", no_kernel)))


@pytest.mark.parametrize("old, new, field", [
    ("[image]", '[kernel]\nsource = "debian"\nmeta_package = "x"\n\n[image]',
     "'kernel': a bare-metal image is its own kernel"),
    ('kind = "elf"', 'kind = "initramfs"', "'image.kind': a qemu-semihost target needs kind = \"elf\""),
    ('"-kernel", "{image}",', '"-kernel", "image.elf",', "'machine.args': has no {image}"),
])
def test_bad_baremetal_field_is_named(tmp_path, old, new, field):
    assert old in BAREMETAL_TOML
    path = write_definition(tmp_path, "bm", BAREMETAL_TOML.replace(old, new, 1))
    with pytest.raises(TargetError, match=re.escape(field)):
        load_target(str(path))


# --- toolchain: flags, link probe, partial builds ----------------------------------------

def test_flag_placeholders_are_filled_in():
    tc = Toolchain("gcc", ["-nostdinc", "-isystem", "{cc_include}", "--sysroot={sysroot}"],
                   sysroot=Path("/opt/sdk"))
    assert tc.cflags[2] == subprocess.run(["gcc", "-print-file-name=include"], text=True,
                                          capture_output=True).stdout.strip()
    assert Path(tc.cflags[2], "stddef.h").is_file() and tc.cflags[3] == "--sysroot=/opt/sdk"
    bare = Toolchain.for_target(load_target("baremetal-aarch64-picolibc"))
    assert bare.cflags[0] == "--specs=/usr/lib/picolibc/aarch64-linux-gnu/picolibc.specs"
    assert not any("{" in flag for flag in bare.cflags + bare.ldflags)


def test_link_probe_finds_the_c_library_each_toolchain_links():
    glibc = Toolchain.for_target(load_target("linux-x86_64"))
    musl = Toolchain.for_target(load_target("linux-x86_64-musl"))
    pico = Toolchain.for_target(load_target("baremetal-aarch64-picolibc"))
    assert glibc.libc_path().name == "libc.a" and "musl" not in str(glibc.libc_path())
    assert "musl" in str(musl.libc_path())   # musl-gcc -print-file-name would say glibc's
    assert "picolibc" in str(pico.libc_path())
    assert len({glibc.libc_sha256(), musl.libc_sha256(), pico.libc_sha256()}) == 3
    broken = Toolchain("gcc", ["-Wl,--no-such-linker-option"], packages=["gcc"])
    assert broken.probe_link()[0].startswith("gcc cannot link a trivial program")
    assert broken.libc_sha256() == "none"


PARTIAL_UNITS = {
    "unit_ok.c": b"""#include "pcert.h"
int vendor_only_call(int);   /* declared by a header, missing from the C library */
void tc_ok(void) { PCERT_ASSERT(1 + 1 == 2); }
void tc_missing_call(void) { PCERT_ASSERT(vendor_only_call(1) == 0); }
""",
    "unit_bad.c": b"""#include <no_such_header.h>
#include "pcert.h"
void tc_bad(void) { PCERT_ASSERT(0); }
""",
    "cases.c": b"""#include "pcert.h"
void tc_ok(void); void tc_missing_call(void); void tc_bad(void);
const struct pcert_case pcert_cases[] = {
    { "TC-ok", tc_ok, "", 0 }, { "TC-missing", tc_missing_call, "", 0 }, { "TC-bad", tc_bad, "", 0 },
};
const unsigned pcert_ncases = 3;
""",
}


def write_units(folder: Path, units: dict[str, bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in units.items():
        (folder / name).write_bytes(text)
    return [folder / name for name in units]


def run_results(binary: Path, tmp_path: Path, **env) -> dict[str, tuple[str, str]]:
    nonce = "0123456789abcdef"
    done = subprocess.run([str(binary)], env={"PCERT_NONCE": nonce, "TMPDIR": str(tmp_path),
                                              **env}, capture_output=True, timeout=60)
    records = RecordParser(nonce).feed(done.stdout)
    return {r.fields["id"]: (r.fields["verdict"], r.fields["reason"])
            for r in records if r.kind == "result"}


def test_partial_build_leaves_out_what_does_not_build_and_stubs_what_is_missing(tmp_path):
    units = write_units(tmp_path / "gen", PARTIAL_UNITS)
    sources = [*units, RUNTIME_DIR / "pcert.c"]
    tc = Toolchain.for_target(load_target("host"))
    info = tc.cached_build_info(sources, [RUNTIME_DIR], tmp_path / "build", optional=units)
    assert list(info.left_out) == ["unit_bad.c"]
    assert info.left_out["unit_bad.c"].startswith("unit_bad.c:1:10: fatal error: no_such_header.h")
    assert info.stubs == {
        "tc_bad": f"not built for this target: {info.left_out['unit_bad.c']}",
        "vendor_only_call": "vendor_only_call: not provided by this target's libraries "
                            "(undefined at link time)"}
    assert info.to_json() == {"left_out": info.left_out, "stubs": info.stubs}
    assert b"void vendor_only_call(void)" in info.stub_source
    assert run_results(info.path, tmp_path) == {
        "TC-ok": ("PASS", ""),
        "TC-missing": ("UNSUPPORTED", info.stubs["vendor_only_call"]),
        "TC-bad": ("UNSUPPORTED", info.stubs["tc_bad"])}
    # Cached: no compiler run, the same account of what was left out.
    again = Toolchain.for_target(load_target("host"))
    cached = again.cached_build_info(sources, [RUNTIME_DIR], tmp_path / "build", optional=units)
    assert again.compiles == 0 and cached == info


def test_partial_build_never_excuses_the_runtime(tmp_path):
    units = write_units(tmp_path / "gen", PARTIAL_UNITS)
    broken_runtime = tmp_path / "rt" / "pcert.c"
    broken_runtime.parent.mkdir()
    broken_runtime.write_bytes((RUNTIME_DIR / "pcert.c").read_bytes() + b"\nnot C at all\n")
    tc = Toolchain.for_target(load_target("host"))
    with pytest.raises(TargetError, match="cannot build the runtime \\(pcert.c\\)"):
        tc.cached_build_info([*units, broken_runtime], [RUNTIME_DIR], tmp_path / "b1",
                             optional=units)
    with pytest.raises(TargetError, match="failed to build pcert-runtime"):  # strict: as before
        tc.cached_build_info([*units, RUNTIME_DIR / "pcert.c"], [RUNTIME_DIR], tmp_path / "b2")
    assert not any((tmp_path / "b2").rglob("pcert-runtime"))


def test_stub_reasons_survive_any_text(tmp_path):
    reason = 'a "quoted" \\ back\\slash ??/ trigraph\nnew line \u00e9'
    (tmp_path / "stubs.c").write_bytes(targets.toolchain.stub_file({"missing_fn": reason}))
    (tmp_path / "cases.c").write_bytes(b"""#include "pcert.h"
void missing_fn(void);
const struct pcert_case pcert_cases[] = { { "TC-x", missing_fn, "", 0 } };
const unsigned pcert_ncases = 1;
""")
    binary = tmp_path / "rt"
    Toolchain("gcc", ["-std=c99", "-D_POSIX_C_SOURCE=200809L", "-D_XOPEN_SOURCE=700", "-Wall",
                      "-Werror", "-Wno-trigraphs"]).compile_and_link(
        [tmp_path / "stubs.c", tmp_path / "cases.c", RUNTIME_DIR / "pcert.c"], [RUNTIME_DIR],
        binary)
    assert run_results(binary, tmp_path) == {"TC-x": ("UNSUPPORTED", reason)}


# --- kernels of another architecture --------------------------------------------------------

def test_foreign_architecture_uses_package_lists_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel_module, "_native_architecture", lambda: "amd64")
    assert kernel_module.Apt.for_architecture(None, tmp_path).options == ()
    assert kernel_module.Apt.for_architecture("amd64", tmp_path).options == ()
    apt = kernel_module.Apt.for_architecture("arm64", tmp_path)
    assert apt.private and apt.lists == tmp_path / "apt-arm64" / "lists"
    assert apt.options == ("-oAPT::Architecture=arm64", "-oAPT::Architectures=arm64",
                           f"-oDir::State::Lists={tmp_path / 'apt-arm64' / 'lists'}",
                           f"-oDir::Cache={tmp_path / 'apt-arm64' / 'cache'}")


def test_private_lists_are_fetched_when_missing_or_older_than_the_systems(tmp_path):
    system, private = tmp_path / "system", tmp_path / "private"
    system.mkdir(), private.mkdir()
    (system / "deb_dists_bookworm_main_binary-amd64_Packages").write_text("x")
    assert kernel_module._lists_older(private, system)            # none yet
    (private / "deb_dists_bookworm_main_binary-arm64_Packages").write_text("x")
    os.utime(system / "deb_dists_bookworm_main_binary-amd64_Packages", (1000, 1000))
    assert not kernel_module._lists_older(private, system)        # fresher than the system's
    os.utime(system / "deb_dists_bookworm_main_binary-amd64_Packages", None)
    os.utime(private / "deb_dists_bookworm_main_binary-arm64_Packages", (1000, 1000))
    assert kernel_module._lists_older(private, system)            # apt-get update ran since


def test_foreign_kernel_is_asked_of_apt_with_the_private_lists(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, *, timeout, cwd=None):
        calls.append(cmd)
        if cmd[:2] == ["apt-get", "-q"]:   # update: leave a package list behind
            (tmp_path / "apt-arm64" / "lists" / "x_binary-arm64_Packages").write_text("")
        out = "linux-image-cloud-arm64\n  Depends: linux-image-9-cloud-arm64\n"
        return subprocess.CompletedProcess(cmd, 0, out if "depends" in cmd else "", "")
    monkeypatch.setattr(kernel_module, "_run", fake_run)
    monkeypatch.setattr(kernel_module, "_native_architecture", lambda: "amd64")
    target = load_target("linux-aarch64")
    apt = kernel_module.Apt.for_architecture("arm64", tmp_path)
    assert kernel_module.resolve_package("linux-image-cloud-arm64", tmp_path, apt) == \
        "linux-image-9-cloud-arm64"
    assert calls[0] == ["apt-get", "-q", *apt.options, "update"]
    assert calls[1] == ["apt-cache", *apt.options, "depends", "linux-image-cloud-arm64"]
    assert target.kernel.architecture == "arm64"


# --- images and machines of every kind ----------------------------------------------------

def test_elf_image_is_the_binary_itself(tmp_path):
    target = load_target("baremetal-aarch64-picolibc")
    not_elf = tmp_path / "runtime"
    not_elf.write_bytes(b"#!/bin/sh\n")
    with pytest.raises(TargetError, match="not an ELF file"):
        build_image(target, not_elf, tmp_path / "out")
    elf = tmp_path / "runtime.elf"
    elf.write_bytes(b"\x7fELF" + b"\0" * 60)
    image = build_image(target, elf, tmp_path / "out")
    assert (image.path, image.kind, image.size) == (elf, "elf", 64)
    assert not (tmp_path / "out").exists()


def test_make_machine_picks_the_driver_by_kind(tmp_path):
    binary = tmp_path / "bin"
    image = targets.image.ImageInfo(path=tmp_path / "image", kind="initramfs", sha256="0" * 64,
                                    size=0)
    kernel = KernelInfo(path=tmp_path / "vmlinuz", package=None, version=None, deb_sha256=None,
                        sha256="0" * 64, source="user")
    env = {"PCERT_NONCE": "0123456789abcdef"}
    make = targets.drivers.make_machine
    assert type(make(load_target("host"), binary=binary, image=image, kernel=None,
                     guest_env=env)) is HostMachine
    linux = make(load_target("linux-aarch64"), binary=binary, image=image, kernel=kernel,
                 guest_env=env)
    assert type(linux) is QemuMachine and linux.command()[0] == "qemu-system-aarch64"
    assert "console=ttyAMA0" in linux.command()[-1]
    generic = make(load_target("example-generic-x86_64"), binary=binary, image=image,
                   kernel=kernel, guest_env=env)
    assert generic.command()[1:3] == ["-M", "q35"]
    bare = make(load_target("baremetal-aarch64-picolibc"), binary=binary, image=image,
                kernel=None, guest_env=env)
    assert type(bare) is targets.drivers.semihost.SemihostMachine
    assert bare.tools_json()["qemu"]["command"] == "qemu-system-aarch64"
    assert HostMachine(binary, env).tools_json() == {}
    with pytest.raises(TargetError, match="boots a kernel: find it first"):
        make(load_target("linux-x86_64"), binary=binary, image=image, kernel=None,
             guest_env=env)


def test_semihost_command_line_is_the_same_everywhere_and_bounded():
    target = load_target("baremetal-aarch64-picolibc")
    m = targets.drivers.semihost.SemihostMachine(
        target, Path("/anywhere/pcert-runtime"), {"PCERT_NONCE": "0123456789abcdef"})
    cmd = m.command()
    assert cmd[cmd.index("-kernel") + 1] == "image.elf"
    assert cmd[cmd.index("-semihosting-config") + 1] == "enable=on,target=native"
    assert cmd[-1] == "PCERT_NONCE=0123456789abcdef"
    long = targets.drivers.semihost.SemihostMachine(
        target, Path("x"), {"PCERT_ONLY": ",".join(f"TC-open-{i:03}" for i in range(100))})
    with pytest.raises(TargetError, match="the limit of target baremetal-aarch64-picolibc is 1000"):
        long.command()
    with pytest.raises(TargetError, match="not qemu-semihost"):
        targets.drivers.semihost.SemihostMachine(load_target("linux-x86_64"), Path("x"), {})


# --- real boots of every QEMU target: the real runtime, a small hand-written case table ------

MATRIX_CASES_C = b"""#include "pcert.h"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int vendor_only_call(int);
static void tc_pass(void) { printf("hello from the guest\\n"); }
static void tc_fail(void) { int three = 3; PCERT_ASSERT_INT(three + 1, ==, 5); }
static void tc_threads(void) { PCERT_ASSERT(1); }
static void tc_file(void)
{
    char buf[8] = "";
    int fd = open("f", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    PCERT_REQUIRE(fd >= 0);
    PCERT_ASSERT_INT(write(fd, "abc", 3), ==, 3);
    PCERT_ASSERT_INT(close(fd), ==, 0);
    fd = open("f", O_RDONLY);
    PCERT_ASSERT_INT(read(fd, buf, sizeof buf), ==, 3);
    PCERT_ASSERT_STR(buf, "abc");
    close(fd);
}
static void tc_hang(void) { volatile int spin = 1; while (spin) continue; }
static void tc_missing(void) { PCERT_ASSERT(vendor_only_call(2) == 0); }
const struct pcert_case pcert_cases[] = {
    { "TC-pass", tc_pass, "", 0 },
    { "TC-fail", tc_fail, "", 0 },
    { "TC-threads", tc_threads, "_POSIX_THREADS", 0 },
    { "TC-file", tc_file, "", 0 },
    { "TC-hang", tc_hang, "", 2 },
    { "TC-missing", tc_missing, "", 0 },
};
const unsigned pcert_ncases = 6;
"""
NONCE = "0123456789abcdef"


def build_for(target, tmp_path: Path) -> targets.toolchain.BuildInfo:
    cases = tmp_path / "gen" / "cases.c"
    cases.parent.mkdir(parents=True, exist_ok=True)
    cases.write_bytes(MATRIX_CASES_C)
    return Toolchain.for_target(target).cached_build_info(
        [cases, RUNTIME_DIR / "pcert.c"], [RUNTIME_DIR], tmp_path / "build", optional=[cases])


def boot_runtime(target, image, guest_env: dict, idle_s: float, kernel=None):
    parser = RecordParser(NONCE)
    records, console = [], bytearray()

    def feed(chunk: bytes) -> None:
        console.extend(chunk)
        records.extend(parser.feed(chunk))
    machine = targets.drivers.make_machine(target, binary=image.path, image=image, kernel=kernel,
                                           guest_env={"PCERT_NONCE": NONCE, **guest_env})
    outcome = machine.run(feed, idle_timeout_s=idle_s, run_timeout_s=300,
                          until=lambda: any(r.kind == "end" for r in records))
    assert parser.anomalies == [], parser.anomalies
    results = {r.fields["id"]: (r.fields["verdict"], r.fields["reason"])
               for r in records if r.kind == "result"}
    return outcome, records, results, bytes(console)


@pytest.mark.qemu
def test_baremetal_image_runs_resumes_after_a_hang_and_exits_with_its_status(tmp_path,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)   # semihosting file operations must not land here
    target = load_target("baremetal-aarch64-picolibc")
    info = build_for(target, tmp_path)
    # No processes: the vendor call is stubbed; nothing else was left out.
    assert info.left_out == {} and list(info.stubs) == ["vendor_only_call"]
    image = build_image(target, info.path, tmp_path / "image")
    outcome, records, results, console = boot_runtime(target, image, {}, idle_s=5)
    start = records[0].fields
    assert (start["sysname"], start["release"], start["machine"], start["fork"]) == \
        ("picolibc", start["release"], "aarch64", "0") and start["release"][0].isdigit()
    assert start["opt._POSIX_THREADS"] == "undef"
    assert results == {"TC-pass": ("PASS", ""),
                       "TC-fail": ("FAIL", "three + 1: got 4, want == 5"),
                       "TC-threads": ("UNSUPPORTED", "option _POSIX_THREADS not supported"),
                       "TC-file": ("PASS", "")}
    assert b"hello from the guest\n" in console          # straight to the console
    assert records[-1].kind == "begin" and records[-1].fields["id"] == "TC-hang"
    assert outcome.reason == "idle timeout"               # a hang ends the image
    durations = [int(r.fields["dur_ns"]) for r in records if r.kind == "result"]
    assert all(0 <= d < 60 * 10**9 for d in durations)    # clock() units are corrected
    # The host boots it again at the next test case.
    outcome, records, results, _ = boot_runtime(target, image, {"PCERT_FIRST": "5"}, idle_s=20)
    assert records[0].fields["first"] == "5"
    assert results == {"TC-missing": ("UNSUPPORTED", info.stubs["vendor_only_call"])}
    assert (outcome.reason, outcome.exit_status) == ("exited", 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build", "gen"]  # no "f" here


@pytest.mark.qemu
@pytest.mark.parametrize("name, machine, ncpu", [
    ("linux-aarch64", "aarch64", "2"),
    ("linux-x86_64-musl", "x86_64", "2"),
    ("linux-x86_64-rt", "x86_64", "2"),
    ("example-generic-x86_64", "x86_64", "1"),
])
def test_linux_target_boots_the_runtime(tmp_path, name, machine, ncpu):
    target = load_target(name)
    info = build_for(target, tmp_path)
    assert list(info.stubs) == ["vendor_only_call"]
    image = build_image(target, info.path, tmp_path / "image")
    kernel = ensure_kernel(target)
    outcome, records, results, _ = boot_runtime(
        target, image, {"PCERT_ONLY": "TC-pass,TC-fail,TC-threads,TC-file,TC-missing"},
        idle_s=target.machine.idle_timeout_s, kernel=kernel)
    start = records[0].fields
    assert (start["machine"], start["ncpu"], start["fork"]) == (machine, ncpu, "1")
    if name == "linux-x86_64-rt":
        assert "-rt-" in start["release"] and "PREEMPT_RT" in start["version"]
    assert results == {"TC-pass": ("PASS", ""),
                       "TC-fail": ("FAIL", "three + 1: got 4, want == 5"),
                       "TC-threads": ("PASS", ""), "TC-file": ("PASS", ""),
                       "TC-missing": ("UNSUPPORTED", info.stubs["vendor_only_call"])}
    assert (outcome.reason, outcome.exit_status) == ("powered off", 0)


@pytest.mark.parametrize("name", list_targets())
@pytest.mark.parametrize("port", [[], ["-DPCERT_NO_FORK"], ["-DPCERT_MINIMAL",
                                                             '-DPCERT_SYSNAME="x"',
                                                             '-DPCERT_RELEASE="1"',
                                                             '-DPCERT_MACHINE="y"']])
def test_runtime_ports_compile_without_warnings_with_every_toolchain(tmp_path, name, port):
    tc = Toolchain.for_target(load_target(name))
    if "-DPCERT_MINIMAL" in tc.cflags and port:
        pytest.skip("a bare-metal C library has only the minimal port, its own flags")
    cmd = [str(tc.path()), *tc.cflags, *port, "-Wextra", "-Werror", f"-I{RUNTIME_DIR}", "-c",
           str(RUNTIME_DIR / "pcert.c"), "-o", str(tmp_path / "pcert.o")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
