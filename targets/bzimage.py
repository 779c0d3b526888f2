"""The ELF kernel inside an x86 bzImage, for QEMU's PVH entry.

    >>> elf = unpack_bzimage(Path("vmlinuz").read_bytes())    # doctest: +SKIP
    >>> has_pvh_entry(elf)                                     # doctest: +SKIP
    True

Why: under TCG, a bzImage spends about 0.6 s of every boot in SeaBIOS' real-mode loader and in
decompressing itself. An ELF kernel with a PVH entry note (Xen's PHYS32_ENTRY, which Debian's
x86 kernels carry) is loaded by QEMU straight into memory and entered in 32-bit mode. The
kernel is the same code: this is the payload the bzImage would have decompressed.

How: the bzImage's setup header (Linux boot protocol 2.08 and later) gives the offset and length
of the compressed payload; its first bytes name the compressor. gzip, bzip2, xz and lzma are
decompressed here; zstd and lz4 (Debian's choice) by the `zstd` and `lz4` programs.
"""

from __future__ import annotations

import bz2
import lzma
import shutil
import struct
import subprocess
import zlib

from targets.errors import TargetError

XEN_ELFNOTE_PHYS32_ENTRY = 18
_TOOL_TIMEOUT_S = 120


def unpack_bzimage(data: bytes, name: str = "kernel") -> bytes:
    """The uncompressed ELF kernel of a bzImage; TargetError naming `name` when it is not one."""
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        raise TargetError(f"{name}: not a bzImage (no HdrS setup header)")
    if struct.unpack_from("<H", data, 0x206)[0] < 0x208:
        raise TargetError(f"{name}: boot protocol older than 2.08 gives no payload location")
    setup_sectors = data[0x1F1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sectors + 1) * 512 + offset
    payload = data[start:start + length]
    if len(payload) != length or length == 0:
        raise TargetError(f"{name}: the payload [{start}, {start + length}) lies outside the file")
    elf = _decompress(payload, name)
    if not elf.startswith(b"\x7fELF"):
        raise TargetError(f"{name}: the decompressed payload is not an ELF file")
    return elf


def _decompress(payload: bytes, name: str) -> bytes:
    try:
        if payload.startswith(b"\x1f\x8b"):
            return zlib.decompressobj(wbits=31).decompress(payload)
        if payload.startswith(b"BZh"):
            return bz2.BZ2Decompressor().decompress(payload)
        if payload.startswith(b"\xfd7zXZ\x00"):
            return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(payload)
        if payload.startswith(b"\x5d\x00\x00"):
            return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(payload)
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise TargetError(f"{name}: the compressed payload is damaged: {exc}") from None
    if payload.startswith(b"\x28\xb5\x2f\xfd"):
        return _with_tool(["zstd", "-dcq"], "zstd", payload, name)
    if payload.startswith(b"\x02\x21\x4c\x18"):  # lz4's legacy frame, as the kernel writes it
        return _with_tool(["lz4", "-dcq"], "lz4", payload, name)
    raise TargetError(f"{name}: unknown compression (payload begins {payload[:4].hex()})")


def _with_tool(command: list[str], package: str, payload: bytes, name: str) -> bytes:
    if shutil.which(command[0]) is None:
        raise TargetError(f"{command[0]} not found (needed to unpack {name}): "
                          f"apt-get install {package}")
    try:
        result = subprocess.run(command, input=payload, capture_output=True,
                                timeout=_TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TargetError(f"{command[0]} took over {_TOOL_TIMEOUT_S} s on {name}") from None
    if not result.stdout:  # the kernel appends its size after the frame: lz4 may complain
        raise TargetError(f"{command[0]} could not unpack {name}: "
                          f"{result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def has_pvh_entry(elf: bytes) -> bool:
    """Whether a 64-bit little-endian ELF file has a Xen PHYS32_ENTRY note (QEMU's PVH boot)."""
    if len(elf) < 64 or elf[4] != 2 or elf[5] != 1:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + 56 > len(elf):
            return False
        p_type, = struct.unpack_from("<I", elf, at)
        if p_type != 4:  # PT_NOTE
            continue
        offset, = struct.unpack_from("<Q", elf, at + 8)
        size, = struct.unpack_from("<Q", elf, at + 32)
        if _notes_have(elf[offset:offset + size], b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY):
            return True
    return False


def _notes_have(notes: bytes, owner: bytes, kind: int) -> bool:
    at = 0
    while at + 12 <= len(notes):
        namesz, descsz, note_type = struct.unpack_from("<III", notes, at)
        name = notes[at + 12:at + 12 + namesz]
        if name == owner and note_type == kind:
            return True
        at += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False
