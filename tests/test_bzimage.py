"""The ELF kernel inside a bzImage (targets/bzimage.py): synthetic images for each path, and
the real Debian kernel the x86 targets boot."""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct

import pytest

from targets.bzimage import has_pvh_entry, unpack_bzimage
from targets.definition import load_target
from targets.errors import TargetError
from targets.kernel import ensure_kernel, unpacked_kernel


def elf_with_notes(*notes: tuple[bytes, int]) -> bytes:
    """A minimal ELF64 file: a header, one PT_NOTE program header, the notes."""
    body = b""
    for name, kind in notes:
        padded = name + b"\0" * (-len(name) % 4)
        body += struct.pack("<III", len(name), 4, kind) + padded + b"\0\0\0\0"
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 64)            # e_phoff
    struct.pack_into("<HH", header, 0x36, 56, 1)        # e_phentsize, e_phnum
    phdr = struct.pack("<IIQQQQQQ", 4, 0, 120, 0, 0, len(body), len(body), 4)
    return bytes(header) + phdr + body


def bzimage(payload: bytes, *, version: int = 0x20F, setup_sectors: int = 2) -> bytes:
    setup = bytearray((setup_sectors + 1) * 512)
    setup[0x1F1] = setup_sectors
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, version)
    struct.pack_into("<II", setup, 0x248, 16, len(payload))
    return bytes(setup) + b"\0" * 16 + payload + b"trailing bytes"


PVH_ELF = elf_with_notes((b"Xen\0", 6), (b"Xen\0", 18))


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress,
                                      lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE)],
                         ids=["gzip", "bzip2", "xz", "lzma"])
def test_each_stdlib_compression_unpacks_to_the_same_elf(compress):
    assert unpack_bzimage(bzimage(compress(PVH_ELF))) == PVH_ELF


def test_the_pvh_note_is_found_only_where_it_is():
    assert has_pvh_entry(PVH_ELF)
    assert not has_pvh_entry(elf_with_notes((b"Xen\0", 6), (b"GNU\0", 18)))
    assert not has_pvh_entry(b"\x7fELF\x01\x01" + bytes(60))    # 32-bit: not ours to boot
    assert not has_pvh_entry(PVH_ELF[:100])                    # cut short: no crash, no note


@pytest.mark.parametrize("image, message", [
    (b"MZ" + bytes(0x300), "not a bzImage"),
    (bzimage(gzip.compress(PVH_ELF), version=0x206), "older than 2.08"),
    (bzimage(b"\x00\x01\x02\x03" * 8), "unknown compression (payload begins 00010203)"),
    (bzimage(gzip.compress(PVH_ELF))[:-40], "lies outside the file"),
    (bzimage(gzip.compress(b"not an ELF file")), "not an ELF file"),
    (bzimage(b"\x1f\x8b" + b"\xff" * 30), "damaged"),
])
def test_a_bad_image_is_one_clear_error(image, message):
    with pytest.raises(TargetError, match="vmlinuz-test") as err:
        unpack_bzimage(image, "vmlinuz-test")
    assert message in str(err.value)


def test_the_cache_keeps_the_elf_next_to_its_bzimage_and_notices_a_change(tmp_path):
    from targets.kernel import KernelInfo
    source = tmp_path / "bzImage"
    source.write_bytes(bzimage(gzip.compress(PVH_ELF)))
    info = unpacked_kernel(KernelInfo.from_path(source), tmp_path / "cache")
    assert info.path.read_bytes() == PVH_ELF and info.unpacked_from != info.sha256
    (tmp_path / "cache" / "vmlinux").write_bytes(b"tampered")
    again = unpacked_kernel(KernelInfo.from_path(source), tmp_path / "cache")
    assert again.path.read_bytes() == PVH_ELF and again.sha256 == info.sha256


def test_a_kernel_without_a_pvh_note_is_refused_with_what_to_do(tmp_path):
    from targets.kernel import KernelInfo
    source = tmp_path / "bzImage"
    source.write_bytes(bzimage(gzip.compress(elf_with_notes((b"GNU\0", 3)))))
    with pytest.raises(TargetError, match="remove pvh = true"):
        unpacked_kernel(KernelInfo.from_path(source), tmp_path / "cache")


def test_debians_x86_kernels_carry_the_pvh_entry():
    """The kernel linux-x86_64 boots (Debian's cloud kernel, lz4-compressed)."""
    target = load_target("linux-x86_64")
    try:
        info = ensure_kernel(target)
    except TargetError as exc:
        pytest.skip(f"kernel not available here: {exc}")
    assert target.kernel.pvh and info.unpacked_from and info.path.name == "vmlinux"
    assert has_pvh_entry(info.path.read_bytes())
