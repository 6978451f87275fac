"""The loopback proxy of `qkms dashboard`: loopback only, forwards only the dashboard and
/metrics, and needs an administrator in the manifest."""

from __future__ import annotations

import httpx
import pytest

from kms.errors import ConfigError
from qkms.dashboard_proxy import DashboardProxy, Upstream, forwarded

UPSTREAM = Upstream("https://127.0.0.1:9", "ca.crt", "admin.crt", "admin.key")


@pytest.mark.parametrize("path, forwards", [("/dashboard/", True), ("/dashboard/api/state?since=1", True),
                                            ("/dashboard", True), ("/metrics", True), ("/api/v1/keys/x/status", False),
                                            ("/admin/v1/links/A-B/eavesdropper", False), ("/km/v1/links", False),
                                            ("/dashboardx", False)])
def test_only_the_dashboard_and_metrics_are_forwarded(path: str, forwards: bool) -> None:
    assert forwarded(path) is forwards


def test_it_listens_on_loopback_only() -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        DashboardProxy(UPSTREAM, "0.0.0.0")


def test_the_manifest_must_name_an_administrator() -> None:
    manifest = {"ca": "ca.crt", "nodes": {"A": {"url": "https://127.0.0.1:9"}}, "admin": {}}
    with pytest.raises(ConfigError, match="no administrator"):
        Upstream.from_manifest(manifest, "A")
    with pytest.raises(ConfigError, match="no node B"):
        Upstream.from_manifest(manifest, "B")


def test_other_paths_get_404_and_an_absent_node_502(tmp_path) -> None:
    from kms.pki import CertificateAuthority

    ca = CertificateAuthority.create("test CA")
    ca.save(tmp_path / "ca.crt", tmp_path / "ca.key")
    ca.issue_admin_certificate("admin").save(tmp_path / "admin.crt", tmp_path / "admin.key")
    upstream = Upstream("https://127.0.0.1:9", str(tmp_path / "ca.crt"), str(tmp_path / "admin.crt"),
                        str(tmp_path / "admin.key"))
    with DashboardProxy(upstream) as proxy:
        base = proxy.url.removesuffix("/dashboard/")
        refused = httpx.get(base + "/api/v1/keys/sae-b/enc_keys")
        unreachable = httpx.get(proxy.url)
    assert refused.status_code == 404 and unreachable.status_code == 502
