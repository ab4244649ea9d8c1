"""Imports run one way: shared definitions (s4accel.base) < hw < sw < sim < the CLI.

Every project module is parsed with ast (nothing is imported), function-level imports
included; an import of a higher layer, or a module-level import cycle inside sim's workloads,
fails with the file and line.
"""

import importlib.util
from pathlib import Path

from s4accel.base.imports import LAYERS, closure, layer_of, module_file, module_imports
from s4accel.sim.tb import runner

ROOTS = {"s4accel": "s4accel", "s4accel.hw": "hw", "s4accel.sw": "sw", "s4accel.sim": "sim"}


def project_modules():
    out = {}
    for package in ROOTS:
        root = Path(importlib.util.find_spec(package).origin).parent
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            name = ".".join((package,) + rel)
            if layer_of(name) is not None:
                out.setdefault(name, path)
    return out


def violations(modules):
    bad = []
    for name, path in modules.items():
        mine = layer_of(name)
        for line, target in module_imports(name, path):
            if target.startswith("s4accel") and module_file(target) is None:
                bad.append(f"{path}:{line}: {name} imports {target}, which does not exist")
                continue
            theirs = layer_of(target)
            if theirs is not None and theirs > mine:
                bad.append(f"{path}:{line}: {name} ({LAYERS[mine]}) imports {target} "
                           f"({LAYERS[theirs]})")
    return bad


def test_every_module_is_in_a_layer():
    modules = project_modules()
    assert len(modules) > 60, sorted(modules)     # the walk found the whole project
    assert {layer_of(m) for m in modules} == set(range(len(LAYERS)))


def test_imports_run_one_way():
    bad = violations(project_modules())
    assert not bad, "imports against base < hw < sw < sim < cli:\n" + "\n".join(bad)


def test_a_wrong_import_is_caught(tmp_path):
    """The check itself: a function-level import of sim from hw is reported."""
    path = tmp_path / "lane.py"
    path.write_text("def f():\n    from ...sim.model import device_model\n")
    bad = violations({"s4accel.hw.core.lane": path})
    assert len(bad) == 1 and "s4accel.sim.model.device_model" in bad[0] and ":2:" in bad[0]
    # one dot too few resolves inside hw, to a module that does not exist: reported too
    path.write_text("from ..sim.model import device_model\n")
    bad = violations({"s4accel.hw.core.lane": path})
    assert len(bad) == 1 and "s4accel.hw.sim.model, which does not exist" in bad[0]


def test_testbenches_and_workloads_are_independent():
    """No cocotb testbench imports another; the workloads import no cycle."""
    modules = project_modules()
    tbs = {m for m in modules if m.startswith("s4accel.sim.tb.")}
    shared = {"s4accel.sim.tb.base", "s4accel.sim.tb.runner", "s4accel.sim.tb.streams",
              "s4accel.sim.tb.axi_ram", "s4accel.sim.tb.core_job", "s4accel.sim.tb.rtl_backend",
              "s4accel.sim.tb.fast_backend", "s4accel.sim.tb.vector_jobs"}
    for name in tbs - shared:
        others = {t for _, t in module_imports(name, modules[name])} & (tbs - shared)
        assert not others, f"testbench {name} imports testbench(es) {sorted(others)}"
    for name in [m for m in modules if m.startswith("s4accel.sim.workloads.")]:
        deps = set(closure(name)) - {name}
        assert not any(name in closure(d) for d in deps
                       if d.startswith("s4accel.sim.workloads.")), f"{name} is in a cycle"


def test_simulator_build_key_covers_what_the_design_imports():
    """The cached Verilog of a design is rebuilt when any project module it imports changes
    (the golden model's constants, the register map YAML, a bus helper ...)."""
    files = runner.design_sources("s4_top")
    golden = module_file("s4accel.base.golden")
    assert golden in files and module_file("s4accel.hw.dma.engine") in files
    assert any(p.name == "regmap.yaml" for p in files)
    assert not any("sim" in p.parts for p in files)
    key = runner.design_digest("s4_top")
    changed = runner.design_digest(
        "s4_top", read=lambda p: p.read_bytes() + (b"#" if p == golden else b""))
    assert changed != key
    assert runner.design_digest("s4_top") == key
