"""The ETSI GS QKD 014 OpenAPI document (etsi_api/openapi.yaml) is valid and uses the
ETSI names verbatim."""

import base64
import re
import uuid
from pathlib import Path

import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator

from tests.support.openapi import FAILURE_CODES, HTTP_METHODS, assert_matches_schema, load, operations, resolve

DOCUMENT = Path(__file__).resolve().parents[2] / "etsi_api" / "openapi.yaml"

# Member names of the ETSI GS QKD 014 V1.1.1 data formats, exactly as the spec spells them.
ETSI_PROPERTIES = {
    "Status": {
        "source_KME_ID", "target_KME_ID", "master_SAE_ID", "slave_SAE_ID",
        "key_size", "stored_key_count", "max_key_count", "max_key_per_request",
        "max_key_size", "min_key_size", "max_SAE_ID_count", "status_extension",
    },
    "KeyRequest": {
        "number", "size", "additional_slave_SAE_IDs",
        "extension_mandatory", "extension_optional",
    },
    "KeyContainer": {"keys", "key_container_extension"},
    "Key": {"key_ID", "key_ID_extension", "key", "key_extension"},
    "KeyIDs": {"key_IDs", "key_IDs_extension"},
    "KeyID": {"key_ID", "key_ID_extension"},
    "Error": {"message", "details"},
}

STATUS_STRINGS = {"source_KME_ID", "target_KME_ID", "master_SAE_ID", "slave_SAE_ID"}
STATUS_INTEGERS = {
    "key_size", "stored_key_count", "max_key_count", "max_key_per_request",
    "max_key_size", "min_key_size", "max_SAE_ID_count",
}

SPEC_MESSAGES = (
    "size shall be a multiple of 8",
    "not all extension_mandatory parameters are supported",
    "one or more keys specified are not found on KME",
)

# path -> {method: operation parameter names besides the path parameter}
EXPECTED_OPERATIONS = {
    "/keys/{slave_SAE_ID}/status": {"get": set()},
    "/keys/{slave_SAE_ID}/enc_keys": {"get": {"number", "size"}, "post": set()},
    "/keys/{master_SAE_ID}/dec_keys": {"get": {"key_ID"}, "post": set()},
}



@pytest.fixture(scope="module")
def doc():
    return load(DOCUMENT)


def all_refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from all_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from all_refs(item)


def parameter_names(doc, path, method):
    item = doc["paths"][path]
    params = item.get("parameters", []) + item[method].get("parameters", [])
    return [(p["name"], p["in"]) for p in (resolve(doc, p) for p in params)]


def test_validates_with_openapi_spec_validator(doc):
    errors = [error.message for error in OpenAPIV30SpecValidator(doc).iter_errors()]
    assert errors == []


def test_structure(doc):
    assert doc["openapi"] == "3.0.3"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert isinstance(doc["info"]["description"], str)
    assert set(doc) <= {"openapi", "info", "servers", "paths", "components", "security",
                        "tags", "externalDocs"} | {k for k in doc if k.startswith("x-")}
    for ref in all_refs(doc):
        resolve(doc, {"$ref": ref})
    for path, method, op in operations(doc):
        assert op["responses"], f"{method} {path} has no responses"
        for code, response in op["responses"].items():
            assert "description" in resolve(doc, response), f"{method} {path} {code}"
        for name, location in parameter_names(doc, path, method):
            if location == "path":
                assert "{" + name + "}" in path


def test_server_is_relative_api_v1(doc):
    assert [s["url"] for s in doc["servers"]] == ["/api/v1"]


def test_mutual_tls_is_documented(doc):
    # 3.0 has no mutualTLS scheme type: description plus an x- extension.
    assert "mutual TLS" in doc["info"]["description"]
    assert "mutualTLS" in doc["info"]["description"]
    extension = doc["x-qkms-mutual-tls"]
    assert extension["required"] is True
    assert extension["openapi_3_1_equivalent"] == {"type": "mutualTLS"}
    for scheme in doc.get("components", {}).get("securitySchemes", {}).values():
        assert scheme["type"] in {"apiKey", "http", "oauth2", "openIdConnect"}


def test_exactly_the_etsi_operations(doc):
    found = {path: {m for m in item if m in HTTP_METHODS} for path, item in doc["paths"].items()}
    assert found == {path: set(methods) for path, methods in EXPECTED_OPERATIONS.items()}
    for path, methods in EXPECTED_OPERATIONS.items():
        sae_param = re.search(r"\{(\w+)\}", path).group(1)
        for method, query in methods.items():
            names = parameter_names(doc, path, method)
            assert (sae_param, "path") in names
            assert {n for n, loc in names if loc == "query"} == query
            assert {n for n, loc in names if loc not in ("path", "query")} == set()


def test_only_etsi_status_codes(doc):
    for path, method, op in operations(doc):
        assert set(op["responses"]) == {"200"} | FAILURE_CODES, f"{method} {path}"


def test_error_bodies(doc):
    for path, method, op in operations(doc):
        for code in ("400", "503"):
            response = resolve(doc, op["responses"][code])
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, f"{method} {path} {code}"
        unauthorized = resolve(doc, op["responses"]["401"])
        for media in unauthorized.get("content", {}).values():
            assert media["schema"] == {"$ref": "#/components/schemas/Error"}


def test_schema_field_names_are_etsi_verbatim(doc):
    schemas = doc["components"]["schemas"]
    for name, expected in ETSI_PROPERTIES.items():
        assert set(schemas[name]["properties"]) == expected, name
    assert set(schemas["Status"]["required"]) == ETSI_PROPERTIES["Status"] - {"status_extension"}
    assert schemas["KeyContainer"]["required"] == ["keys"]
    assert set(schemas["Key"]["required"]) == {"key_ID", "key"}
    assert schemas["KeyIDs"]["required"] == ["key_IDs"]
    assert schemas["KeyID"]["required"] == ["key_ID"]
    assert schemas["Error"]["required"] == ["message"]
    assert schemas["KeyContainer"]["properties"]["keys"]["items"] == {"$ref": "#/components/schemas/Key"}
    assert schemas["KeyIDs"]["properties"]["key_IDs"]["items"] == {"$ref": "#/components/schemas/KeyID"}


def test_peer_mistakes_are_absent(doc):
    text = DOCUMENT.read_text(encoding="utf-8")
    assert not re.search(r"^\s*Keys:", text, re.M), "capitalised Keys"
    assert not re.search(r"^\s*detail:", text, re.M), "FastAPI-style detail body"
    assert not re.search(r"^\s*'?(404|405)'?:", text, re.M)


def test_types(doc):
    schemas = doc["components"]["schemas"]
    status = schemas["Status"]["properties"]
    for name in STATUS_STRINGS:
        assert status[name]["type"] == "string", name
    for name in STATUS_INTEGERS:
        assert status[name]["type"] == "integer", name
    assert status["status_extension"]["type"] == "object"

    request = schemas["KeyRequest"]
    assert request["additionalProperties"] is False
    assert request.get("required", []) == []
    props = request["properties"]
    assert props["number"]["type"] == "integer"
    assert props["number"]["minimum"] == 1 and props["number"]["default"] == 1
    assert props["size"]["type"] == "integer" and props["size"]["multipleOf"] == 8
    assert props["additional_slave_SAE_IDs"]["items"]["type"] == "string"
    for name in ("extension_mandatory", "extension_optional"):
        assert props[name]["type"] == "array" and props[name]["items"]["type"] == "object"

    key = schemas["Key"]["properties"]
    assert key["key_ID"]["type"] == "string" and key["key_ID"]["format"] == "uuid"
    assert key["key"]["type"] == "string" and key["key"]["format"] == "byte"
    for name in ("key_ID_extension", "key_extension"):
        assert key[name]["type"] == "object"
    assert schemas["KeyID"]["properties"]["key_ID"]["format"] == "uuid"
    assert schemas["Error"]["properties"]["message"]["type"] == "string"
    details = schemas["Error"]["properties"]["details"]
    assert details["type"] == "array" and details["items"]["type"] == "object"


def test_query_parameters(doc):
    get_keys = dict(
        (p["name"], p) for p in (resolve(doc, p) for p in doc["paths"]["/keys/{slave_SAE_ID}/enc_keys"]["get"]["parameters"])
    )
    assert not get_keys["number"].get("required", False)
    assert not get_keys["size"].get("required", False)
    assert get_keys["size"]["schema"]["multipleOf"] == 8
    (key_id,) = doc["paths"]["/keys/{master_SAE_ID}/dec_keys"]["get"]["parameters"]
    assert key_id["name"] == "key_ID" and key_id["required"] is True
    assert key_id["schema"]["format"] == "uuid"


def test_path_parameters_are_url_encoded_sae_ids(doc):
    for name in ("slave_SAE_ID", "master_SAE_ID"):
        param = doc["components"]["parameters"][name]
        assert param["in"] == "path" and param["required"] is True
        assert param["schema"]["type"] == "string"
        assert "URL-encoded" in param["description"]


def test_examples(doc):
    schemas = doc["components"]["schemas"]
    key_example = schemas["Key"]["properties"]["key"]["example"]
    assert base64.b64decode(key_example, validate=True) == bytes(32)
    uuid.UUID(schemas["Key"]["properties"]["key_ID"]["example"])
    container = schemas["KeyContainer"]["example"]
    provenance = container["keys"][0]["key_extension"]["qkms_provenance"]
    assert {"sources", "algorithms"} <= set(provenance)
    provenance_schema = doc["components"]["schemas"]["QkmsProvenance"]["properties"]
    assert {"sources", "algorithms"} <= set(provenance_schema)
    for name in ETSI_PROPERTIES:
        assert "example" in schemas[name], name


def test_examples_match_their_schemas(doc):
    for schema in doc["components"]["schemas"].values():
        if "example" in schema:
            assert_matches_schema(doc, schema, schema["example"])
    for path, method, op in operations(doc):
        bodies = [op.get("requestBody", {})] + list(op["responses"].values())
        for body in bodies:
            for media in resolve(doc, body).get("content", {}).values():
                for example in media.get("examples", {}).values():
                    assert_matches_schema(doc, media["schema"], example["value"])
                if "example" in media:
                    assert_matches_schema(doc, media["schema"], media["example"])


def test_behaviour_is_documented(doc):
    text = DOCUMENT.read_text(encoding="utf-8")
    for message in SPEC_MESSAGES:
        assert message in text, message
    description = doc["info"]["description"]
    assert "503" in description and "consumes nothing" in description
    assert "expire" in description
    assert "qkms_" in description and "qkms_provenance" in description
    assert all(
        name.startswith("qkms_")
        for name in doc["components"]["schemas"]["Key"]["properties"]["key_extension"]["properties"]
    )
