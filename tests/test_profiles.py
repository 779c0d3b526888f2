"""The profile table: names, editions, MP flags, and the errors for bad names."""

import pytest

from conformance import profiles
from conformance.profiles import ProfileError, load_profile


def test_face_32_profile_sizes_match_the_table():
    # Counts of FACE 3.2 memberships in the RTEMS table (SOURCES.md of the shared data).
    assert len(load_profile("face-security").required) == 181
    assert len(load_profile("face-safety-base").required) == 264
    extended = load_profile("face-safety-extended")
    assert len(extended.required) == 361
    assert len(extended.multi_process_only) == 29
    general = load_profile("face-general-purpose")
    assert len(general.required) == 692 + 44


def test_profiles_nest_security_in_safety_base_in_extended():
    security = load_profile("face-security").required
    base = load_profile("face-safety-base").required
    extended = load_profile("face-safety-extended").required
    assert security <= base
    assert base <= extended


def test_mp_interfaces_are_dropped_for_single_process_targets():
    extended = load_profile("face-safety-extended")
    assert "fork" in extended.multi_process_only
    assert "fork" in extended.required_for(multi_process=True)
    assert "fork" not in extended.required_for(multi_process=False)
    assert "open" in extended.required_for(multi_process=False)


def test_other_editions_are_selectable_and_differ():
    v21 = load_profile("face-safety-base@2.1")
    v32 = load_profile("face-safety-base")
    assert (v21.edition, v32.edition) == ("2.1", "3.2")
    assert v21.required != v32.required
    assert load_profile("face-general-purpose-c11-threads@3.3-draft").required


def test_posix_and_pse_profiles():
    assert len(load_profile("posix-2024").required) == 1223
    assert len(load_profile("posix-2017").required) == 1216
    # PSE51 is not a strict subset of PSE54 in the table (alarm, kill, pause are PSE51 only).
    assert len(load_profile("pse51").required) == 285
    assert len(load_profile("pse54").required) == 906
    assert load_profile("pse52").edition is None


@pytest.mark.parametrize("name, fragment", [
    ("face-nonsense", "unknown profile 'face-nonsense'"),
    ("face-safety-base@9.9", "no FACE edition '9.9'"),
    ("pse52@3.2", "has no editions"),
    ("Face Safety", "not of the form"),
])
def test_bad_profile_names_say_what_exists(name, fragment):
    with pytest.raises(ProfileError) as err:
        load_profile(name)
    assert fragment in str(err.value)


def test_interfaces_carry_header_and_option_group():
    table = profiles.interfaces()
    assert table["timer_create"].header == "time.h"
    assert table["timer_create"].option_group == "POSIX_TIMERS"
    assert table["errno"].kind == "object"
