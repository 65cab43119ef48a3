"""Meta-tests keeping hook specs, their docs and their tests in step.

A new hook in ``clipper_core/hookspecs.py`` fails here until it has a
docstring in the common shape, a ``### name(args)`` section in
``docs/plugins.md`` and a ``test_hook_<name>`` in ``tests/test_hookspecs.py``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import typing
from typing import Any

import pytest
from conftest import ROOT

from clipper_core import hookspecs, plugins

DOCS = ROOT / "docs" / "plugins.md"
HOOK_TESTS = ROOT / "tests" / "test_hookspecs.py"


def hook_specs() -> dict[str, Any]:
    return {name: fn for name, fn in vars(hookspecs).items()
            if inspect.isfunction(fn) and hasattr(fn, "clipper_spec")}


def documented() -> dict[str, list[str]]:
    """``### name(a, b)`` headings of docs/plugins.md -> their argument names."""
    found = {}
    for m in re.finditer(r"^### (\w+)\(([^)]*)\)\s*$", DOCS.read_text(), re.MULTILINE):
        found[m.group(1)] = [a.strip() for a in m.group(2).split(",") if a.strip()]
    return found


def sections() -> dict[str, str]:
    """``### name(...)`` sections of docs/plugins.md -> their text."""
    parts = re.split(r"^### (\w+)\(", DOCS.read_text(), flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].split("\n## ")[0] for i in range(1, len(parts), 2)}


def hook_tests() -> set[str]:
    tree = ast.parse(HOOK_TESTS.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


HOOKS = sorted(hook_specs())


def test_there_are_hooks() -> None:
    assert len(HOOKS) >= 10
    assert "register_container_managers" in HOOKS


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_docstring_in_the_common_shape(name: str) -> None:
    doc = inspect.getdoc(hook_specs()[name])
    assert doc, f"hook {name} has no docstring"
    summary = doc.splitlines()[0]
    assert summary.endswith("."), f"{name}: the first line must be a one-sentence summary"
    for param in inspect.signature(hook_specs()[name]).parameters:
        assert f":param {param}:" in doc, f"{name}: docstring does not describe {param!r}"
    assert ":returns:" in doc, f"{name}: docstring does not say what to return"
    assert "Called" in doc, f"{name}: docstring does not say when it is called"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented(name: str) -> None:
    docs = documented()
    assert name in docs, f"docs/plugins.md has no '### {name}(...)' section"
    params = list(inspect.signature(hook_specs()[name]).parameters)
    assert docs[name] == params, (
        f"docs/plugins.md documents {name}({', '.join(docs[name])}), "
        f"the spec is {name}({', '.join(params)})")


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_tested(name: str) -> None:
    assert f"test_hook_{name}" in hook_tests(), (
        f"tests/test_hookspecs.py has no test_hook_{name}")


@pytest.mark.parametrize("name", HOOKS)
def test_hook_arguments_are_typed_and_their_types_documented(name: str) -> None:
    hints = typing.get_type_hints(hook_specs()[name])
    section = sections()[name]
    for param in inspect.signature(hook_specs()[name]).parameters:
        hint = hints.get(param)
        assert hint is not None and hint is not Any, f"{name}: {param!r} is not typed"
        if isinstance(hint, type) and hint.__module__ == "clipper_core.models":
            assert f"`{hint.__name__}`" in section or f".{hint.__name__}`" in section, (
                f"docs/plugins.md, {name}: {param!r} is a {hint.__name__}; say so")


def test_no_section_or_test_for_a_hook_that_does_not_exist() -> None:
    specs = set(HOOKS)
    hooky = {n for n in documented() if n.startswith(("register_", "clipper_"))}
    assert hooky <= specs, f"docs/plugins.md documents unknown hooks: {hooky - specs}"
    stale = {t.removeprefix("test_hook_") for t in hook_tests() if t.startswith("test_hook_")}
    assert stale <= specs, f"tests/test_hookspecs.py tests unknown hooks: {stale - specs}"


SUITES = {"container_managers": "container_manager", "state_stores": "state_store",
          "registries": "registry", "batching_policies": "batching_policy",
          "selection_policies": "selection_policy"}


@pytest.mark.parametrize("kind", plugins.KINDS)
def test_every_backend_kind_has_a_contract_suite_and_a_docs_row(kind: str) -> None:
    module = importlib.import_module(f"clipper_core.testing.{SUITES[kind]}")
    suites = [name for name, obj in vars(module).items()
              if inspect.isclass(obj) and name.endswith("Contract")
              and obj.__module__ == module.__name__]
    assert suites, f"clipper_core.testing.{SUITES[kind]} has no *Contract class"
    assert any(f"`{SUITES[kind]}.{name}`" in DOCS.read_text() for name in suites), (
        f"docs/plugins.md does not list the {kind} suite")
