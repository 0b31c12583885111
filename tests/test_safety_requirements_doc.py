"""docs/safety-requirements.md is the home of SAFE-1..SAFE-15: it must have a section for every requirement (and for
every SAFE-n the firmware mentions), and everything it cites must exist - the test functions in the files it names,
the `legsleeve...` names, the config defaults and code bounds, and the fault matrix's detection bounds.

Plain files only: the tests and the fault matrix are read as source (ast), never imported."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "safety-requirements.md"
FIRMWARE = ROOT / "firmware"
PACKAGE = FIRMWARE / "legsleeve"
HARDWARE_PY = PACKAGE / "config" / "hardware.py"
FAULT_MATRIX = ROOT / "tests" / "fault_matrix.py"

REQUIREMENTS = [f"SAFE-{n}" for n in range(1, 16)]
PARTS = (
    "**Statement.**",
    "**Rationale.**",
    "**Implementation.**",
    "**Verification.**",
    "**Limits of the implementation.**",
)

HEADING = re.compile(r"^## (.*)$", re.M)
SECTION_ID = re.compile(r"^(SAFE-\d+)\b")
TEST_REF = re.compile(r"\b(tests/[\w/]+\.py)::(\w+)")
NAME_REF = re.compile(r"`(legsleeve(?:\.[A-Za-z_]\w*)+)`")
PATH_REF = re.compile(r"`([\w.-]+/[\w./-]+\.(?:py|md|yaml|service))`")  # relative paths: they hold a /
RULE_ID = re.compile(r"\bSAFE-(\d+)\b")
RULE_ASSIGNMENT = re.compile(r"""\brule\s*=\s*["'](SAFE-\d+)["']""")
CONFIG_ROW = re.compile(r"^\|\s*`(\w+)\.(\w+)`\s*\|([^|]*)\|([^|]*)\|")
NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")
BOUND = re.compile(r"(≤|≥|>)\s*(-?\d+(?:\.\d+)?)")
BOUND_KEYWORDS = {"above": ">", "minimum": "≥", "maximum": "≤"}
FAULT_BOUND = re.compile(r"`([a-z]+(?:-[a-z]+)*)` within (\d+(?:\.\d+)?) s\b")


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) of every level-2 section, in order."""
    heads = list(HEADING.finditer(text))
    return [
        (m.group(1).strip(), text[m.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)])
        for i, m in enumerate(heads)
    ]


def _requirement_sections(text: str) -> dict[str, str]:
    out = {}
    for heading, body in _sections(text):
        m = SECTION_ID.match(heading)
        if m:
            out.setdefault(m.group(1), body)
    return out


def _part(body: str, name: str) -> str:
    """The text of one part of a section, up to the next part."""
    start = body.find(name)
    if start < 0:
        return ""
    ends = [i for p in PARTS if (i := body.find(p, start + len(name))) >= 0]
    return body[start : min(ends, default=len(body))]


# -- the sections --------------------------------------------------------------------------------------------------


def test_every_requirement_has_one_section_in_order_and_a_traceability_row():
    text = _doc()
    ids = [m.group(1) for heading, _ in _sections(text) if (m := SECTION_ID.match(heading))]
    assert ids == REQUIREMENTS, f"sections found: {ids}"
    for rid in REQUIREMENTS:
        assert re.search(rf"^\| {rid} \|", text, re.M), f"the traceability matrix has no row for {rid}"


def test_every_section_has_its_five_parts_a_shall_and_a_test():
    problems = []
    for rid, body in _requirement_sections(_doc()).items():
        for part in PARTS:
            if part not in body:
                problems.append(f"{rid}: no {part}")
        if "shall" not in _part(body, "**Statement.**"):
            problems.append(f"{rid}: the statement says no 'shall'")
        if not TEST_REF.search(_part(body, "**Verification.**")):
            problems.append(f"{rid}: the verification cites no test")
    assert not problems, "\n".join(problems)


def test_every_safe_rule_in_the_firmware_has_a_section():
    documented = set(_requirement_sections(_doc()))
    assigned = []
    for path in sorted((PACKAGE / "safety").glob("*.py")):
        assigned += [(path, rid) for rid in RULE_ASSIGNMENT.findall(path.read_text(encoding="utf-8"))]
    assert assigned, 'no `rule = "SAFE-n"` found in firmware/legsleeve/safety: has the pattern changed?'
    missing = [f"{p.relative_to(ROOT)}: rule = {rid!r}" for p, rid in assigned if rid not in documented]
    for path in sorted(FIRMWARE.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            missing += [
                f"{path.relative_to(ROOT)}:{number}: SAFE-{n}"
                for n in RULE_ID.findall(line)
                if f"SAFE-{n}" not in documented
            ]
    assert not missing, "SAFE rules with no section in docs/safety-requirements.md:\n" + "\n".join(missing)


# -- what the document cites ---------------------------------------------------------------------------------------


def _defined_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(n.name for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))
    return names


def test_every_cited_test_is_defined_in_the_cited_file():
    citations = sorted(set(TEST_REF.findall(_doc())))
    assert citations, "the document cites no tests"
    problems = []
    defined: dict[str, set[str]] = {}
    for rel, name in citations:
        path = ROOT / rel
        if not path.is_file():
            problems.append(f"{rel}::{name}: no such file")
            continue
        if rel not in defined:
            defined[rel] = _defined_functions(path)
        if name not in defined[rel]:
            problems.append(f"{rel}::{name}: no function of that name in the file")
    assert not problems, "\n".join(problems)


def test_every_cited_file_exists():
    problems = []
    for rel in sorted(set(PATH_REF.findall(_doc()))):
        if not any((base / rel).exists() for base in (ROOT, PACKAGE)):
            problems.append(rel)
    assert not problems, "cited files that do not exist: " + ", ".join(problems)


def _resolve(dotted: str) -> str | None:
    """None when `dotted` imports (a module, then attributes); else what went wrong."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
                continue  # not a module: try a shorter prefix, the rest are attributes
            raise
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return f"{dotted}: {'.'.join(parts[:i])} has no {attr!r} on the way"
            obj = getattr(obj, attr)
        return None
    return f"{dotted}: no module"


def test_every_cited_legsleeve_name_resolves():
    names = sorted(set(NAME_REF.findall(_doc())))
    assert names, "the document cites no legsleeve names"
    problems = [p for name in names if (p := _resolve(name)) is not None]
    assert not problems, "\n".join(problems)


# -- config defaults and bounds --------------------------------------------------------------------------------------


def _code_value(node: ast.expr, module, instances: dict[str, object]):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return getattr(module, node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in instances:
        return getattr(instances[node.value.id], node.attr)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_code_value(node.operand, module, instances)
    raise ValueError(f"cannot read {ast.unparse(node)} in config/hardware.py")


def _config_specs() -> dict[tuple[str, str], tuple[object, set[tuple[str, float]]]]:
    """(section, key) -> (default, {(op, bound)}) for every key `_read_<section>` in config/hardware.py reads."""
    module = importlib.import_module("legsleeve.config.hardware")
    tree = ast.parse(HARDWARE_PY.read_text(encoding="utf-8"))
    specs = {}
    for fn in tree.body:
        if not (isinstance(fn, ast.FunctionDef) and fn.name.startswith("_read_")):
            continue
        section = fn.name.removeprefix("_read_")
        instances = {
            node.targets[0].id: getattr(module, node.value.func.id)()
            for node in ast.walk(fn)
            if isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and not node.value.args
            and not node.value.keywords
            and isinstance(getattr(module, node.value.func.id, None), type)
        }
        for call in ast.walk(fn):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr in ("number", "integer")
                and call.args
                and isinstance(call.args[0], ast.Constant)
            ):
                continue
            try:
                default = _code_value(call.args[1], module, instances) if len(call.args) > 1 else module.REQUIRED
                bounds = {
                    (BOUND_KEYWORDS[k.arg], float(_code_value(k.value, module, instances)))
                    for k in call.keywords
                    if k.arg in BOUND_KEYWORDS
                }
            except ValueError as exc:  # computed in the code: fine unless the document cites this key
                default, bounds = exc, set()
            specs[(section, call.args[0].value)] = (default, bounds)
    return specs


def _config_rows() -> list[tuple[str, str, str, str]]:
    return [
        (m.group(1), m.group(2), m.group(3).strip(), m.group(4).strip())
        for line in _doc().splitlines()
        if (m := CONFIG_ROW.match(line))
    ]


def test_config_defaults_and_code_bounds_match_the_code():
    module = importlib.import_module("legsleeve.config.hardware")
    specs = _config_specs()
    rows = _config_rows()
    assert rows, "the document has no config tables"
    problems = []
    for section, key, default_cell, bound_cell in rows:
        where = f"{section}.{key}"
        if (section, key) not in specs:
            problems.append(f"{where}: config/hardware.py reads no such key")
            continue
        default, bounds = specs[(section, key)]
        if isinstance(default, ValueError):
            problems.append(f"{where}: {default}")
        elif default is module.REQUIRED:
            if not default_cell.startswith("required"):
                problems.append(f"{where}: required in the code, the document says {default_cell!r}")
        else:
            m = NUMBER.match(default_cell)
            if m is None or float(m.group(1)) != float(default):
                problems.append(f"{where}: default {default!r} in the code, the document says {default_cell!r}")
        documented = {(op, float(value)) for op, value in BOUND.findall(bound_cell)}
        if documented != bounds:
            problems.append(f"{where}: bounds {sorted(bounds)} in the code, the document says {bound_cell!r}")
    assert not problems, "\n".join(problems)


def test_every_limit_has_a_row():
    from legsleeve.core.limits import Limits

    documented = {key for section, key, _, _ in _config_rows() if section == "limits"}
    missing = [f.name for f in dataclasses.fields(Limits) if f.name not in documented]
    assert not missing, f"limits with no row in any requirement's table: {missing}"


# -- the fault matrix ----------------------------------------------------------------------------------------------


def _expected() -> dict[str, tuple]:
    tree = ast.parse(FAULT_MATRIX.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "EXPECTED" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("tests/fault_matrix.py has no EXPECTED")


def test_fault_matrix_bounds_and_rules_match_expected():
    expected = _expected()
    text = _doc()
    problems = []
    for kind, bound in FAULT_BOUND.findall(text):
        if kind not in expected:
            problems.append(f"`{kind}`: not a fault kind of the matrix ({', '.join(expected)})")
        elif float(bound) != float(expected[kind][2]):
            problems.append(f"`{kind}` within {bound} s: EXPECTED says {expected[kind][2]} s")
    sections = _requirement_sections(text)
    for rid, body in sections.items():
        for kind, _ in FAULT_BOUND.findall(_part(body, "**Verification.**")):
            if kind in expected and rid not in expected[kind][0]:
                problems.append(f"{rid} cites `{kind}`, which EXPECTED does not let {rid} name")
    for kind, (rules, *_rest) in expected.items():
        for rid in sorted(rules):
            cited = {k for k, _ in FAULT_BOUND.findall(_part(sections.get(rid, ""), "**Verification.**"))}
            if kind not in cited:
                problems.append(f"{rid}'s verification does not cite `{kind}` (EXPECTED lets {rid} name it)")
    assert not problems, "\n".join(problems)


def test_traceability_matrix_lists_the_test_files_each_section_cites():
    text = _doc()
    sections = _requirement_sections(text)
    problems = []
    for rid in REQUIREMENTS:
        row = re.search(rf"^\| {rid} \|[^|]*\|([^|]*)\|\s*$", text, re.M)
        if row is None:
            problems.append(f"{rid}: no row of three cells in the traceability matrix")
            continue
        listed = set(re.findall(r"`(tests/[\w/]+\.py)`", row.group(1)))
        cited = {path for path, _ in TEST_REF.findall(_part(sections.get(rid, ""), "**Verification.**"))}
        if listed != cited:
            problems.append(f"{rid}: the matrix lists {sorted(listed)}, the section cites {sorted(cited)}")
    assert not problems, "\n".join(problems)
