"""The deterministic parser: seed 002's table exactly, free phrasing, and clear refusals."""

from __future__ import annotations

import pytest

from anvyl.clusters.intent import IntentError, parse_intent
from anvyl.clusters.spec import ClusterSpec
from tests.clusters.seed_table import SEED_TABLE, assert_row


@pytest.mark.parametrize("intent", list(SEED_TABLE))
def test_seed_table_rows(intent: str) -> None:
    assert_row(intent, parse_intent(intent))


def test_staging_row_sizes_and_seed_examples() -> None:
    staging = parse_intent("staging with calico and ingress")
    assert (staging.worker_cores, staging.worker_memory_mb) == (2, 4096)
    ml = parse_intent("ML training cluster with 3 workers, 16GB RAM, 8 cores")
    assert (ml.worker_count, ml.worker_cores, ml.worker_memory_mb) == (3, 8, 16384)
    ha = parse_intent("production HA cluster with ingress")
    assert ha.control_plane_count == 3 and "ingress-nginx" in ha.addons
    staging4 = parse_intent("staging cluster with 4 workers and cert-manager")
    assert staging4.worker_count == 4 and staging4.addons == ["cert-manager"]


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        ("k8s 1.30 cluster with cilium and 6 workers", {"kubernetes_version": "1.30", "cni": "cilium", "worker_count": 6}),
        ("kubernetes v1.29.4 dev cluster", {"kubernetes_version": "1.29", "worker_count": 1}),
        ("7 node cluster, 16GB and 8 cores", {"worker_count": 6, "worker_memory_mb": 16384, "worker_cores": 8}),
        ("cluster with 3 masters and 4 workers with 12 GB", {"control_plane_count": 3, "worker_count": 4, "worker_memory_mb": 12288, "control_plane_memory_mb": 4096}),
        ("dev cluster with argo cd, grafana, tls certificates, metallb, longhorn and the dashboard",
         {"addons": ["dashboard", "prometheus", "cert-manager", "metallb", "longhorn", "argocd"]}),
        ("production cluster without ingress", {"addons": ["metrics-server"]}),
        ("cluster named web-prod starting at 10.20.0.50 with 100GB disk", {"name": "web-prod", "ip_start": "10.20.0.50", "network_cidr": "10.20.0.0/24", "gateway": "10.20.0.1", "disk_gb": 100}),
        ("3-node HA cluster", {"control_plane_count": 3, "worker_count": 0}),
        ("dev cluster, control plane with 4GB", {"control_plane_memory_mb": 4096, "worker_memory_mb": 2048}),
        ("something unusual", {"control_plane_count": 1, "worker_count": 2}),
    ],
)  # fmt: skip
def test_free_phrasing(intent: str, expected: dict[str, object]) -> None:
    spec = parse_intent(intent)
    assert {k: getattr(spec, k) for k in expected} == expected, spec.reasoning


@pytest.mark.parametrize(
    ("intent", "message"),
    [
        ("", "the intent is empty"),
        ("   \n ", "the intent is empty"),
        ("x" * (1 << 20), "1048576 characters long"),
        ("dev cluster\x00", "control characters"),
        ("-3 workers", "cannot be negative"),
        ("1000 workers", "1000 workers is more than the 50"),
        ("dev cluster with 512MB", "at least 1700 MiB"),
        ("4 control planes", "use 3 or 5"),
        ("cluster with 2 control planes", "even number"),
        ("kubernetes 1.20 cluster", "1.20 is not supported"),
        ("0 node cluster", "at least 1 node"),
        ("cluster from 10.0.0.250 with 10 workers", "do not fit in 10.0.0.0/24"),
    ],
)
def test_bad_intents_say_what_to_fix(intent: str, message: str) -> None:
    with pytest.raises(IntentError, match=message):
        parse_intent(intent)


def test_spec_validation_messages() -> None:
    base = ClusterSpec().model_dump()
    cases = [
        ({"control_plane_count": 2}, "even number"),
        ({"control_plane_memory_mb": 1024}, "kubeadm"),
        ({"ip_start": "10.0.0.5"}, "outside the node network"),
        ({"ip_start": "192.168.1.250", "worker_count": 10}, "do not fit"),
        ({"ip_start": "192.168.1.1"}, "contains the gateway"),
        ({"pod_cidr": "192.168.0.0/16"}, "overlaps the node network"),
        ({"addons": ["istio"]}, "addons"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            ClusterSpec.model_validate({**base, **change})
    assert ClusterSpec.model_validate(
        {**base, "addons": ["argocd", "dashboard", "argocd"]}
    ).addons == ["dashboard", "argocd"]
