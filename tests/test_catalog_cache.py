"""The catalog cache: an unchanged set of spec files loads from it, anything else (a changed,
added or renamed spec file, other code, a damaged cache) loads afresh, and what comes out is
always what load_spec_dirs would give."""

from __future__ import annotations

import dataclasses
import inspect
import os
import pickle
import types
from pathlib import Path

import pytest

from conformance import catalog_cache, specitems
from conformance.catalog import Catalog
from conformance.catalog_cache import cache_key, default_cache_dir, load_cached
from conformance.specitems import SpecError, builtin_spec_dir, load_spec_dirs
from test_specs import DEMO, write

FAULTS = Path(__file__).resolve().parent / "faults"


def everything(spec_set) -> dict:
    """Every field, including those left out of ==, such as a test case's YAML lines."""
    return dataclasses.asdict(spec_set)


@pytest.fixture
def from_cache_only(monkeypatch):
    """Make any load that does not come from the cache fail."""
    def refuse(dirs):
        raise AssertionError(f"{dirs} were parsed, not taken from the cache")
    monkeypatch.setattr(catalog_cache, "load_spec_dirs", refuse)


@pytest.fixture
def demo_dir(tmp_path) -> Path:
    return write(tmp_path / "specs", "demo.yaml", DEMO).parent


def cached_files(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.pickle"))


def test_a_cached_catalog_equals_a_fresh_load(tmp_path, request):
    cache = tmp_path / "cache"
    first = Catalog.load((FAULTS,), cache_dir=cache)
    assert len(cached_files(cache)) == 1
    request.getfixturevalue("from_cache_only")
    cached = Catalog.load((FAULTS,), cache_dir=cache)
    fresh = load_spec_dirs([builtin_spec_dir(), FAULTS])
    assert cached.spec_set == fresh and cached.spec_dirs == first.spec_dirs
    assert everything(cached.spec_set) == everything(fresh)
    # One object per test case, as a fresh load has it (files and the index share it).
    case = cached.spec_set.files[0].test_cases[0]
    assert cached.spec_set.test_cases[case.id] is case


def test_a_changed_added_or_renamed_spec_file_is_loaded_afresh(tmp_path, demo_dir):
    cache = tmp_path / "cache"
    load_cached([demo_dir], cache)
    write(demo_dir, "demo.yaml", DEMO.replace("title: Demo", "title: Demo, retitled"))
    assert load_cached([demo_dir], cache).files[0].title == "Demo, retitled"
    (demo_dir / "demo.yaml").rename(demo_dir / "renamed.yml")
    assert load_cached([demo_dir], cache).files[0].name == "renamed.yml"
    write(demo_dir, "more.yaml", DEMO.replace("900", "901").replace("unit: demo", "unit: more"))
    assert "TC-open-901" in load_cached([demo_dir], cache).test_cases
    assert everything(load_cached([demo_dir], cache)) == everything(load_spec_dirs([demo_dir]))
    assert len(cached_files(cache)) == 4


def test_the_directory_as_given_is_part_of_the_key(tmp_path, demo_dir, monkeypatch):
    monkeypatch.chdir(demo_dir.parent)
    cache = tmp_path / "cache"
    by_absolute = load_cached([demo_dir], cache)
    by_relative = load_cached([Path("specs")], cache)
    assert by_absolute.files[0].path == demo_dir / "demo.yaml"
    assert by_relative.files[0].path == Path("specs/demo.yaml")


@pytest.mark.parametrize("damage", [
    b"", b"garbage, not a pickle", "truncated",
    pickle.dumps({"key": "another key", "spec_set": None}), pickle.dumps(["a", "list"]),
])
def test_a_damaged_cache_file_is_ignored_and_replaced(tmp_path, demo_dir, damage, request):
    cache = tmp_path / "cache"
    load_cached([demo_dir], cache)
    [path] = cached_files(cache)
    path.write_bytes(path.read_bytes()[:200] if damage == "truncated" else damage)
    assert everything(load_cached([demo_dir], cache)) == everything(load_spec_dirs([demo_dir]))
    request.getfixturevalue("from_cache_only")  # replaced: the next load comes from it
    assert everything(load_cached([demo_dir], cache)) == everything(load_spec_dirs([demo_dir]))


def test_an_unreadable_cache_file_is_ignored(tmp_path, demo_dir):
    cache = tmp_path / "cache"
    load_cached([demo_dir], cache)
    [path] = cached_files(cache)
    path.unlink()
    (path / "in-the-way").mkdir(parents=True)  # a directory cannot be read, nor replaced
    for _ in range(2):
        assert everything(load_cached([demo_dir], cache)) == everything(load_spec_dirs([demo_dir]))
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary file left behind


def test_a_malformed_spec_is_reported_as_without_a_cache_and_never_cached(tmp_path):
    specs = write(tmp_path / "specs", "bad.yaml", DEMO.replace("method: test", "method: guess"))
    cache = tmp_path / "cache"
    with pytest.raises(SpecError) as direct:
        load_spec_dirs([specs])
    for _ in range(2):
        with pytest.raises(SpecError) as through_cache:
            load_cached([specs], cache)
        assert through_cache.value.problems == direct.value.problems
    with pytest.raises(SpecError, match="not a directory"):
        load_cached([tmp_path / "missing"], cache)
    assert cached_files(cache) == []


def test_an_unwritable_cache_directory_only_costs_the_cache(tmp_path, demo_dir):
    (tmp_path / "a-file").write_bytes(b"")
    unusable = tmp_path / "a-file" / "catalog"
    for _ in range(2):
        loaded = load_cached([demo_dir], unusable)
        assert everything(loaded) == everything(load_spec_dirs([demo_dir]))


def test_the_code_that_builds_a_spec_set_is_part_of_the_key(tmp_path, demo_dir, monkeypatch):
    source = tmp_path / "builder.py"
    source.write_text("RULE = 1\n")
    builder = types.ModuleType("builder")
    builder.__file__ = str(source)
    monkeypatch.setattr(catalog_cache, "BUILDERS", (*catalog_cache.BUILDERS, builder))
    monkeypatch.setattr(catalog_cache, "_environment_digest",
                        catalog_cache._environment_digest.__wrapped__)  # not read once
    before = cache_key([demo_dir])
    source.write_text("RULE = 2\n")
    assert cache_key([demo_dir]) != before
    monkeypatch.setattr(specitems, "SCHEMA_PATH", source)
    assert cache_key([demo_dir]) != before


def test_every_project_module_behind_the_spec_set_is_a_builder():
    """BUILDERS must name each module of ours whose code a load runs."""
    builders = {module.__name__ for module in catalog_cache.BUILDERS}
    used, todo = set(), [specitems]
    while todo:
        module = todo.pop()
        for value in vars(module).values():
            name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", "")
            if name and name.split(".")[0] in ("conformance", "evidence") and name not in used:
                used.add(name)
                todo.append(__import__(name, fromlist=["_"]))
    assert used - {"conformance.specitems"} <= builders, used - builders


@pytest.mark.parametrize("env", [
    {"PCERT_CACHE": "/p"}, {"XDG_CACHE_HOME": "/x"},
    {"PCERT_CACHE": "/p", "XDG_CACHE_HOME": "/x"}, {},
])
def test_the_cache_lives_in_pcerts_cache_directory(env, monkeypatch, tmp_path):
    from conformance.run import cache_root
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("PCERT_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert default_cache_dir() == cache_root() / "catalog"


def test_the_default_cache_follows_pcert_cache(tmp_path, demo_dir, monkeypatch):
    monkeypatch.setenv("PCERT_CACHE", str(tmp_path / "pcert"))
    load_cached([demo_dir])
    assert len(cached_files(tmp_path / "pcert" / "catalog")) == 1


def test_only_the_most_recently_used_cache_files_are_kept(tmp_path, demo_dir, monkeypatch,
                                                           request):
    monkeypatch.setattr(catalog_cache, "KEEP", 2)
    cache = tmp_path / "cache"
    for n in range(4):
        write(demo_dir, "demo.yaml", DEMO.replace("title: Demo", f"title: Demo {n}"))
        load_cached([demo_dir], cache)
    assert len(cached_files(cache)) == 2
    request.getfixturevalue("from_cache_only")
    assert load_cached([demo_dir], cache).files[0].title == "Demo 3"


def test_a_cache_file_of_another_user_is_never_unpickled(tmp_path, demo_dir, monkeypatch):
    cache = tmp_path / "cache"
    load_cached([demo_dir], cache)
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)
    loaded = []
    monkeypatch.setattr(catalog_cache, "load_spec_dirs",
                        lambda dirs: loaded.append(dirs) or load_spec_dirs(dirs))
    load_cached([demo_dir], cache)
    assert loaded == [[demo_dir]]


def test_a_spec_file_changed_during_the_load_is_not_cached(tmp_path, demo_dir, monkeypatch):
    def load_then_edit(dirs):
        loaded = load_spec_dirs(dirs)
        write(demo_dir, "demo.yaml", DEMO.replace("title: Demo", "title: Edited meanwhile"))
        return loaded
    monkeypatch.setattr(catalog_cache, "load_spec_dirs", load_then_edit)
    cache = tmp_path / "cache"
    assert load_cached([demo_dir], cache).files[0].title == "Demo"
    assert cached_files(cache) == []


def test_without_the_builders_sources_the_catalog_loads_uncached(tmp_path, demo_dir, monkeypatch):
    monkeypatch.setattr(catalog_cache, "BUILDERS", (types.ModuleType("frozen"),))  # no __file__
    monkeypatch.setattr(catalog_cache, "_environment_digest",
                        catalog_cache._environment_digest.__wrapped__)
    cache = tmp_path / "cache"
    assert everything(load_cached([demo_dir], cache)) == everything(load_spec_dirs([demo_dir]))
    assert cached_files(cache) == []
