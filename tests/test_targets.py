"""Tests of the targets package: definitions, initramfs, toolchain, kernel cache, drivers.

The tests marked `qemu` boot a real Debian kernel in QEMU (the kernel is fetched with apt-get
download into the pcert cache the first time, ~14 MB).
"""

from __future__ import annotations

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

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import targets.definition
import targets.drivers.host
import targets.drivers.qemu
import targets.errors
import targets.initramfs
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
from targets.toolchain import Toolchain

LINUX_TOML = (DEFINITIONS_DIR / "linux-x86_64.toml").read_text()


@pytest.mark.parametrize("module", [targets.errors, targets.definition, targets.initramfs,
                                    targets.drivers.qemu, targets.drivers.host])
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.failed == 0


# --- definitions -------------------------------------------------------------------------

def test_builtin_targets_load_and_serialise():
    assert list_targets() == ["host", "linux-x86_64"]
    linux = load_target("linux-x86_64")
    assert (linux.kind, linux.arch, linux.multi_process) == ("qemu-linux", "x86_64", True)
    assert linux.toolchain.ldflags == ("-static",)
    assert "-D_POSIX_C_SOURCE=200809L" in linux.toolchain.cflags
    assert linux.kernel.meta_package == "linux-image-cloud-amd64"
    assert linux.machine.qemu == "qemu-system-x86_64"
    host = load_target("host")
    assert (host.kind, host.kernel, host.image_kind, host.machine.qemu) == \
        ("host", None, "none", None)
    assert host.arch == platform.machine()
    for target in (linux, host):
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
    with pytest.raises(TargetError, match="unknown target 'vax'.*host, linux-x86_64"):
        load_target("vax")


@pytest.mark.parametrize("old, new, field", [
    ('kind = "qemu-linux"', 'kind = "vm"', "'kind': must be one of"),
    ('qemu = "qemu-system-x86_64"\n', "", "'machine.qemu': missing"),
    ('ldflags = ["-static"]', 'ldflags = "-static"', "'toolchain.ldflags': must be a list"),
    ('ldflags = ["-static"]', 'ldflags = ["-static", 3]', "'toolchain.ldflags[1]'"),
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


def test_cached_kernel_needs_no_apt(tmp_path, monkeypatch):
    kernels = tmp_path
    vmlinuz = fake_cached_kernel(kernels, "linux-image-9-cloud-amd64", "linux-image-cloud-amd64",
                                 lists="unchanged lists")
    monkeypatch.setattr(kernel_module, "_apt_lists_signature", lambda: "unchanged lists")

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"unexpected subprocess {args}")
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    info = ensure_kernel(load_target("linux-x86_64"), cache_dir=tmp_path)
    assert (info.path, info.package, info.version, info.source) == \
        (vmlinuz.resolve(), "linux-image-9-cloud-amd64", "6.1.1-1", "debian")
    assert info.to_json()["sha256"] == hashlib.sha256(b"pretend kernel").hexdigest()


def test_offline_falls_back_to_the_cached_kernel(tmp_path, monkeypatch):
    kernels = tmp_path
    fake_cached_kernel(kernels, "linux-image-9-cloud-amd64", "linux-image-cloud-amd64",
                       "old lists")

    def offline(meta):
        raise TargetError("apt-cache depends: no lists")
    monkeypatch.setattr(kernel_module, "_apt_depends", offline)
    info = ensure_kernel(load_target("linux-x86_64"), cache_dir=tmp_path)
    assert info.package == "linux-image-9-cloud-amd64"
    # A damaged kernel is not trusted: with no apt either, the error says what to do.
    info.path.write_bytes(b"tampered")
    assert cached_kernel(kernels, "linux-image-9-cloud-amd64") is None
    with pytest.raises(TargetError, match="no lists"):
        ensure_kernel(load_target("linux-x86_64"), cache_dir=tmp_path)


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
        "console=ttyS0 quiet panic=-1 PCERT_FIRST=3 PCERT_NONCE=0123456789abcdef"
    assert ["-accel", "tcg"] == cmd[cmd.index("-accel"):cmd.index("-accel") + 2]
    assert not any("{" in arg for arg in cmd)
    assert QemuMachine(target, Path("k"), Path("i"), {}).append_line() == \
        "console=ttyS0 quiet panic=-1"


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
    with pytest.raises(TargetError, match="kernel command line is .* bytes, the limit is 2047"):
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
