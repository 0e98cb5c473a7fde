"""The package's layers, read statically (``ast``, nothing imported): which stage may import which."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nnunet_teacher_student"
NAME = PACKAGE.name


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


#: a function named as ``"stage.module:function"`` (workflow.steps.ApiCall), an import made when it runs
LAZY_CALL = re.compile(r"[a-z_]+(\.[a-z_]+)+:[A-Za-z_]+")


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved to absolute names (function-level ones too)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(
                f"{base}.{alias.name}" for alias in node.names
            )  # `from . import x`: x may be a module
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if LAZY_CALL.fullmatch(
                node.value
            ):  # a step's ApiCall("module:function"), imported when run
                found.add(f"{NAME}.{node.value.split(':')[0]}")
    return found


MODULES = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def in_stage(stage: str) -> dict[str, set[str]]:
    prefix = f"{NAME}.{stage}"
    return {m: i for m, i in MODULES.items() if m == prefix or m.startswith(prefix + ".")}


def offenders(stage: str, forbidden: tuple[str, ...]) -> list[str]:
    modules = in_stage(stage)
    assert modules, (
        f"no modules in {stage}"
    )  # a renamed stage must not make the rule pass vacuously
    return sorted(
        f"{m} imports {i}"
        for m, imports in modules.items()
        for i in imports
        if any(i == f or i.startswith(f + ".") for f in forbidden)
    )


@pytest.mark.parametrize(
    "stage, forbidden",
    [
        (
            "trainers",
            (f"{NAME}.cli", f"{NAME}.commands", f"{NAME}.workflow", f"{NAME}.experiments"),
        ),
        ("formats", ("torch", f"{NAME}.trainers")),
        ("evaluation", (f"{NAME}.trainers",)),
        ("dataset_conversion", (f"{NAME}.trainers",)),
        (
            "core",
            tuple(
                f"{NAME}.{s}"
                for s in (
                    "formats",
                    "nnunet",
                    "teacher",
                    "students",
                    "pseudo_labels",
                    "workflow",
                    "experiments",
                    "reporting",
                    "commands",
                    "trainers",
                )
            ),
        ),
        ("workflow", (f"{NAME}.experiments", f"{NAME}.commands", f"{NAME}.reporting")),
        ("reporting", (f"{NAME}.commands", f"{NAME}.cli")),
    ],
)
def test_stage_does_not_import(stage, forbidden):
    assert offenders(stage, forbidden) == []


#: the stages from the bottom up: a stage may import its own and lower ranks only
RANKS = {
    "core": 0,
    "formats": 1,
    "lungs": 1,
    "phantom": 2,
    "nnunet": 2,
    "evaluation": 2,
    "dataset_conversion": 2,
    "prediction": 3,
    "trainers": 3,
    "teacher": 4,
    "pseudo_labels": 5,
    "students": 6,
    "workflow": 7,
    "reporting": 8,
    "experiments": 9,
    "commands": 10,
    "cli": 11,
    "nnunet_ext": 11,
}


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == NAME else None


def back_arrows(modules: dict[str, set[str]]) -> list[str]:
    """Imports from a stage to a stage of a higher rank, or between two different stages of the same rank."""
    out = []
    for module, imports in modules.items():
        a = stage_of(module)
        for target in imports:
            b = stage_of(target)
            if a is None or b is None or a == b:
                continue
            if RANKS[b] >= RANKS[a]:
                out.append(
                    f"{module} ({a}, rank {RANKS[a]}) imports {target} ({b}, rank {RANKS[b]})"
                )
    return sorted(out)


def test_every_stage_has_a_rank():
    stages = {stage_of(m) for m in MODULES} - {None}
    assert stages == set(RANKS)


def test_no_stage_imports_upward_or_sideways():
    assert back_arrows(MODULES) == []


def test_a_step_call_by_name_counts_as_an_import():
    method = MODULES[f"{NAME}.workflow.method"]
    assert (
        f"{NAME}.pseudo_labels.run" in method
    )  # only named: ApiCall("pseudo_labels.run:pseudo_label")
    assert not [m for m in method if m.startswith(f"{NAME}.see")]


def test_a_planted_back_arrow_is_caught():
    planted = dict(MODULES)
    planted[f"{NAME}.core.planted"] = {f"{NAME}.experiments.benchmark"}
    planted[f"{NAME}.prediction.planted"] = {f"{NAME}.trainers.base"}  # same rank, another stage
    assert back_arrows(planted) == [
        f"{NAME}.core.planted (core, rank 0) imports {NAME}.experiments.benchmark (experiments, rank 9)",
        f"{NAME}.prediction.planted (prediction, rank 3) imports {NAME}.trainers.base (trainers, rank 3)",
    ]


def test_no_stage_below_the_commands_parses_command_lines():
    """Steps call the Python API; only ``commands`` and ``cli`` know the command line."""
    users = sorted(
        m
        for m, imports in MODULES.items()
        if RANKS.get(stage_of(m), 99) < RANKS["commands"] and f"{NAME}.cli" in imports
    )
    assert users == []


def test_the_rules_see_imports():
    """The parser finds the imports it checks (else every rule above would pass on nothing)."""
    assert f"{NAME}.formats.boxes" in MODULES[f"{NAME}.teacher.teacher_dataset"]
    assert "torch" in MODULES[f"{NAME}.trainers.transforms"]
    assert offenders("trainers", ("torch",))


def test_every_internal_import_names_an_existing_module_or_name():
    """No import points at a moved module's old path."""
    missing = []
    for module, imports in MODULES.items():
        for target in imports:
            if target != NAME and not target.startswith(NAME + "."):
                continue
            rel = Path(*target.split("."))
            exists = any(
                (PACKAGE.parent / p).exists() for p in (rel.with_suffix(".py"), rel / "__init__.py")
            )
            parent = Path(*target.split(".")[:-1])
            is_name = any(
                (PACKAGE.parent / p).exists()
                for p in (parent.with_suffix(".py"), parent / "__init__.py")
            )
            if not exists and not is_name:
                missing.append(f"{module}: {target}")
    assert missing == []


def test_the_package_root_holds_only_the_entry_point_and_stages():
    """``__init__``, the CLI entry and subpackages."""
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "cli.py"]
