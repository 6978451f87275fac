"""A plain ``pip install qkms`` brings everything the code imports, at pinned versions.

The dev venv cannot show a missing dependency (pytest, matplotlib and the rest bring
their own), so these checks read the source instead: every import in a runtime module
is the standard library, first-party, or a distribution that pyproject.toml declares:
a base dependency, or, for an import made inside a function under
``kms.extras.optional_dependency(extra=...)``, a dependency of that extra.
Import names map to distributions through the metadata of this (dev) venv.

constraints.txt (``make lock``) pins every distribution the dev install pulls in; the
Makefile, the Dockerfile and CI install with ``-c constraints.txt``.
"""

from __future__ import annotations

import ast
import functools
import sys
import tomllib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, packages_distributions, requires, version
from importlib.util import find_spec
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.constraints import pins

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = REPO_ROOT / "pyproject.toml"
FIRST_PARTY = ("kms", "adapters", "etsi_api", "qkms")

#: Modules that third-party code imports on our behalf, so our source never names
#: them; a plain install without them breaks while the dev venv works. Each maps to
#: the module that imports it.
IMPORTED_FOR_US = {
    # The node's worker (qkms.gevent_worker, server.worker_class: gevent) is gunicorn's
    # gevent worker, which needs gevent and checks its version with packaging; gunicorn
    # declares both only under its `gevent` extra.
    "gevent": "gunicorn.workers.ggevent",
    "packaging": "gunicorn.workers.ggevent",
    # redis-py parses replies with hiredis when it is installed (several times faster).
    "hiredis": "redis.utils",
}


@dataclass(frozen=True)
class Import:
    """One top-level module named by an import statement."""

    module: str
    where: str
    lazy: bool  # inside a function: runs when the function does, not at import time
    extra: str | None  # the extra of an enclosing ``with optional_dependency(...)``


def _optional_extra(node: ast.AST) -> str | None:
    """The ``extra`` of ``with optional_dependency(extra=...)``, else None."""
    if not isinstance(node, ast.With):
        return None
    for item in node.items:
        call = item.context_expr
        if isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", "")) \
                == "optional_dependency":
            arguments = [k.value for k in call.keywords if k.arg == "extra"] or call.args[:1]
            return arguments[0].value if arguments and isinstance(arguments[0], ast.Constant) else None
    return None


def imports_of(path: Path) -> list[Import]:
    """Every absolute import in the file at ``path``, with where and how it runs."""
    shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool, extra: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(alias.name.partition(".")[0], f"{shown}:{child.lineno}", lazy, extra)
                             for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                found.append(Import(child.module.partition(".")[0], f"{shown}:{child.lineno}", lazy, extra))
            visit(child, lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)),
                  _optional_extra(child) or extra)

    visit(ast.parse(path.read_text(), str(path)), lazy=False, extra=None)
    return found


def runtime_imports() -> list[Import]:
    """Imports of third-party modules in every runtime module of the four packages."""
    files = sorted(f for package in FIRST_PARTY for f in (REPO_ROOT / package).rglob("*.py"))
    return [imp for f in files for imp in imports_of(f)
            if imp.module not in sys.stdlib_module_names and imp.module not in FIRST_PARTY]


def project() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def declared(extra: str | None = None) -> dict[str, Requirement]:
    """Requirements of pyproject by canonical name: the base dependencies, or an extra's."""
    lines = project()["dependencies"] if extra is None else project()["optional-dependencies"][extra]
    return {canonicalize_name(r.name): r for r in map(Requirement, lines)}


@functools.cache
def providers(module: str) -> frozenset[str]:
    """Canonical names of the installed distributions that provide a top-level module."""
    return frozenset(canonicalize_name(name) for name in packages_distributions().get(module, []))


def undeclared(imp: Import) -> str | None:
    """Why ``imp`` may fail in a plain install (or in its extra), or None if it is declared."""
    dists = providers(imp.module)
    if not dists:
        return f"{imp.where}: {imp.module} is not installed here, so no declared distribution provides it"
    if dists & declared().keys():
        return None
    if imp.extra is None or not imp.lazy:
        return (f"{imp.where}: {imp.module} ({', '.join(sorted(dists))}) is no base dependency; declare it, "
                f"or import it inside a function under optional_dependency(extra=...)")
    if imp.extra == "dev" or imp.extra not in project()["optional-dependencies"]:
        return f"{imp.where}: optional_dependency(extra={imp.extra!r}) names no user-facing extra of pyproject"
    if dists & declared(imp.extra).keys():
        return None
    return f"{imp.where}: {imp.module} ({', '.join(sorted(dists))}) is not declared in the {imp.extra!r} extra"


def test_every_runtime_import_is_a_declared_dependency() -> None:
    problems = [problem for imp in runtime_imports() if (problem := undeclared(imp))]
    assert not problems, "\n".join(problems)


def test_the_lazy_imports_of_extras_are_seen() -> None:
    # The check above is only as good as its reading of optional_dependency blocks.
    plots = [imp for imp in runtime_imports() if imp.module == "matplotlib"]
    assert plots and all(imp.lazy and imp.extra == "plot" for imp in plots), plots


def test_what_third_party_code_imports_for_us_is_a_base_dependency() -> None:
    for module, importer in IMPORTED_FOR_US.items():
        assert providers(module) & declared().keys(), f"{module} (imported by {importer}) is no base dependency"


def test_the_imports_made_for_us_are_still_made() -> None:
    # When a new gunicorn or redis-py stops importing one, it leaves this list.
    for module, importer in IMPORTED_FOR_US.items():
        source = Path(find_spec(importer).origin)
        assert module in {imp.module for imp in imports_of(source)}, f"{importer} no longer imports {module}"


def test_every_base_dependency_is_imported() -> None:
    used = {dist for module in {imp.module for imp in runtime_imports()} | IMPORTED_FOR_US.keys()
            for dist in providers(module)}
    assert sorted(declared().keys() - used) == [], "declared but never imported"


# ------------------------------------------------------------------ constraints.txt


def dependency_closure(roots: list[Requirement]) -> set[str]:
    """Canonical names of the distributions ``roots`` need, transitively, as installed here."""
    needed: set[str] = set()
    todo, seen = list(roots), set()
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        needed.add(key[0])
        for line in requires(requirement.name) or []:
            dependency = Requirement(line)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": extra})
                                                for extra in {"", *requirement.extras}):
                todo.append(dependency)
    return needed


def test_constraints_pin_every_base_and_dev_dependency_within_its_bounds() -> None:
    pinned, problems = pins(), []
    for name, requirement in [*declared().items(), *declared("dev").items()]:
        if name not in pinned:
            problems.append(f"{requirement} has no pin")
        elif not requirement.specifier.contains(pinned[name], prereleases=True):
            problems.append(f"{name}=={pinned[name]} is outside pyproject's {requirement}")
    assert not problems, "constraints.txt is stale, run `make lock`:\n" + "\n".join(problems)


def test_constraints_pin_exactly_what_the_dev_install_pulls_in() -> None:
    try:
        needed = dependency_closure([*declared().values(), *declared("dev").values()])
        installed = {name: Version(version(name)) for name in needed}
    except PackageNotFoundError as exc:
        raise AssertionError(f"{exc} is not installed: reinstall the venv (make .venv/.installed)") from None
    pinned = pins()
    assert sorted(needed - pinned.keys()) == [], "unpinned: run `make lock`"
    assert sorted(pinned.keys() - needed) == [], "pinned but no longer needed: run `make lock`"
    differing = {name: f"{installed[name]} installed, {pinned[name]} pinned"
                 for name in needed if installed[name] != pinned[name]}
    assert not differing, "this venv was not installed with -c constraints.txt (make .venv/.installed)"
