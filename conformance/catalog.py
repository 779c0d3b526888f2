"""The requirement catalog: interface requirements from the profile table, behavioural
requirements and test cases from spec items.

Every interface of the profile table yields one requirement `REQ-IF-<name>`: the interface is
declared by its header and can be linked. Spec items add behavioural requirements
(`REQ-<interface>-<NNN>`) and the test cases that verify them.

>>> cat = Catalog.load()
>>> cat.requirement("REQ-IF-open").method
'link'
>>> len(cat.spec_set.test_cases) >= 40
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import profiles
from .catalog_cache import load_cached
from .requirements import Requirement
from .specitems import SpecSet, builtin_spec_dir


def interface_requirement_id(name: str) -> str:
    return f"REQ-IF-{name}"


def interface_requirement(iface: profiles.Interface) -> Requirement:
    """Presence of one interface, worded by us; verified by compile and link checks."""
    what = "function (or function-like macro)" if iface.kind == "callable" else "object"
    edition = iface.editions[-1] if iface.editions else "2017"
    return Requirement.make(
        interface_requirement_id(iface.name),
        interface=iface.name,
        unit=iface.unit,
        text=(f"The {what} {iface.name} is declared by the header <{iface.header}> and an "
              f"application that refers to it compiles and links."),
        source={"standard": f"POSIX.1-{edition}", "section": f"<{iface.header}>",
                "interface": iface.name,
                **({"option": iface.option_group} if iface.option_group else {})},
        method="link",
    )


@dataclass
class Catalog:
    spec_set: SpecSet
    spec_dirs: tuple[Path, ...]

    @classmethod
    def load(cls, extra_spec_dirs: tuple[Path, ...] = (), *,
             cache_dir: Path | None = None) -> "Catalog":
        """The built-in spec files and those of ``extra_spec_dirs``; a set of spec files loaded
        before comes from the cache (``cache_dir``, default <pcert cache>/catalog), see
        conformance/catalog_cache.py."""
        dirs = (builtin_spec_dir(), *extra_spec_dirs)
        return cls(spec_set=load_cached(list(dirs), cache_dir), spec_dirs=dirs)

    def requirement(self, req_id: str) -> Requirement:
        if req_id in self.spec_set.requirements:
            return self.spec_set.requirements[req_id]
        if req_id.startswith("REQ-IF-"):
            iface = profiles.interfaces().get(req_id.removeprefix("REQ-IF-"))
            if iface:
                return interface_requirement(iface)
        raise KeyError(req_id)

    def interface_requirements(self, names) -> list[Requirement]:
        table = profiles.interfaces()
        return [interface_requirement(table[n]) for n in sorted(names) if n in table]

    def behavioural_requirements(self) -> list[Requirement]:
        return sorted(self.spec_set.requirements.values(), key=lambda r: r.id)
