"""Growing a ``qkms init`` directory whose network runs: new nodes and links.

``qkms init DIR --add-node D --add-link C-D --sae sae-d@D`` writes, next to what is
there, everything the new node and links need: the node's certificate, KEK and config
(listing every node and link of the network), its SAEs' certificates, each new link's
seed (or ML-DSA keys) in both ends' directories, and the manifest's new entries. The
running nodes' files are not touched: they learn of the node and links through the
admin API, from the bodies written here (``DIR/additions/nodes/<ID>.json``,
``DIR/additions/links/<ID>.json``; ``qkms admin add-node`` and ``add-link`` send
them), and keep them in their change logs.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from kms.pki import CertificateAuthority
from qkms.layout import (Manifest, LinkPlan, NodePlan, _link_config, node_config, write_link_seeds, write_node,
                         write_pqc_identities, write_sae)


def additions_dir(root: Path) -> Path:
    return root / "additions"


def _existing_links(manifest: dict) -> list[dict]:
    """Every link of the network as a node that is not its end sees it (kinds only)."""
    first = next(iter(manifest["nodes"].values()))
    links = yaml.safe_load(Path(first["config"]).read_text()).get("links", [])
    return [_as_seen_from_afar(link) for link in links]


def _as_seen_from_afar(link: dict) -> dict:
    entry = {k: v for k, v in link.items() if k not in ("source", "pqc")}
    for name in ("source", "pqc"):
        if link.get(name):
            entry[name] = {"kind": link[name]["kind"]}
    return entry


def _existing_plans(manifest: dict) -> list[NodePlan]:
    saes: dict[str, list[str]] = {}
    for sae_id, entry in manifest["saes"].items():
        saes.setdefault(entry["node"], []).append(sae_id)
    return [NodePlan(kme_id, tuple(saes.get(kme_id, ())), int(entry["url"].rsplit(":", 1)[1]))
            for kme_id, entry in manifest["nodes"].items()]


def add_to_layout(root: Path, new_nodes: list[NodePlan], new_links: list[LinkPlan]) -> dict:
    """Write ``new_nodes`` and ``new_links`` into the layout at ``root``; returns the
    manifest. ValueError naming the option if a node or link exists or a link's end is
    unknown."""
    root = root.resolve()
    manifest_path = root / "manifest.json"
    data = json.loads(manifest_path.read_text())
    existing = _existing_plans(data)
    known = {plan.kme_id for plan in existing}
    _check(known, new_nodes, new_links, {link["id"] for link in _existing_links(data)}, set(data["saes"]))
    ca = CertificateAuthority.load(root / "pki" / "ca.crt", root / "pki" / "ca.key")
    manifest = Manifest(data["ca"], data["nodes"], data["saes"], data.get("admin", {}))
    plans = existing + new_nodes
    remote_links = _existing_links(data)
    for plan in new_nodes:
        config_path = write_node(root, ca, plan, manifest, plans, new_links)
        config = node_config(plan, plans, new_links)
        config["links"] = remote_links + config.get("links", [])
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        for sae_id in plan.sae_ids:
            write_sae(root, ca, sae_id, plan.kme_id, manifest)
    write_link_seeds(root, new_links)
    write_pqc_identities(root, new_links)
    _write_additions(root, manifest, new_nodes, new_links)
    manifest_path.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    return manifest.to_dict()


def _check(known: set[str], new_nodes: list[NodePlan], new_links: list[LinkPlan], link_ids: set[str],
           sae_ids: set[str]) -> None:
    for plan in new_nodes:
        if plan.kme_id in known:
            raise ValueError(f"--add-node {plan.kme_id}: the network already has that node")
        taken = sorted(set(plan.sae_ids) & sae_ids)
        if taken:
            raise ValueError(f"--sae {taken[0]}: the network already has that SAE")
    ends = known | {plan.kme_id for plan in new_nodes}
    for link in new_links:
        if link.link_id in link_ids:
            raise ValueError(f"--add-link {link.link_id}: the network already has that link")
        if not set(link.nodes) <= ends:
            raise ValueError(f"--add-link {link.link_id}: both ends must be nodes of the network")


def _write_additions(root: Path, manifest: Manifest, new_nodes: list[NodePlan], new_links: list[LinkPlan]) -> None:
    """The admin API bodies that tell the running nodes of the additions."""
    for plan in new_nodes:
        body = {"kme_id": plan.kme_id, "url": manifest.nodes[plan.kme_id]["url"], "saes": list(plan.sae_ids)}
        _write_json(additions_dir(root) / "nodes" / f"{plan.kme_id}.json", body)
    for link in new_links:
        ends = {end: _link_config(link, NodePlan(end, (), 0)) for end in link.nodes}
        body = {"link": _as_seen_from_afar(ends[link.nodes[0]]),
                "at": {end: {k: v for k, v in entry.items() if k in ("source", "pqc")} for end, entry in ends.items()}}
        _write_json(additions_dir(root) / "links" / f"{link.link_id}.json", body)


def _write_json(path: Path, body: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2) + "\n")


def ensure_sae_certificate(root: Path, sae_id: str) -> Path:
    """The SAE's certificate in ``root/saes``, issued by the layout's CA if missing."""
    cert, key = root / "saes" / f"{sae_id}.crt", root / "saes" / f"{sae_id}.key"
    if not cert.is_file():
        ca = CertificateAuthority.load(root / "pki" / "ca.crt", root / "pki" / "ca.key")
        ca.issue_sae_certificate(sae_id).save(cert, key)
    return cert.resolve()


def list_sae(root: Path, sae_id: str, kme_id: str) -> None:
    """Record in the manifest that ``sae_id`` (certificate in ``root/saes``) is at ``kme_id``."""
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    saes = root.resolve() / "saes"
    manifest["saes"][sae_id] = {"node": kme_id, "cert": str(saes / f"{sae_id}.crt"), "key": str(saes / f"{sae_id}.key")}
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def forget_sae(root: Path, sae_id: str) -> None:
    """Drop ``sae_id`` from the manifest (its certificate files stay)."""
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    if manifest["saes"].pop(sae_id, None) is not None:
        path.write_text(json.dumps(manifest, indent=2) + "\n")
