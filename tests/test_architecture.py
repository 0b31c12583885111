"""The architecture's rules, checked: the control core and the safety rules import nothing of the world, imports
run one way, and one composition root builds every run of the loop (docs/architecture.md)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "firmware" / "legsleeve"
# What the core and the supervisor must never load, directly or through anything they import.
WORLD = ("yaml", "gpiozero", "busio", "board", "adafruit", "digitalio", "microcontroller", "lgpio", "RPi", "matplotlib")


def _modules_loaded_by(*imports: str) -> list[str]:
    """The modules a fresh interpreter has loaded after importing `imports` (site packages, not ours, are listed)."""
    code = (
        "import json, sys\n"
        f"before = set(sys.modules)\n"
        f"import {', '.join(imports)}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@pytest.mark.parametrize("package", ["legsleeve.core", "legsleeve.safety"])
def test_core_and_safety_load_nothing_of_the_world(package):
    """Rule 1: the controller and the supervisor know nothing of YAML, gpiozero or I2C."""
    every = [f"{package}.{p.stem}" for p in sorted((PACKAGE / package.split(".")[1]).glob("*.py"))]
    loaded = _modules_loaded_by(*every)
    world = [m for m in loaded if m.split(".")[0] in WORLD or m.split(".")[0].startswith("adafruit")]
    assert world == [], f"{package} loads {world}"
    ours = {m for m in loaded if m.startswith("legsleeve.")}
    allowed = ("legsleeve.core", "legsleeve.safety", "legsleeve.errors", "legsleeve._compiled")  # (make compiled)
    assert ours <= {m for m in ours if m.startswith(allowed)}, ours


def test_the_check_itself_sees_the_world_when_it_is_loaded():
    """The purity test must be able to fail: the hardware layer does load gpiozero and the Adafruit drivers."""
    loaded = _modules_loaded_by("legsleeve.hw.rig")
    assert "gpiozero" in loaded and any(m.startswith("adafruit_mprls") for m in loaded)


def _imports(path: Path) -> set[str]:
    """Every `legsleeve...` module a source file imports, at any depth in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("legsleeve"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("legsleeve"))
    return found


# Which layer may import which (docs/architecture.md): imports run one way, towards the core.
ALLOWED = {
    "core": {"core", "errors"},
    "safety": {"core", "safety", "errors"},
    "config": {"core", "config", "errors"},
    "hw": {"core", "config", "hw", "errors", "sim"},  # hw.backends is the composition root: it may open the sim
    "sim": {"core", "config", "hw", "sim", "errors"},
    # cli.py starts `legsleeve web`; bench.py reads the compiled build's stamp (legsleeve._compiled)
    "app": {"core", "safety", "config", "hw", "app", "sim", "errors", "web", "_compiled"},
    # the web page: a client of the control socket (app.control), with the firmware's own profile loader and plots
    "web": {"core", "config", "app", "web", "errors"},
}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_run_one_way(layer):
    offences = []
    for path in sorted((PACKAGE / layer).glob("*.py")):
        for module in _imports(path):
            target = module.split(".")[1] if "." in module else "legsleeve"
            if target not in ALLOWED[layer] and target != "legsleeve":
                offences.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert offences == []


def test_only_the_session_builder_wires_a_supervisor_and_a_runner():
    """One composition root for the loop: Supervisor( and Runner( are constructed in app/builder.py alone."""
    builders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("Supervisor", "Runner")
            ):
                builders.append(f"{path.relative_to(PACKAGE)}: {node.func.id}(")
    assert sorted(builders) == ["app/builder.py: Runner(", "app/builder.py: Supervisor("]


def test_nothing_outside_the_controller_reads_its_internals():
    """The controller's state is its own: others read the frozen Status that step() returns."""
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "controller.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_zones")
                or (isinstance(node, ast.Attribute) and node.attr in ("_cycle", "_step_index", "_done", "_step_words"))
            ):
                offences.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .{node.attr}")
    assert offences == []
