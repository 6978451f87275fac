"""The suite keeps itself honest: every test can fail, and none rests on chance or timing.

Read from the source (AST) of every file under tests/:

- every test function asserts something: an ``assert``, ``pytest.raises``/``warns``/
  ``fail``, a call of a helper whose name starts with ``assert_``, ``check`` or
  ``expect`` (helpers that assert are named so), or one of OTHER_ASSERTING_CALLS;
- no ``sleep`` outside JUSTIFIED_SLEEPS: a test waits on a condition
  (tests/support/conditions.py), and where letting time pass is the point of a test the
  allow-list says why;
- no unseeded randomness: no call of the ``random`` or ``numpy.random`` module
  functions (they draw from a global, unseeded state), no ``Random()`` or
  ``default_rng()`` without a seed; ``os.urandom``/``secrets`` make key material,
  which tests compare but never count on;
- no ``importorskip``: dev dependencies are imported, a missing one fails loudly; the
  only skips are in JUSTIFIED_SKIPS (a capability the machine lacks), each with its
  reason.

The checks are run on small samples first, so each is known to catch what it names.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO_ROOT = TESTS.parent

ASSERTING_CALLS = {"pytest.raises", "pytest.warns", "pytest.fail", "raises", "warns", "fail"}
ASSERTING_PREFIXES = ("assert_", "check", "expect")
#: Calls that fail the test by themselves, by name: what they assert.
OTHER_ASSERTING_CALLS = {
    "wait_until": "the awaited condition comes true before the deadline (tests/support/conditions.py)",
    "call_and_validate": "schemathesis: the response passes every check given",
}

#: "path::function" -> why letting time pass is the point there.
JUSTIFIED_SLEEPS = {
    "tests/support/conditions.py::wait_until":
        "the one polling loop: it sleeps between checks of the condition it waits for",
    "tests/qkms/test_gevent_worker.py::test_connection_in_use_stays_open_past_keepalive":
        "requests must keep coming for longer than keepalive_s; the test asserts the connection survived",
}

#: "path::function" -> the capability whose absence skips there (the reason is printed).
JUSTIFIED_SKIPS = {
    "tests/support/processes.py::external_redis_binary": "the Debian redis-server binary",
    "tests/support/haproxy.py::haproxy_binary": "the Debian haproxy binary",
    "tests/integration/test_fault_disk.py::require_private_tmpfs": "a tmpfs in a user+mount namespace (unshare)",
    "tests/support/netns.py::require_namespaces":
        "root, iproute2 and network namespaces, and the VPN daemons a connector test runs",
    "tests/integration/connectors/test_tls_psk.py::psk_pair": "the openssl binary",
    "tests/integration/connectors/test_tls_psk.py::test_the_python_313_helper_uses_the_same_files":
        "a Python 3.13 interpreter (ssl PSK callbacks)",
    "tests/support/browser.py::require_chromium": "Debian's chromium and chromium-driver",
    "tests/support/softhsm.py::require_softhsm": "Debian's softhsm2 (softhsm2-util and its PKCS#11 module)",
}

SEEDED_CONSTRUCTORS = {"Random", "default_rng", "Generator", "SeedSequence", "PCG64", "Philox",
                       "MT19937", "SFC64", "BitGenerator", "RandomState"}


@dataclass(frozen=True)
class Finding:
    where: str  # "path:line"
    scope: str  # "path::function"
    problem: str

    def __str__(self) -> str:
        return f"{self.where} ({self.scope.split('::')[-1]}): {self.problem}"


def dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain, else ""."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


class _Scoped(ast.NodeVisitor):
    """Visits a module remembering the innermost enclosing function (qualified name)."""

    def __init__(self, path: str):
        self.path = path
        self.stack: list[str] = []
        self.findings: list[Finding] = []

    @property
    def scope(self) -> str:
        return f"{self.path}::{'.'.join(self.stack) if self.stack else '<module>'}"

    def report(self, node: ast.AST, problem: str) -> None:
        self.findings.append(Finding(f"{self.path}:{node.lineno}", self.scope, problem))

    def _enter(self, node) -> None:
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _enter


def asserts(function: ast.AST) -> bool:
    """Whether the function's body (nested functions included) can fail the test."""
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            last = name.rsplit(".", 1)[-1]
            if name in ASSERTING_CALLS or last in OTHER_ASSERTING_CALLS or last.startswith(ASSERTING_PREFIXES):
                return True
    return False


def unasserting_tests(tree: ast.Module, path: str) -> list[Finding]:
    """Test functions (module level, or methods of a ``Test*`` class) that cannot fail."""
    candidates = [(node, "") for node in tree.body]
    candidates += [(item, f"{cls.name}.") for cls in tree.body
                   if isinstance(cls, ast.ClassDef) and cls.name.startswith("Test") for item in cls.body]
    return [Finding(f"{path}:{node.lineno}", f"{path}::{prefix}{node.name}",
                    "asserts nothing (no assert, pytest.raises/fail, or assert_*/check*/expect* helper)")
            for node, prefix in candidates
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")
            and not asserts(node)]


class _Sleeps(_Scoped):
    def __init__(self, path: str):
        super().__init__(path)
        self.sleep_names = {"time.sleep", "gevent.sleep", "asyncio.sleep"}

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "sleep":
                self.sleep_names.add(alias.asname or alias.name)

    def visit_Call(self, node: ast.Call) -> None:
        if dotted(node.func) in self.sleep_names and self.scope not in JUSTIFIED_SLEEPS:
            self.report(node, f"{dotted(node.func)}() where a condition could be awaited "
                              "(tests/support/conditions.py), or justify it in JUSTIFIED_SLEEPS")
        self.generic_visit(node)


def unjustified_sleeps(tree: ast.Module, path: str) -> list[Finding]:
    visitor = _Sleeps(path)
    visitor.visit(tree)
    return visitor.findings


class _Randomness(_Scoped):
    def __init__(self, path: str):
        super().__init__(path)
        self.modules = {"random": "random", "np.random": "numpy.random", "numpy.random": "numpy.random"}

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name in ("random", "numpy.random") and alias.asname:
                self.modules[alias.asname] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module in ("random", "numpy.random"):
            for alias in node.names:
                if alias.name not in SEEDED_CONSTRUCTORS:
                    self.report(node, f"from {node.module} import {alias.name}: draws from the unseeded global state")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = dotted(node.func)
        module, _, function = name.rpartition(".")
        if module in self.modules:
            if function not in SEEDED_CONSTRUCTORS:
                self.report(node, f"{name}(): draws from the unseeded global state; use a seeded generator")
            elif not node.args and not node.keywords:
                self.report(node, f"{name}() without a seed")
        self.generic_visit(node)


def unseeded_randomness(tree: ast.Module, path: str) -> list[Finding]:
    visitor = _Randomness(path)
    visitor.visit(tree)
    return visitor.findings


SKIPS = ("pytest.skip", "pytest.mark.skip", "pytest.mark.skipif", "pytest.xfail", "pytest.mark.xfail")


class _Skips(_Scoped):
    def visit_Call(self, node: ast.Call) -> None:
        name = dotted(node.func)
        if name.rsplit(".", 1)[-1] == "importorskip":
            self.report(node, "importorskip: a declared dependency is imported, a missing one must fail")
        elif name in SKIPS:
            reason = [k.value for k in node.keywords if k.arg == "reason"] or \
                     (node.args[:1] if name in ("pytest.skip", "pytest.xfail") else [])
            if not reason or (isinstance(reason[0], ast.Constant) and not str(reason[0].value).strip()):
                self.report(node, f"{name} without a reason")
            elif self.scope not in JUSTIFIED_SKIPS:
                self.report(node, f"{name}: only a capability the machine lacks may skip (JUSTIFIED_SKIPS)")
            for argument in [*node.args, *node.keywords]:  # not node.func: that skip is reported
                self.visit(argument)
            return
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if dotted(node) in SKIPS:
            self.report(node, f"{dotted(node)} without a reason")
        self.generic_visit(node)


def hidden_skips(tree: ast.Module, path: str) -> list[Finding]:
    visitor = _Skips(path)
    visitor.visit(tree)
    return visitor.findings


CHECKS = {
    "assertion": unasserting_tests,
    "sleep": unjustified_sleeps,
    "randomness": unseeded_randomness,
    "skip": hidden_skips,
}


def suite_files() -> list[Path]:
    return sorted(path for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)


def findings(check: str) -> list[Finding]:
    found = []
    for path in suite_files():
        relative = path.relative_to(REPO_ROOT).as_posix()
        found += CHECKS[check](ast.parse(path.read_text(), relative), relative)
    return found


# --- each check catches what it names -----------------------------------------------------------

SAMPLES = {
    "assertion": ("def test_calls_only():\n    service.enc_keys(1)\n", [
        "def test_asserts():\n    assert f()\n",
        "def test_raises():\n    with pytest.raises(E):\n        f()\n",
        "def test_helper():\n    assert_same(a, b)\n",
        "def test_method_helper():\n    ledger.check()\n",
        "def test_fails():\n    pytest.fail('x')\n",
    ]),
    "sleep": ("import time\ndef test_waits():\n    time.sleep(2)\n", [
        "from tests.support.conditions import wait_until\ndef test_waits():\n    wait_until(f, 'x')\n",
    ]),
    "randomness": ("import random\ndef test_draws():\n    n = random.choice((1, 4, 8))\n", [
        "import random\ndef test_draws():\n    n = random.Random(7).choice((1, 4, 8))\n",
        "import numpy as np\ndef test_draws():\n    x = np.random.default_rng(3).random(4)\n",
    ]),
    "skip": ("import pytest\nm = pytest.importorskip('yaml')\n", [
        "import pytest\ndef test_x():\n    assert 1\n",
    ]),
}

MORE_BAD_SAMPLES = [
    ("sleep", "from time import sleep\ndef test_waits():\n    sleep(1)\n"),
    ("randomness", "import numpy as np\ndef test_draws():\n    x = np.random.random(4)\n"),
    ("randomness", "import numpy as np\ndef test_draws():\n    g = np.random.default_rng()\n"),
    ("randomness", "from random import sample\n"),
    ("skip", "import pytest\ndef test_x():\n    pytest.skip('file not written yet')\n"),
    ("skip", "import pytest\n@pytest.mark.skip\ndef test_x():\n    assert 1\n"),
    ("skip", "import pytest\n@pytest.mark.skipif(True, reason='slow')\ndef test_x():\n    assert 1\n"),
    ("assertion", "class TestThing:\n    def test_nothing(self):\n        f()\n"),
]


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_each_check_flags_its_bad_sample_and_passes_the_good_ones(check: str) -> None:
    bad, good = SAMPLES[check]
    assert CHECKS[check](ast.parse(bad), "sample.py"), f"{check}: bad sample not flagged"
    for sample in good:
        assert CHECKS[check](ast.parse(sample), "sample.py") == [], f"{check}: good sample flagged:\n{sample}"


@pytest.mark.parametrize("check, bad", MORE_BAD_SAMPLES)
def test_other_forms_are_flagged_too(check: str, bad: str) -> None:
    assert CHECKS[check](ast.parse(bad), "sample.py"), f"{check}: not flagged:\n{bad}"


# --- the suite ------------------------------------------------------------------------------------


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_the_suite_is_clean(check: str) -> None:
    found = findings(check)
    assert not found, f"{len(found)} {check} finding(s):\n" + "\n".join(map(str, found))


def test_every_allow_list_entry_names_a_function_of_the_suite() -> None:
    scopes = set()
    for path in suite_files():
        relative = path.relative_to(REPO_ROOT).as_posix()
        scopes |= {f"{relative}::{name}" for name in qualified_names(ast.parse(path.read_text()))}
    stale = sorted((JUSTIFIED_SLEEPS.keys() | JUSTIFIED_SKIPS.keys()) - scopes)
    assert stale == [], f"allow-list entries naming no function: {stale}"


def qualified_names(node: ast.AST, prefix: str = "") -> list[str]:
    """``f``, ``Class.method``, ``f.inner``... of every function and class under ``node``."""
    names = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names += [prefix + child.name, *qualified_names(child, f"{prefix}{child.name}.")]
        else:
            names += qualified_names(child, prefix)
    return names
