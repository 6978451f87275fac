"""Reading the repository's OpenAPI documents in tests: load, follow $refs, list operations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import openapi_schema_validator
import yaml
from flask import Flask

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
FAILURE_CODES = {"400", "401", "503"}
"""The only failure statuses ETSI GS QKD 014 defines; the KM channel keeps to them too."""


def load(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def resolve(doc: dict, node):
    """Follow local $refs until a non-reference object."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"non-local $ref {ref}"
        assert ref not in seen, f"$ref cycle at {ref}"
        seen.add(ref)
        node = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict) and part in node, f"unresolvable $ref {ref}"
            node = node[part]
    return node


def operations(doc: dict) -> Iterator[tuple[str, str, dict]]:
    """(path, method, operation) for every operation of ``doc``."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                yield path, method, op


def assert_matches_schema(doc: dict, schema: dict, instance) -> None:
    """Fail unless ``instance`` is valid against an OpenAPI 3.0 schema object of ``doc``."""
    openapi_schema_validator.validate(instance, {**resolve(doc, schema), "components": doc["components"]},
                                      cls=openapi_schema_validator.OAS30Validator,
                                      format_checker=openapi_schema_validator.oas30_format_checker)


def registered_routes(prefix: str, *blueprints) -> set[tuple[str, str]]:
    """(path below ``prefix`` in OpenAPI's ``{name}`` form, method) of every route the
    blueprints register (no implicit HEAD or OPTIONS)."""
    app = Flask("routes")
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(prefix + "/"):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule[len(prefix):])
            routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return routes
