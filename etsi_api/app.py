"""Flask application factory for one qkms node."""

from __future__ import annotations

from flask import Flask

from etsi_api import errors, keys_api, km_api, meta_api
from kms.node import NodeResources


def create_app(resources: NodeResources) -> Flask:
    """A Flask app serving ETSI GS QKD 014 for the node whose parts are ``resources``."""
    app = Flask("qkms")
    config = resources.config
    app.config.update(
        MAX_CONTENT_LENGTH=config.server.max_request_bytes,
        QKMS_SAE_ID_FIELD=config.tls.sae_id_field,
        QKMS_DEFAULT_KEY_SIZE_BITS=config.limits.key_size_bits,
        QKMS_NODE_CONFIG=config,
        JSON_SORT_KEYS=False,
        PROVIDE_AUTOMATIC_OPTIONS=False,
    )
    app.json.sort_keys = False
    app.extensions["qkms.service"] = resources.service
    app.extensions["qkms.store"] = resources.store
    if resources.network is not None:
        app.extensions["qkms.network"] = resources.network
    errors.init_app(app)
    # No implicit HEAD (it would run GET handlers: a dec_keys that deletes keys nobody
    # receives) and no OPTIONS: both are refused before any handler or authorization.
    app.before_request(errors.refuse_implicit_methods)
    app.register_blueprint(keys_api.bp)
    app.register_blueprint(meta_api.bp)
    app.register_blueprint(km_api.bp)
    return app
