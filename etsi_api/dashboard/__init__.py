"""The operator's dashboard at /dashboard/: static pages and their JSON API.

Every route, the static files included, requires an administrator certificate of
this node (``calling_admin``). The page polls ``/dashboard/api/state`` about once a
second (topology, link halves, new samples, new alarms) and fetches each simulated
link's rate-versus-distance curve once. The charting library (uPlot) is vendored
under ``static/vendor`` (its README says which version, from where): nothing is
loaded from outside the node.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, request

from etsi_api.auth import calling_admin
from etsi_api.dashboard.views import rate_curve_view, state_view
from etsi_api.monitoring import Monitoring
from kms.errors import BadRequest, Unavailable

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", static_folder="static",
               static_url_path="/static")


@bp.before_request
def _administrators_only() -> None:
    calling_admin()


def _monitoring() -> Monitoring:
    monitoring = current_app.extensions.get("qkms.monitoring")
    if monitoring is None:
        raise Unavailable("this node serves no monitoring data")
    return monitoring


@bp.get("")
def bare():
    return redirect("/dashboard/")


@bp.get("/")
def index():
    response = bp.send_static_file("index.html")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/state")
def state():
    since = request.args.get("since", "0")
    try:
        since_s = float(since)
    except ValueError:
        raise BadRequest("since must be a number of seconds since the epoch") from None
    service = current_app.extensions["qkms.service"]
    return jsonify(state_view(current_app.config["QKMS_NODE_CONFIG"], _monitoring(),
                              service.link_manager_status(), since_s))


@bp.get("/api/rate-distance/<link_id>")
def rate_distance(link_id: str):
    return jsonify(rate_curve_view(current_app.config["QKMS_NODE_CONFIG"], _monitoring(), link_id))
