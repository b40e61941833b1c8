"""Every third-party package the kit imports is declared in pyproject.toml.

A plain ``pip install sapiens-kit`` must be able to import every module of the package: an import
that runs when a module loads must name a runtime dependency. Optional packages (an extra, or a
package a single feature needs) may only be imported where that feature runs (inside a function,
or under ``try: ... except ImportError``), and must be declared in an extra so ``[dev]`` gets them.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
from packaging.requirements import Requirement  # noqa: E402

SRC = REPO / "src" / "sapiens_kit"
#: Import names of packages that may be missing here (so the installed metadata cannot name
#: their distribution): what to look for in pyproject.toml.
KNOWN_DISTRIBUTIONS = {"OpenEXR": "openexr", "onnx": "onnx", "onnxruntime": "onnxruntime",
                       "tensorboard": "tensorboard"}
#: Optional imports that are not a :data:`sapiens_kit.utils.extras.FEATURES` entry, because
#: their call site reports the missing package itself (as a data error).
SELF_GUARDED = {"OpenEXR"}


@dataclass(frozen=True)
class ImportSite:
    module: str  # top-level import name
    file: Path
    line: int
    at_load: bool  # runs when the module is imported (not in a function, not ImportError-guarded)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    """(runtime distributions, extra -> distributions with self-references expanded)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    own = _normalise(project["name"])
    runtime = {_normalise(Requirement(r).name) for r in project["dependencies"]}
    raw = {name: [Requirement(r) for r in reqs]
           for name, reqs in project["optional-dependencies"].items()}

    def expand(extra: str, seen: frozenset[str] = frozenset()) -> set[str]:
        out: set[str] = set()
        for req in raw[extra]:
            if _normalise(req.name) == own:
                for sub in req.extras - seen:
                    out |= expand(sub, seen | {extra})
            else:
                out.add(_normalise(req.name))
        return out

    return runtime, {name: expand(name) for name in raw}


def _is_type_checking(test: ast.expr) -> bool:
    return ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _catches_import_error(node: ast.Try) -> bool:
    names = {"ImportError", "ModuleNotFoundError", "Exception"}
    for handler in node.handlers:
        if handler.type is None or names & set(re.findall(r"\w+", ast.unparse(handler.type))):
            return True
    return False


def _import_sites(path: Path) -> list[ImportSite]:
    """Every absolute import in ``path``, and whether it runs when the module loads."""
    sites: list[ImportSite] = []

    def visit(node: ast.AST, at_load: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                sites.extend(ImportSite(a.name.split(".")[0], path, child.lineno, at_load)
                             for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                sites.append(ImportSite(child.module.split(".")[0], path, child.lineno, at_load))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    visit(stmt, at_load)  # the body never runs
            elif isinstance(child, ast.Try) and _catches_import_error(child):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), False)
                for part in (*child.handlers, *child.orelse, *child.finalbody):
                    visit(part, at_load)
            else:
                visit(child, at_load)

    visit(ast.parse(path.read_text(), filename=str(path)), True)
    return sites


def _third_party_sites() -> list[ImportSite]:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    return [site for path in sorted(SRC.rglob("*.py")) for site in _import_sites(path)
            if site.module not in stdlib and site.module != "sapiens_kit"]


@functools.cache
def _installed() -> dict[str, list[str]]:
    """Import name -> installed distributions (read once: it scans every installed package)."""
    return importlib.metadata.packages_distributions()


def _distributions(module: str) -> set[str]:
    """The distributions that provide import name ``module`` (installed, else known)."""
    found = _installed().get(module, [])
    names = {_normalise(d) for d in found}
    if module in KNOWN_DISTRIBUTIONS:
        names.add(KNOWN_DISTRIBUTIONS[module])
    return names


def _optional_modules() -> set[str]:
    from sapiens_kit.utils.extras import FEATURES

    return {m for modules, _ in FEATURES.values() for m in modules} | SELF_GUARDED


def test_the_scan_sees_imports_in_every_position(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "import numpy as np\nfrom torch.nn import Linear\nfrom . import sibling\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import hidden\n"
        "try:\n    import maybe\nexcept ImportError:\n    maybe = None\n"
        "def f():\n    import onnx\n"
    )
    found = {(s.module, s.at_load) for s in _import_sites(path)}
    assert found == {("numpy", True), ("torch", True), ("typing", True), ("maybe", False),
                     ("onnx", False)}


def test_every_import_at_load_is_a_runtime_dependency() -> None:
    runtime, _ = _declared()
    missing = sorted(
        f"{site.file.relative_to(REPO)}:{site.line}: {site.module} (distributions: "
        f"{sorted(_distributions(site.module)) or 'unknown'})"
        for site in _third_party_sites()
        if site.at_load and not _distributions(site.module) & runtime
    )
    assert not missing, "imported when a module loads but not in [project] dependencies:\n" + \
        "\n".join(missing)


def test_every_other_import_is_declared_and_optional_ones_are_guarded() -> None:
    runtime, extras = _declared()
    in_extras = set().union(*extras.values())
    optional = _optional_modules()
    problems = []
    for site in _third_party_sites():
        dists = _distributions(site.module)
        where = f"{site.file.relative_to(REPO)}:{site.line}: {site.module}"
        if dists & runtime:
            continue
        if not dists & in_extras:
            problems.append(f"{where}: declared nowhere in pyproject.toml")
        elif site.module not in optional:
            problems.append(f"{where}: optional, but no sapiens_kit.utils.extras.FEATURES "
                            "entry checks for it")
    assert not problems, "\n".join(problems)


def test_every_optional_feature_is_in_an_extra_and_in_dev() -> None:
    from sapiens_kit.utils.extras import FEATURES

    runtime, extras = _declared()
    for feature, (modules, _) in FEATURES.items():
        for module in modules:
            dists = _distributions(module)
            assert not dists & runtime, f"{feature}: {module} is a runtime dependency already"
            assert dists & extras["dev"], f"{feature}: {module} is missing from [dev]"
    assert {"onnx", "onnxruntime"} <= extras["onnx"] == extras["export"]


def test_config_targets_name_declared_packages() -> None:
    """``_target_`` imports happen when a config is instantiated: the same rule applies."""
    from sapiens_kit.utils.extras import TARGET_FEATURES

    runtime, _ = _declared()
    targets = set()
    for path in (SRC / "conf").rglob("*.yaml"):
        targets |= set(re.findall(r"_target_:\s*([\w.]+)", path.read_text()))
    assert targets
    for target in sorted(targets):
        module = target.split(".")[0]
        if module == "sapiens_kit":
            continue
        assert _distributions(module) & runtime, f"{target}: {module} is not a dependency"
    # The targets that need an optional package are the ones the kit checks up front.
    tensorboard = [t for t in targets if t.endswith("TensorBoardLogger")]
    assert tensorboard and set(tensorboard) <= set(TARGET_FEATURES)

