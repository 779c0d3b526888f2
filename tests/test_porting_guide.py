"""The porting guide (targets/README.md) is exercised: its worked example is taken from the
guide as written, saved as a user's my-os.toml next to "their" kernel (Debian's x86_64 kernel,
copied in as bzImage), and run end to end in QEMU; every field the definitions use is in its
field table."""

from __future__ import annotations

import re
import secrets
import shutil
import time
import tomllib
from pathlib import Path

import pytest

from conformance.catalog import Catalog
from conformance.collect import Collector
from conformance.generate import generate
from conformance.plan import make_plan
from conformance.profiles import load_profile
from targets.definition import DEFINITIONS_DIR, list_targets, load_target
from targets.drivers import make_machine
from targets.image import build_image
from targets.kernel import ensure_kernel
from targets.readiness import check_ready
from targets.toolchain import Toolchain

GUIDE = Path(__file__).resolve().parent.parent / "targets" / "README.md"
RUNTIME = Path(__file__).resolve().parent.parent / "targets" / "runtime"
SMOKE = ["TC-open-001", "TC-close-001"]   # the guide's first smoke test


def worked_example() -> str:
    """The guide's my-os.toml, exactly as printed."""
    blocks = re.findall(r"```toml\n(.*?)```", GUIDE.read_text(), re.S)
    examples = [b for b in blocks if b.startswith("# my-os.toml")]
    assert len(examples) == 1, "the guide has one worked example"
    return examples[0]


def test_the_guide_names_the_smoke_test_it_runs():
    assert f"pcert run --target my-os.toml --only {','.join(SMOKE)}" in GUIDE.read_text()


def test_every_field_the_definitions_use_is_in_the_guide():
    table = GUIDE.read_text().split("## Every field of a target definition", 1)[1]
    table = table.split("## Worked example", 1)[0]
    documented = set(re.findall(r"^\| `(?:\[(\w+)\] )?(\w+)`", table, re.M))
    used = set()
    for name in list_targets():
        data = tomllib.loads((DEFINITIONS_DIR / f"{name}.toml").read_text())
        for key, value in data.items():
            if isinstance(value, dict):
                used |= {(key, inner) for inner in value}
            else:
                used.add(("", key))
    used |= {("toolchain", "sysroot"), ("kernel", "path"), ("kernel", "architecture"),
             ("machine", "append_max")}
    assert used - documented == set()


def test_worked_example_is_a_valid_definition(tmp_path):
    path = tmp_path / "my-os.toml"
    path.write_text(worked_example())
    target = load_target(str(path))
    assert (target.name, target.kind, target.image_kind) == ("my-os", "qemu-generic", "initramfs")
    assert target.kernel.source == "file" and target.kernel.path == tmp_path / "bzImage"
    assert any("bzImage" in problem for problem in check_ready(target))  # no kernel yet


@pytest.mark.qemu
def test_worked_example_runs_end_to_end(tmp_path):
    (tmp_path / "my-os.toml").write_text(worked_example())
    debian = ensure_kernel(load_target("linux-x86_64"))      # "their" kernel, for the test
    shutil.copyfile(debian.path.with_name("vmlinuz"), tmp_path / "bzImage")  # the bzImage itself
    target = load_target(str(tmp_path / "my-os.toml"))
    assert check_ready(target) == []

    catalog = Catalog.load()
    plan = make_plan(catalog, load_profile("face-safety-base"),
                     multi_process=target.multi_process, only=frozenset(SMOKE))
    ids = [tc.id for tc in plan.test_cases]
    sources = generate(catalog.spec_set, ids)
    (tmp_path / "gen").mkdir()
    generated = []
    for name, data in sources.files.items():
        (tmp_path / "gen" / name).write_bytes(data)
        generated.append(tmp_path / "gen" / name)
    build = Toolchain.for_target(target).cached_build_info(
        [*generated, RUNTIME / "pcert.c"], [RUNTIME], tmp_path / "build", optional=generated)
    assert build.complete
    image = build_image(target, build.path, tmp_path / "image")
    kernel = ensure_kernel(target)
    assert (kernel.source, kernel.sha256) == ("file", debian.unpacked_from)

    nonce = secrets.token_hex(8)
    machine = make_machine(target, binary=build.path, image=image, kernel=kernel,
                           guest_env={"PCERT_NONCE": nonce})
    assert machine.command()[1:3] == ["-M", "q35"]
    collector = Collector(ids, nonce)
    start = time.monotonic()
    outcome = machine.run(lambda b: collector.feed(b, now=time.monotonic() - start),
                          idle_timeout_s=target.machine.idle_timeout_s,
                          run_timeout_s=target.machine.run_timeout_s,
                          until=lambda: collector.ended)
    collector.finish()
    assert collector.anomalies == []
    assert collector.start.fields["machine"] == "x86_64"
    assert collector.start.fields["ncpu"] == "2"              # -smp 2 in the example
    results = collector.results(stop_reason=outcome.reason, console_size=0)
    assert [(r["id"], r["verdict"]) for r in results] == [(i, "PASS") for i in ids]
    assert outcome.reason == "powered off"
