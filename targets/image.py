"""The image a target runs: an initramfs around the runtime binary, or the binary itself.

>>> target = load_target("linux-x86_64")
>>> info = build_image(target, Path("pcert-runtime"), out_dir)        # doctest: +SKIP
>>> info.kind, info.path.name                                         # doctest: +SKIP
('initramfs', 'initramfs.cpio')

Kinds: "initramfs" (newc cpio with the binary as /init), "elf" (the linked bare-metal ELF is
the whole image: it is checked to be an ELF file and used where it is), "none" (the binary
runs natively).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from targets.definition import Target
from targets.errors import TargetError
from targets.initramfs import build_initramfs
from targets.hashing import file_sha256


@dataclass(frozen=True)
class ImageInfo:
    """What was built: its path, kind ("initramfs" | "elf" | "none"), sha256 and size in bytes."""

    path: Path
    kind: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        """For the bundle manifest (no machine-specific path)."""
        return {"kind": self.kind, "sha256": self.sha256, "size": self.size}


def build_image(target: Target, init_binary: Path, out_dir: Path) -> ImageInfo:
    """Build the target's image for `init_binary` in `out_dir` ("elf", "none": no new file)."""
    init_binary = Path(init_binary)
    if not init_binary.is_file():
        raise TargetError(f"{init_binary}: runtime binary not found (build it first)")
    if target.image_kind == "initramfs":
        out = Path(out_dir) / "initramfs.cpio"
        sha256 = build_initramfs(init_binary, out)
        return ImageInfo(path=out, kind="initramfs", sha256=sha256, size=out.stat().st_size)
    if target.image_kind == "elf":
        with open(init_binary, "rb") as f:
            if f.read(4) != b"\x7fELF":
                raise TargetError(f"{init_binary}: not an ELF file, so not a bare-metal image "
                                  "(check the target's toolchain flags)")
    if target.image_kind in ("elf", "none"):
        return ImageInfo(path=init_binary, kind=target.image_kind,
                         sha256=file_sha256(init_binary), size=init_binary.stat().st_size)
    raise TargetError(f"{target.definition_path}: field 'image.kind': cannot build "
                      f"{target.image_kind!r} images")
