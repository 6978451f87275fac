"""Flask application factory for one qkms node."""

from __future__ import annotations

from flask import Flask

from etsi_api import admin_api, dashboard, errors, keys_api, km_api, meta_api, metrics, qkd004_api, runtime, skip_api
from etsi_api import admission as admission_api
from etsi_api.monitoring import Monitoring
from etsi_api.state_metrics import NodeStateCollector
from kms.admission import Admission
from kms.config import NodeConfig
from kms.link_exchange import LinkResponders
from kms.network import KeyNetwork
from kms.node import NodeRuntime
from kms.service import KeyService
from kms.store import KeyStore


def create_app(config: NodeConfig, service: KeyService, store: KeyStore, network: KeyNetwork | None = None,
               responders: LinkResponders | None = None, admission: Admission | None = None,
               node_runtime: NodeRuntime | None = None, monitoring: Monitoring | None = None) -> Flask:
    """A Flask app serving ETSI GS QKD 014 with ``service`` (and the KM channel with
    ``network``) for the node configured by ``config``; ``store`` answers health checks,
    ``responders`` the peers of this node's links' key sources; ``admission`` enforces
    the per-SAE request limits; ``node_runtime`` keeps every request on the node's
    current configuration (admin changes) and serves the admin API; ``monitoring`` feeds
    /metrics and /dashboard/."""
    app = Flask("qkms")
    app.config.update(
        MAX_CONTENT_LENGTH=config.server.max_request_bytes,
        QKMS_SAE_ID_FIELD=config.tls.sae_id_field,
        QKMS_DEFAULT_KEY_SIZE_BITS=config.limits.key_size_bits,
        QKMS_NODE_CONFIG=config,
        JSON_SORT_KEYS=False,
        PROVIDE_AUTOMATIC_OPTIONS=False,
    )
    app.json.sort_keys = False
    app.extensions["qkms.service"] = service
    app.extensions["qkms.store"] = store
    if network is not None:
        app.extensions["qkms.network"] = network
    if responders is not None:
        app.extensions["qkms.responders"] = responders
    _init_monitoring(app, service, store, monitoring)
    errors.init_app(app)
    admission_api.init_app(app, admission)
    if node_runtime is not None:
        runtime.init_app(app, node_runtime)
    # No implicit HEAD (it would run GET handlers: a dec_keys that deletes keys nobody
    # receives) and no OPTIONS: both are refused before any handler or authorization.
    app.before_request(errors.refuse_implicit_methods)
    app.register_blueprint(keys_api.bp)
    app.register_blueprint(meta_api.bp)
    app.register_blueprint(km_api.bp)
    app.register_blueprint(skip_api.bp)
    app.register_blueprint(admin_api.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(qkd004_api.bp)
    return app


def _init_monitoring(app: Flask, service: KeyService, store: KeyStore, monitoring: Monitoring | None) -> None:
    """Request metrics first (so every later hook is timed), /metrics with the node's
    state (on its current configuration) when ``monitoring`` gives its storage, and the
    dashboard's data."""
    api_metrics = metrics.ApiMetrics(monitoring.multiprocess_dir if monitoring else None)
    state = None
    if monitoring is not None:
        app.extensions["qkms.monitoring"] = monitoring
        state = NodeStateCollector(lambda: app.config["QKMS_NODE_CONFIG"], monitoring.board, monitoring.pools,
                                   service.link_manager_status, store.ping, api_metrics.redis_ping.labels("web").observe)
    metrics.init_app(app, api_metrics, state)
