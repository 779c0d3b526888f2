"""The planner: which requirements and test cases a run covers, for a profile on a target.

A test case is planned when one of the requirements it verifies constrains an interface the
profile requires on that target (MP-marked interfaces only where the target has processes).
The requirements in scope are the profile's interface requirements plus the behavioural
requirements of those interfaces, so interfaces without tests show up as gaps.

>>> from conformance.catalog import Catalog
>>> from conformance.profiles import load_profile
>>> plan = make_plan(Catalog.load(), load_profile("face-safety-base"), multi_process=True)
>>> plan.test_cases == sorted(plan.test_cases, key=lambda t: t.id)
True
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .catalog import Catalog
from .errors import RunError
from .profiles import Profile
from .requirements import Requirement
from .specitems import TestCase


@dataclass(frozen=True)
class Plan:
    profile: Profile
    multi_process: bool
    requirements: list[Requirement]   # sorted by id
    test_cases: list[TestCase]        # plan order: sorted by id
    interfaces: frozenset[str]        # the interfaces required on this target

    def to_json(self) -> dict:
        return {
            "profile": self.profile.name,
            "edition": self.profile.edition,
            "profile_title": self.profile.title,
            "multi_process": self.multi_process,
            "interfaces": len(self.interfaces),
            "requirements": len(self.requirements),
            "test_cases": len(self.test_cases),
        }


def make_plan(catalog: Catalog, profile: Profile, *, multi_process: bool,
              only: frozenset[str] | None = None) -> Plan:
    """Plan `profile` for a target; `only` restricts to the given test case ids."""
    required = profile.required_for(multi_process)
    behavioural = [r for r in catalog.behavioural_requirements()
                   if r.interface in required and r.status == "active"]
    in_scope = {r.id for r in behavioural}
    cases = [tc for tc in catalog.spec_set.test_cases.values()
             if any(v in in_scope for v in tc.verifies)]
    if only is not None:
        unknown = only - set(catalog.spec_set.test_cases)
        if unknown:
            raise RunError(f"unknown test case id(s): {', '.join(sorted(unknown))}")
        cases = [tc for tc in cases if tc.id in only]
    cases.sort(key=lambda tc: tc.id)
    label = profile.label
    requirements = sorted(
        [_with_profile(r, label) for r in catalog.interface_requirements(required)]
        + [_with_profile(r, label) for r in behavioural],
        key=lambda r: r.id)
    return Plan(profile=profile, multi_process=multi_process, requirements=requirements,
                test_cases=cases, interfaces=frozenset(required))


def _with_profile(req: Requirement, label: str) -> Requirement:
    return replace(req, profiles=tuple(sorted({*req.profiles, label})))
