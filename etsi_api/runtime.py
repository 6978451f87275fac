"""Every request sees its node's current runtime configuration (file plus admin changes).

Before each request the app asks its :class:`kms.node.NodeRuntime` for the current
node (one small Redis read) and, when an admin change arrived, swaps in the service,
network, link responders and configuration built for it, so a change made at any
node reaches every worker of every node without a restart.
"""

from __future__ import annotations

from flask import Flask

from kms.node import NodeRuntime


def init_app(app: Flask, runtime: NodeRuntime) -> None:
    """Keep ``app`` on ``runtime``'s current node."""
    app.extensions["qkms.runtime"] = runtime

    def refresh() -> None:
        view, node = runtime.current()
        if app.config["QKMS_NODE_CONFIG"] is not view.config:
            app.config["QKMS_NODE_CONFIG"] = view.config
            app.extensions["qkms.service"] = node.service
            app.extensions["qkms.network"] = node.network
            app.extensions["qkms.responders"] = node.responders

    app.before_request(refresh)
