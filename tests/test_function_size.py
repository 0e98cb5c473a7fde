"""The house rule (CONTRIBUTING.md): no function over 80 lines or with more than 8 parameters, read statically."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nnunet_teacher_student"
MAX_LINES, MAX_PARAMS = 80, 8
#: nnU-Net's own method signatures, which our trainers override as they are
NNUNET_SIGNATURES = {"get_training_transforms", "get_validation_transforms"}


def parameters(node: ast.FunctionDef) -> int:
    a = node.args
    n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + bool(a.vararg) + bool(a.kwarg)
    return n - bool(a.args and a.args[0].arg in ("self", "cls"))


def oversized(source: str, where: str) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if node.name in NNUNET_SIGNATURES:
            continue
        lines = node.end_lineno - node.lineno + 1
        if lines > MAX_LINES or parameters(node) > MAX_PARAMS:
            out.append(
                f"{where}:{node.lineno} {node.name}: {lines} lines, {parameters(node)} params"
            )
    return out


def test_no_function_is_too_long_or_takes_too_many_parameters():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += oversized(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert found == []


def test_the_rule_sees_a_long_function_and_a_long_parameter_list():
    long_body = "def f():\n" + "    x = 1\n" * MAX_LINES
    many = "def g(self, " + ", ".join(f"a{i}" for i in range(MAX_PARAMS + 1)) + "):\n    pass\n"
    assert [r.split(": ")[0] for r in oversized(long_body + many, "m.py")] == [
        "m.py:1 f",
        f"m.py:{MAX_LINES + 2} g",
    ]
    assert oversized("def h(self, a, b):\n    pass\n", "m.py") == []
