"""Seed 002's intent table, as specs: the parser and a scripted model must both give these."""

from __future__ import annotations

from typing import Any

GB = 1024
# intent -> the fields the table states (cores and memory apply to every node of the row)
SEED_TABLE: dict[str, dict[str, Any]] = {
    "dev cluster": {"control_plane_count": 1, "worker_count": 1, "cores": 2, "memory_mb": 2 * GB, "addons": [], "cni": "flannel"},
    "production cluster with 5 workers": {"control_plane_count": 1, "worker_count": 5, "cores": 4, "memory_mb": 8 * GB, "addons": ["metrics-server", "ingress-nginx"], "cni": "flannel"},
    "ML training cluster with 16GB RAM": {"control_plane_count": 1, "worker_count": 3, "cores": 8, "memory_mb": 16 * GB, "addons": [], "cni": "flannel"},
    "CI/CD runner cluster": {"control_plane_count": 1, "worker_count": 2, "cores": 4, "memory_mb": 4 * GB, "addons": [], "cni": "flannel"},
    "HA cluster with monitoring": {"control_plane_count": 3, "worker_count": 3, "cores": 4, "memory_mb": 8 * GB, "addons": ["prometheus"], "cni": "flannel"},
    "minimal single-node cluster": {"control_plane_count": 1, "worker_count": 0, "cores": 2, "memory_mb": 2 * GB, "addons": [], "cni": "flannel"},
    "staging with calico and ingress": {"control_plane_count": 1, "worker_count": 2, "addons": ["ingress-nginx"], "cni": "calico"},
    "5 node cluster with 4 cores 8gb": {"control_plane_count": 1, "worker_count": 4, "cores": 4, "memory_mb": 8 * GB, "addons": [], "cni": "flannel"},
}  # fmt: skip


def table_fields(spec: Any) -> dict[str, Any]:
    """The spec in the table's terms, for the keys the row states."""
    return {
        "control_plane_count": spec.control_plane_count,
        "worker_count": spec.worker_count,
        "cores": spec.worker_cores if spec.worker_count else spec.control_plane_cores,
        "memory_mb": spec.worker_memory_mb if spec.worker_count else spec.control_plane_memory_mb,
        "addons": spec.addons,
        "cni": spec.cni,
    }


def assert_row(intent: str, spec: Any) -> None:
    expected = SEED_TABLE[intent]
    got = table_fields(spec)
    assert {k: got[k] for k in expected} == expected, intent
    # every node type is sized as the row says (the table gives one size for the cluster)
    if "cores" in expected:
        assert spec.control_plane_cores == expected["cores"]
        assert spec.control_plane_memory_mb == expected["memory_mb"]
    assert spec.kubernetes_version == "1.31"
    assert spec.reasoning
