"""Packaging: the example configuration, the Dockerfile, the Makefile and what they install.

Docker cannot run here, so the slow tests repeat the Dockerfile's install steps
by hand: build the project wheel from the Docker build context (the repository
filtered by .dockerignore), install it without extras into a fresh venv with
``-c constraints.txt``, and run ``qkms`` from there: a node that serves ETSI 014
keys over mutual TLS, and the one-line error of a feature whose extra is missing.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import typing
import zipfile
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pytest
import yaml
from packaging.utils import canonicalize_name
from packaging.version import Version
from pydantic import BaseModel

from adapters.etsi014_client import DeliveredKey
from kms.config import NodeConfig, load_config
from qkms.runner import sae_client, stop_process, wait_for_port
from tests.support.constraints import pins

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "config" / "example.yaml"
CONFIG_README = REPO_ROOT / "config" / "README.md"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
MAKEFILE = REPO_ROOT / "Makefile"
CI_SCRIPT = REPO_ROOT / ".ci" / "run"


# ------------------------------------------------------------------ example config


def _model_of(annotation: typing.Any) -> tuple[type[BaseModel] | None, bool]:
    """(the pydantic model inside ``annotation``, whether it is a list of them)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if typing.get_origin(annotation) is tuple:
        inner = typing.get_args(annotation)[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner, True
    return None, False


def setting_paths(model: type[BaseModel] = NodeConfig, prefix: str = "") -> list[str]:
    """Every leaf setting of the schema, e.g. 'tls.sae_id_field', 'saes[i].cert_identity'."""
    paths = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        sub, is_list = _model_of(field.annotation)
        if sub is None:
            paths.append(path)
        else:
            if is_list:
                paths.append(path)
            paths.extend(setting_paths(sub, f"{path}[i]." if is_list else f"{path}."))
    return paths


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.kme_id
    assert config.saes
    # Relative paths are resolved against config/, and no secret is inline.
    assert config.tls.key.is_absolute() and config.tls.key.parent == EXAMPLE.parent
    assert config.kek.file is not None and config.kek.env is None


def test_example_config_names_every_top_level_setting() -> None:
    text = EXAMPLE.read_text()
    document = yaml.safe_load(text)
    for name in NodeConfig.model_fields:
        assert re.search(rf"^{name}:", text, re.MULTILINE), f"{name} missing from example.yaml"
        assert name in document, f"{name} is only in a comment of example.yaml"


def test_example_config_mentions_every_nested_setting() -> None:
    text = EXAMPLE.read_text()
    for path in setting_paths():
        leaf = path.rsplit(".", 1)[-1].removesuffix("[i]")
        assert re.search(rf"^\s*(#\s*)?(- )?{leaf}:", text, re.MULTILINE), f"{path} missing from example.yaml"


def test_example_config_mentions_every_sae_id_field_choice() -> None:
    text = EXAMPLE.read_text()
    for choice in typing.get_args(NodeConfig.model_fields["tls"].annotation.model_fields["sae_id_field"].annotation):
        assert choice in text


def test_config_readme_documents_every_setting() -> None:
    text = CONFIG_README.read_text()
    for path in setting_paths():
        assert f"`{path}`" in text, f"{path} missing from config/README.md"


# ------------------------------------------------------------------ Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuations joined."""
    instructions, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            out.append([])
        out[-1].append(instruction)
    return out


def test_dockerfile_is_multi_stage_non_root_and_runs_qkms() -> None:
    builder, runtime = stages(dockerfile_instructions(DOCKERFILE.read_text()))

    assert re.fullmatch(r"python:3\.11-slim\S* AS builder", builder[0][1], re.IGNORECASE)
    assert any(kw == "RUN" and "pip wheel" in args for kw, args in builder)

    assert runtime[0][1].startswith("python:3.11-slim")
    runtime_args = dict(runtime)
    assert "--from=builder" in " ".join(args for kw, args in runtime if kw == "COPY")
    assert any(kw == "RUN" and "pip install" in args for kw, args in runtime)

    users = [args for kw, args in runtime if kw == "USER"]
    assert users, "runtime stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert any(kw == "RUN" and re.search(r"useradd .*--uid \d+.* qkms\b", args) for kw, args in runtime)

    assert runtime_args["WORKDIR"] == "/var/lib/qkms"
    volumes = json.loads(runtime_args["VOLUME"])
    assert "/etc/qkms" in volumes and "/var/lib/qkms" in volumes
    assert runtime_args["EXPOSE"] == "8443"
    assert json.loads(runtime_args["ENTRYPOINT"]) == ["qkms"]
    assert json.loads(runtime_args["CMD"]) == ["serve", "--config", "/etc/qkms/config.yaml"]


def test_the_image_installs_pinned_versions_and_imports_the_worker() -> None:
    _, runtime = stages(dockerfile_instructions(DOCKERFILE.read_text()))
    # constraints.txt comes from the build context, not from the builder stage.
    copies = [args.split() for kw, args in runtime if kw == "COPY" and not args.startswith("--")]
    destinations = [words[-1] for words in copies if words[:-1] == ["constraints.txt"]]
    assert len(destinations) == 1, copies
    installs = [args for kw, args in runtime if kw == "RUN" and "pip install" in args]
    assert installs and all(re.search(rf"pip install (.* )?-c {re.escape(destinations[0])} ", args)
                            for args in installs), installs
    # Building the image imports the worker module gunicorn loads, so a missing
    # runtime dependency fails the build rather than every worker of a running node.
    assert any(re.search(r"python -c \"import [^\"]*\bqkms\.gevent_worker\b", args) for args in installs)


# ------------------------------------------------------------------ Makefile and CI


def make_rule(target: str) -> tuple[list[str], list[str]]:
    """(prerequisites, recipe lines) of one Makefile rule."""
    match = re.search(rf"^{re.escape(target)}:(.*)\n((?:\t.*\n)*)", MAKEFILE.read_text(), re.MULTILINE)
    assert match, f"no rule for {target}"
    return match.group(1).split(), match.group(2).splitlines()


def test_the_dev_venv_and_ci_install_pinned_versions() -> None:
    prerequisites, recipe = make_rule("$(VENV)/.installed")
    assert "constraints.txt" in prerequisites, "the venv must be reinstalled when the pins change"
    assert any(re.search(r"pip install (.* )?-c constraints\.txt .*-e \"\.\[dev\]\"", line) for line in recipe)
    assert "$(VENV)/.installed" in make_rule("test")[0]
    assert re.search(r"^make test$", CI_SCRIPT.read_text(), re.MULTILINE)


def test_make_lock_writes_the_constraints_file() -> None:
    _, recipe = make_rule("lock")
    text = "\n".join(recipe)
    assert "pip freeze --all --exclude pip --exclude qkms" in text and "constraints.txt" in text
    assert "make lock" in (REPO_ROOT / "constraints.txt").read_text().split("\n", 3)[1]


# ------------------------------------------------------------------ build context


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "the matcher below knows no exceptions"
    return patterns


def ignored(relative: PurePosixPath, patterns: list[str]) -> bool:
    """Docker's rule, minimally: a path is out if it or one of its parents matches."""
    for depth in range(1, len(relative.parts) + 1):
        prefix = "/".join(relative.parts[:depth])
        for pattern in patterns:
            if pattern.startswith("**/"):
                if fnmatchcase(relative.parts[depth - 1], pattern[3:]):
                    return True
            elif fnmatchcase(prefix, pattern.rstrip("/")):
                return True
    return False


def copy_build_context(destination: Path) -> Path:
    """Copy the repository as `docker build .` would send it."""
    patterns = dockerignore_patterns()

    def ignore(directory: str, names: list[str]) -> list[str]:
        base = PurePosixPath(Path(directory).relative_to(REPO_ROOT).as_posix())
        return [name for name in names if ignored(base / name, patterns)]

    shutil.copytree(REPO_ROOT, destination, ignore=ignore)
    return destination


def test_dockerignore_keeps_what_the_build_needs_and_drops_the_rest() -> None:
    patterns = dockerignore_patterns()
    for needed in ("pyproject.toml", "constraints.txt", "kms/config.py", "etsi_api/openapi.yaml",
                   "qkms/cli.py", "adapters/__init__.py", "config/example.yaml"):
        assert not ignored(PurePosixPath(needed), patterns), needed
    for dropped in (".venv/bin/python", ".git/HEAD", ".demo/pki/ca.key", "kms/__pycache__/x.pyc",
                    ".pytest_cache/v", "qkms.egg-info/PKG-INFO", "nodes/KME-1/kek.hex"):
        assert ignored(PurePosixPath(dropped), patterns), dropped


# ------------------------------------------------------------------ install, as the Dockerfile does


def clean_env() -> dict[str, str]:
    """This process's environment without what would leak the dev venv into another."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(command: list[str | Path], cwd: Path, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=clean_env(), capture_output=True,
                            text=True, timeout=timeout)
    assert not check or result.returncode == 0, (
        f"{shlex.join(str(p) for p in command)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    )
    return result


@dataclass(frozen=True)
class PlainInstall:
    """The project wheel installed without extras into a fresh venv, as the image has it."""

    venv: Path
    constraints: Path

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory: pytest.TempPathFactory) -> PlainInstall:
    """The Dockerfile's two stages by hand (one install for the module's slow tests)."""
    root = tmp_path_factory.mktemp("plain-install")
    # Builder stage: `pip wheel --no-deps` of the build context. Building from a copy
    # also keeps setuptools' build/ and *.egg-info out of the working tree.
    context = copy_build_context(root / "context")
    assert not (context / ".venv").exists() and not (context / ".git").exists()
    dist = root / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", dist, context], cwd=root)
    wheels = list(dist.glob("qkms-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
    assert "etsi_api/openapi.yaml" in names
    assert not any(name.startswith("tests/") for name in names)

    # Runtime stage: a clean interpreter environment, `pip install -c constraints.txt`
    # of the wheel alone, no extras (dependencies from the package index).
    venv = root / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=root)
    installed = PlainInstall(venv, context / "constraints.txt")
    run([installed.bin("python"), "-m", "pip", "install", "--no-cache-dir", "-c", installed.constraints,
         wheels[0]], cwd=root, timeout=1100)
    return installed


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_plain_install_has_the_pinned_versions_and_no_extras(plain_install: PlainInstall) -> None:
    # Proves our -c holds next to the `constraint` of this machine's pip config.
    probe = "import json, importlib.metadata as m; print(json.dumps({d.name: d.version for d in m.distributions()}))"
    installed = json.loads(run([plain_install.bin("python"), "-c", probe], cwd=plain_install.venv).stdout)
    versions = {canonicalize_name(name): Version(version) for name, version in installed.items()
                if canonicalize_name(name) not in ("pip", "qkms")}
    pinned = pins(plain_install.constraints)
    assert {name: f"{version} installed, pinned {pinned.get(name)}" for name, version in versions.items()
            if pinned.get(name) != version} == {}
    assert "matplotlib" not in versions and "pytest" not in versions


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_wheel_installs_into_a_fresh_venv_and_runs(plain_install: PlainInstall, tmp_path: Path) -> None:
    qkms = plain_install.bin("qkms")
    help_text = run([qkms, "--help"], cwd=tmp_path).stdout
    for command in ("init", "serve", "pki"):
        assert command in help_text

    manifest = json.loads(run([qkms, "init", tmp_path / "n", "--json"], cwd=tmp_path).stdout)
    node_config = Path(manifest["nodes"]["KME-1"]["config"])
    assert node_config.is_file() and Path(manifest["ca"]).is_file()
    assert {"sae-1", "sae-2"} <= set(manifest["saes"])

    # The installed package (not the source tree) carries the OpenAPI document and
    # the embedded redis-server, and reads the config `qkms init` wrote.
    probe = (
        "import json, subprocess, importlib.resources as r, etsi_api, kms;"
        "from kms.config import load_config;"
        "from kms.storage.embedded_redis import redis_server_binary;"
        f"c = load_config({str(node_config)!r});"
        "v = subprocess.run([redis_server_binary(), '--version'], capture_output=True, text=True, check=True);"
        "print(json.dumps({'etsi_api': etsi_api.__file__, 'kms': kms.__file__,"
        " 'openapi': r.files('etsi_api').joinpath('openapi.yaml').is_file(),"
        " 'kme_id': c.kme_id, 'redis': v.stdout}))"
    )
    facts = json.loads(run([plain_install.bin("python"), "-c", probe], cwd=tmp_path).stdout)
    site_packages = str(plain_install.venv / "lib")
    assert facts["etsi_api"].startswith(site_packages) and facts["kms"].startswith(site_packages)
    assert facts["openapi"] is True
    assert facts["kme_id"] == "KME-1"
    assert "Redis server" in facts["redis"]

    # The node serves ETSI 014 over mutual TLS: gevent workers and all.
    log_path = tmp_path / "node.log"
    with open(log_path, "wb") as log:
        node = subprocess.Popen([str(qkms), "serve", "--config", str(node_config)], cwd=tmp_path,
                                env=clean_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            serves_keys(manifest, node)
        except Exception as exc:
            raise AssertionError(f"the node did not serve ({exc!r}); its log:\n"
                                 f"{log_path.read_text(errors='replace')[-6000:]}") from exc
    finally:
        exit_code = stop_process(node, timeout_s=30)
    assert exit_code == 0, f"qkms serve exited {exit_code} on SIGTERM"


def serves_keys(manifest: dict, node: subprocess.Popen) -> None:
    """Status, enc_keys as sae-1 and dec_keys as sae-2 against a single-node layout."""
    url = urlparse(manifest["nodes"]["KME-1"]["url"])
    wait_for_port(url.hostname, url.port, timeout_s=120, process=node)
    with sae_client(manifest, "sae-1", timeout_s=60) as master, sae_client(manifest, "sae-2", timeout_s=60) as slave:
        status = master.status("sae-2")
        assert {k: status[k] for k in ("source_KME_ID", "target_KME_ID", "master_SAE_ID", "slave_SAE_ID")} == \
            {"source_KME_ID": "KME-1", "target_KME_ID": "KME-1", "master_SAE_ID": "sae-1", "slave_SAE_ID": "sae-2"}
        for field in ("key_size", "stored_key_count", "max_key_count", "max_key_per_request", "max_key_size",
                      "min_key_size", "max_SAE_ID_count"):
            assert type(status[field]) is int, (field, status[field])

        sent = master.enc_keys("sae-2", number=2, size_bits=256)
        received = slave.dec_keys("sae-1", [key.key_id for key in sent])
    assert [key.key_id for key in received] == [key.key_id for key in sent]
    assert same_material(sent, received), "sae-2 received other key material than sae-1"
    assert all(len(key.material) == 32 for key in sent)


def same_material(a: list[DeliveredKey], b: list[DeliveredKey]) -> bool:
    """Compared here so that a failing assertion cannot print key material."""
    return len(a) == len(b) and all(hmac.compare_digest(x.material, y.material) for x, y in zip(a, b))


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_feature_of_a_missing_extra_is_a_one_line_error(plain_install: PlainInstall, tmp_path: Path) -> None:
    result = run([plain_install.bin("qkms"), "simulate", "--sweep", tmp_path / "rate", "--pulses", "200000",
                  "--preset", "snspd-illustrative"], cwd=tmp_path, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr == "Error: a rate-vs-distance plot needs matplotlib: pip install 'qkms[plot]'\n"
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_kek_in_an_hsm_without_the_hsm_extra_is_a_one_line_error(plain_install: PlainInstall,
                                                                    tmp_path: Path) -> None:
    manifest = json.loads(run([plain_install.bin("qkms"), "init", tmp_path / "n", "--json"], cwd=tmp_path).stdout)
    config_path = Path(manifest["nodes"]["KME-1"]["config"])
    config = yaml.safe_load(config_path.read_text())
    config["kek"] = {"pkcs11": {"module": "/usr/lib/softhsm/libsofthsm2.so", "token_label": "qkms",
                                "pin_env": "QKMS_TEST_HSM_PIN", "keyring": "hsm-keyring"}}
    config_path.write_text(yaml.safe_dump(config))
    result = run([plain_install.bin("qkms"), "kek", "init-hsm", "--config", config_path], cwd=tmp_path, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr == "Error: a KEK in an HSM (kek.pkcs11) needs pkcs11: pip install 'qkms[hsm]'\n"
    assert not (config_path.parent / "hsm-keyring").exists()
