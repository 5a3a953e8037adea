"""The import graph keeps to the floors (ARCHITECTURE.md, "Inside splice/"): arrows only point down.

Every ``import`` and ``from ... import`` of the project's modules is read from the source (including
imports inside functions: a lazy import is still an arrow), resolved to the project module it names,
and checked against :data:`ALLOWED`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

#: floor -> the floors its modules may import (its own included)
ALLOWED: dict[str, set[str]] = {
    "splice.core": {"splice.core"},
    "splice.data": {"splice.core", "splice.data"},
    "splice.model": {"splice.core", "splice.model"},
    "baselines": {"splice.core", "baselines"},
    "eval": {"splice.core", "splice.model", "eval"},
    "splice.runner": {"splice.core", "splice.data", "splice.runner"},
    "reports": {"splice.core", "eval", "reports"},
    "splice.cli": {"splice", "splice.core", "splice.data", "splice.model", "splice.runner", "splice.cli",
                   "baselines", "eval", "reports"},
}
PACKAGES = ("splice", "baselines", "eval", "reports")


def floor_of(module: str) -> str | None:
    for floor in sorted(ALLOWED, key=len, reverse=True):
        if module == floor or module.startswith(floor + "."):
            return floor
    if module.split(".")[0] in PACKAGES:
        return module.split(".")[0] if module in ("splice", "splice.__main__", "splice.perf") else module
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(PROJECT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path`` that names a project module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            # `from splice.core import options` names the module splice.core.options
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return [(line, t) for line, t in out if t.split(".")[0] in PACKAGES]


def project_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (PROJECT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_sits_on_a_floor():
    loose = [module_name(p) for p in project_modules() if floor_of(module_name(p)) not in ALLOWED
             and module_name(p) not in ("splice", "splice.__main__", "splice.perf")]  # fmt: skip
    assert not loose, f"modules outside every floor: {loose}"


def test_arrows_only_point_down():
    bad = []
    for path in project_modules():
        me = module_name(path)
        mine = floor_of(me)
        if mine not in ALLOWED:  # the package's own entry points (splice/__init__, __main__) may import the CLI
            continue
        for line, target in imports_of(path):
            if not (PROJECT / Path(*target.split("."))).with_suffix(".py").exists() and \
                    not (PROJECT / Path(*target.split("."))).is_dir():  # fmt: skip
                continue  # a name imported from a module, not a module
            theirs = floor_of(target)
            if theirs is not None and theirs not in ALLOWED[mine]:
                bad.append(f"{path.relative_to(PROJECT)}:{line}: {mine} imports {target} ({theirs})")
    assert not bad, "imports that point up or sideways:\n" + "\n".join(bad)


@pytest.mark.parametrize("source,target,ok", [
    ("splice/core/x.py", "splice.runner.jobs", False),
    ("baselines/x.py", "splice.runner.execute", False),
    ("baselines/x.py", "splice.core.method", True),
    ("eval/x.py", "splice.model.vit", True),
    ("eval/x.py", "splice.cli", False),
    ("splice/model/x.py", "splice.data.manifests", False),
])
def test_the_rule_itself(source, target, ok):
    mine = floor_of(module_name(PROJECT / source))
    assert (floor_of(target) in ALLOWED[mine]) is ok
