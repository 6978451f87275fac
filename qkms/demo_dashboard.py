"""Showing a running network's dashboard: what ``qkms demo --keep-running`` and
``qkms dashboard`` print and serve."""

from __future__ import annotations

import signal
import threading

from rich.console import Console

from qkms.dashboard_proxy import DashboardProxy, Upstream

#: The node whose dashboard the demo serves: in the middle of A-B-C-D it knows both
#: halves of its own links and its peers' halves of theirs.
DEMO_DASHBOARD_NODE = "B"


def dashboard_note(manifest: dict, kme_id: str) -> str:
    """Where node ``kme_id`` serves its dashboard and with which certificate."""
    admin = manifest.get("admin", {})
    return (f"dashboard of node {kme_id}: {manifest['nodes'][kme_id]['url']}/dashboard/ "
            f"(administrator certificate {admin.get('cert')}, key {admin.get('key')}, CA {manifest['ca']})")


def serve_until_interrupted(manifest: dict, kme_id: str, console: Console, host: str = "127.0.0.1",
                            port: int = 0, still_running=lambda: True) -> None:
    """Serve node ``kme_id``'s dashboard on http://HOST:PORT/dashboard/ (a loopback proxy
    presenting the administrator's certificate) until Ctrl-C, SIGTERM or ``still_running()``
    turns false."""
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with DashboardProxy(Upstream.from_manifest(manifest, kme_id), host, port) as proxy:
            console.print(f"[bold]dashboard:[/] open {proxy.url} in a browser on this machine "
                          f"(node {kme_id} through a loopback proxy that presents the administrator certificate)",
                          soft_wrap=True)
            console.print(dashboard_note(manifest, kme_id), soft_wrap=True)
            console.print("the network keeps running; Ctrl-C stops it")
            while not stop.wait(0.5) and still_running():
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
