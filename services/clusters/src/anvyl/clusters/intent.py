"""The deterministic intent parser: plain English to a ClusterSpec, without a model.

A profile word ("dev", "production", "ML", "CI/CD", "HA", "minimal", "staging") sets the base
sizes of seed 002's intent table; counts, sizes, CNI, version, add-ons, addresses and a name said
in the intent override it. Every decision is written into the spec's reasoning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import ValidationError

from anvyl.clusters.spec import ClusterSpec, describe_errors

MAX_INTENT_CHARS = 2000


class IntentError(ValueError):
    """The intent cannot become a valid spec; the message says what to change."""


@dataclass(frozen=True)
class Profile:
    name: str
    pattern: str
    control_planes: int
    workers: int
    cores: int
    memory_gb: int
    addons: tuple[str, ...] = ()


# Priority order: the first profile found sets the sizes ("production HA" is HA-sized).
PROFILES: tuple[Profile, ...] = (
    Profile("minimal", r"minimal|single[- ]node|one[- ]node|smallest|\btiny\b", 1, 0, 2, 2),
    Profile(
        "ml-training",
        r"\bml\b|machine[- ]learning|training|\bai\b|\bgpus?\b|inference|\bllms?\b",
        1,
        3,
        8,
        16,
    ),
    Profile(
        "ci-cd", r"\bci\s*/\s*cd\b|\bcicd\b|\bci\b|\brunners?\b|pipelines?|build farm", 1, 2, 4, 4
    ),
    Profile("ha", r"\bha\b|high[- ]?availab|highly[- ]available|multi[- ]master", 3, 3, 4, 8),
    Profile("production", r"\bprod(?:uction)?\b", 1, 3, 4, 8, ("metrics-server", "ingress-nginx")),
    Profile("staging", r"\bstag(?:e|ing)\b|pre-?prod", 1, 2, 2, 4),
    Profile("dev", r"\bdev\b|develop|\btest(?:s|ing)?\b|sandbox|playground|\blab\b", 1, 1, 2, 2),
)
DEFAULT_PROFILE = Profile("k8s", "", 1, 2, 2, 4)

ADDON_PATTERNS: dict[str, str] = {
    "metrics-server": r"metrics[- ]?server|\bmetrics\b|autoscal|\bhpa\b",
    "ingress-nginx": r"ingress|\bnginx\b",
    "dashboard": r"dashboard",
    "prometheus": r"prometheus|monitoring|monitored|grafana|observability|alerting",
    "cert-manager": r"cert[- ]?manager|certificates?|\btls\b|let'?s ?encrypt|\bacme\b",
    "metallb": r"metal[- ]?lb|load[- ]?balancer",
    "longhorn": r"longhorn|persistent storage|distributed storage|block storage|\bvolumes?\b",
    "argocd": r"argo[- ]?cd|\bargo\b|gitops",
}
CNI_PATTERNS = {"calico": r"\bcalico\b", "cilium": r"\bcilium\b", "flannel": r"\bflannel\b"}

_WORDS = {
    "zero": 0, "no": 0, "one": 1, "a single": 1, "single": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11,
    "twelve": 12, "fifteen": 15, "twenty": 20,
}  # fmt: skip
_NUMBER = r"(-\s*\d+|\d+|" + "|".join(sorted(_WORDS, key=len, reverse=True)) + r")"
_WORKERS = re.compile(_NUMBER + r"\s*(?:x\s*)?(?:worker|agent|compute)(?:[- ]?nodes?)?s?\b")
_CONTROL_PLANES = re.compile(
    _NUMBER + r"\s*(?:x\s*)?(?:control[- ]?planes?|masters?|\bcps?\b|control[- ]plane nodes?)"
)
_NODES = re.compile(_NUMBER + r"[- ]?(?:vms?\b|nodes?\b|machines?\b)")
_CORES = re.compile(r"(\d+)\s*(?:v?cpus?|v?cores?|vcpus?|cpu cores?)\b")
_SIZE = r"(\d+(?:\.\d+)?)\s*(tb|tib|gb|gib|g|mb|mib)\b"
_DISK = re.compile(
    _SIZE + r"\s*(?:of\s+)?(?:disks?|storage|ssds?|hdds?|drives?)\b"
    r"|(?:disks?|storage)\s*(?:of|:|=)?\s*" + _SIZE
)
_MEMORY = re.compile(_SIZE + r"(?:\s*(?:of\s+)?(?:ram|memory|mem))?")
_VERSION = re.compile(
    r"(?:kubernetes|k8s|kube|version|\bv)\s*[-:=]?\s*v?(\d+\.\d+)(?:\.\d+)?\b"
    r"|\bv?(1\.\d{2})(?:\.\d+)?\b(?!\s*(?:tb|tib|gb|gib|g|mb|mib)\b)"
)
_IPV4 = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3})(?:/(\d{1,2}))?\b")
_GATEWAY = re.compile(r"gateway\s*(?:of|is|:|=|at)?\s*(\d{1,3}(?:\.\d{1,3}){3})")
_NAME = re.compile(r"\b(?:named|called|name[ds]?\s*[:=]?)\s+['\"]?([a-z][a-z0-9-]{0,38}[a-z0-9]?)")
_NEGATION = re.compile(
    r"\b(?:without|no|skip|exclude)\s+(?:the\s+|an?\s+)?([a-z][a-z-]*(?:\s[a-z]+)?)"
)
_CP_WORDS = re.compile(r"control[- ]?planes?|masters?|\bcps?\b")
_WORKER_WORDS = re.compile(r"workers?|agents?|compute")


@dataclass
class _Parse:
    text: str
    notes: list[str] = field(default_factory=list)
    values: dict[str, object] = field(default_factory=dict)


def _number(token: str) -> int:
    token = token.strip()
    if token in _WORDS:
        return _WORDS[token]
    return int(token.replace(" ", ""))


def _megabytes(amount: str, unit: str) -> int:
    value = float(amount)
    unit = unit.lower()
    if unit in ("tb", "tib"):
        return int(value * 1024 * 1024)
    if unit in ("mb", "mib"):
        return int(value)
    return int(value * 1024)


def check_intent(intent: str) -> str:
    """The intent with whitespace collapsed, or IntentError saying what is wrong with it."""
    if not isinstance(intent, str) or not intent.strip():
        raise IntentError(
            'the intent is empty: describe the cluster, e.g. "dev cluster with 2 workers"'
        )
    if len(intent) > MAX_INTENT_CHARS:
        raise IntentError(
            f"the intent is {len(intent)} characters long: describe the cluster in at most "
            f"{MAX_INTENT_CHARS} characters"
        )
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in intent):
        raise IntentError("the intent contains control characters: use plain text")
    return " ".join(intent.split())


def _clauses(text: str) -> list[str]:
    return [part for part in re.split(r"[,;]|\band\b|\bplus\b", text) if part.strip()]


def _target(clause: str) -> tuple[bool, bool]:
    """(applies to control planes, applies to workers) for a size said in this clause."""
    cp, worker = bool(_CP_WORDS.search(clause)), bool(_WORKER_WORDS.search(clause))
    if cp and not worker:
        return True, False
    if worker and not cp:
        return False, True
    return True, True


def _profile(parse: _Parse) -> Profile:
    found = [p for p in PROFILES if re.search(p.pattern, parse.text)]
    profile = found[0] if found else DEFAULT_PROFILE
    v = parse.values
    v.update(
        name=profile.name,
        control_plane_count=profile.control_planes,
        worker_count=profile.workers,
        control_plane_cores=profile.cores,
        worker_cores=profile.cores,
        control_plane_memory_mb=profile.memory_gb * 1024,
        worker_memory_mb=profile.memory_gb * 1024,
    )
    addons = list(profile.addons)
    if found:
        parse.notes.append(
            f"'{profile.name}' profile: {profile.control_planes} control plane"
            f"{'s' if profile.control_planes > 1 else ''} + {profile.workers} worker"
            f"{'' if profile.workers == 1 else 's'}, {profile.cores} cores and "
            f"{profile.memory_gb}GB per node"
        )
    else:
        parse.notes.append(
            "no profile word (dev, staging, production, HA, ML, CI/CD, minimal): a general "
            "cluster of 1 control plane + 2 workers, 2 cores and 4GB per node"
        )
    for extra in found[1:]:
        if extra.name == "ha" and v["control_plane_count"] == 1:
            v["control_plane_count"] = 3
            parse.notes.append("high availability: 3 control planes for etcd quorum")
        for addon in extra.addons:
            if addon not in addons:
                addons.append(addon)
                parse.notes.append(f"{addon} as for any {extra.name} cluster")
    v["addons"] = addons
    return profile


def _counts(parse: _Parse) -> None:
    v, text = parse.values, parse.text
    if match := _CONTROL_PLANES.search(text):
        v["control_plane_count"] = _number(match.group(1))
        parse.notes.append(f"{v['control_plane_count']} control planes as asked")
    workers = _WORKERS.search(text)
    if workers:
        v["worker_count"] = _number(workers.group(1))
        parse.notes.append(f"{v['worker_count']} workers as asked")
    nodes = _NODES.search(text)
    if nodes:
        total = _number(nodes.group(1))
        if total < 1:
            raise IntentError(f"{total} nodes: a cluster needs at least 1 node")
        cp = int(v["control_plane_count"])  # type: ignore[call-overload]
        if workers:
            v["control_plane_count"] = total - int(v["worker_count"])  # type: ignore[call-overload]
        elif total <= cp:
            v["control_plane_count"] = total if total % 2 else max(1, total - 1)
            v["worker_count"] = total - int(v["control_plane_count"])  # type: ignore[call-overload]
        else:
            v["worker_count"] = total - cp
        parse.notes.append(
            f"{total} node{'s' if total > 1 else ''} in all: {v['control_plane_count']} "
            f"control plane + {v['worker_count']} workers"
        )


def _sizes(parse: _Parse) -> None:
    v = parse.values
    disk_spans: list[tuple[int, int]] = []
    if match := _DISK.search(parse.text):
        amount, unit = (match.group(1), match.group(2)) if match.group(1) else match.group(3, 4)
        v["disk_gb"] = max(1, _megabytes(amount, unit) // 1024)
        disk_spans.append(match.span())
        parse.notes.append(f"{v['disk_gb']}GB disk per node as asked")
    for clause in _clauses(parse.text):
        for_cp, for_workers = _target(clause)
        who = (
            "every node" if for_cp and for_workers else ("control planes" if for_cp else "workers")
        )
        if cores := _CORES.search(clause):
            n = int(cores.group(1))
            if for_cp:
                v["control_plane_cores"] = n
            if for_workers:
                v["worker_cores"] = n
            parse.notes.append(f"{n} cores for {who} as asked")
        for memory in _MEMORY.finditer(clause):
            start = parse.text.find(memory.group(0))
            if any(a <= start < b for a, b in disk_spans):
                continue
            mb = _megabytes(memory.group(1), memory.group(2))
            if for_cp:
                v["control_plane_memory_mb"] = mb
            if for_workers:
                v["worker_memory_mb"] = mb
            parse.notes.append(f"{memory.group(1)}{memory.group(2).upper()} memory for {who}")
            break


def _choices(parse: _Parse) -> None:
    v, text = parse.values, parse.text
    cnis = [(m.start(), cni) for cni, p in CNI_PATTERNS.items() if (m := re.search(p, text))]
    if cnis:
        v["cni"] = min(cnis)[1]
        parse.notes.append(f"{v['cni']} CNI as asked")
        if len(cnis) > 1:
            parse.notes.append(f"several CNIs named: the first one, {v['cni']}, is used")
    if match := _VERSION.search(_IPV4.sub(" ", text)):  # "10.0.1.10" holds no version
        v["kubernetes_version"] = match.group(1) or match.group(2)
        parse.notes.append(f"Kubernetes {v['kubernetes_version']} as asked")
    addons: list[str] = list(v.get("addons", []))  # type: ignore[call-overload]
    removed = set()
    for negation in _NEGATION.finditer(text):
        for addon, pattern in ADDON_PATTERNS.items():
            if re.search(pattern, negation.group(1)):
                removed.add(addon)
    for addon, pattern in ADDON_PATTERNS.items():
        if addon not in removed and addon not in addons and re.search(pattern, text):
            addons.append(addon)
            parse.notes.append(f"{addon} add-on as asked")
    for addon in sorted(removed):
        if addon in addons:
            addons.remove(addon)
        parse.notes.append(f"no {addon}, as asked")
    v["addons"] = addons


def _network(parse: _Parse) -> None:
    v, text = parse.values, parse.text
    gateway = _GATEWAY.search(text)
    if gateway:
        v["gateway"] = gateway.group(1)
    for match in _IPV4.finditer(text):
        if gateway and match.group(1) == gateway.group(1):
            continue
        address, prefix = match.group(1), match.group(2)
        octets = address.split(".")
        if prefix:
            v["network_cidr"] = f"{address}/{prefix}"
            parse.notes.append(f"node network {v['network_cidr']} as asked")
            continue
        v["ip_start"] = address
        if "network_cidr" not in v:
            v["network_cidr"] = ".".join(octets[:3]) + ".0/24"
        if "gateway" not in v:
            v["gateway"] = ".".join(octets[:3]) + ".1"
        parse.notes.append(f"nodes from {address} as asked")
    if "ip_start" not in v and "network_cidr" in v:
        network = str(v["network_cidr"]).split("/")[0].split(".")
        v.setdefault("gateway", ".".join(network[:3]) + ".1")
        v["ip_start"] = ".".join(network[:3]) + ".100"
    if name := _NAME.search(text):
        v["name"] = name.group(1).rstrip("-")


def parse_intent(intent: str) -> ClusterSpec:
    """The spec the intent describes, or IntentError with what to change."""
    text = check_intent(intent)
    parse = _Parse(text=text.lower())
    _profile(parse)
    _counts(parse)
    _sizes(parse)
    _choices(parse)
    _network(parse)
    if re.search(r"\bgpus?\b", parse.text):
        parse.notes.append("GPU passthrough is not configured: add hostpci devices by hand")
    try:
        spec = ClusterSpec.model_validate({**parse.values, "reasoning": "; ".join(parse.notes)})
    except ValidationError as exc:
        raise IntentError(
            f"the intent asks for a cluster that cannot be built: {describe_errors(exc)}"
        ) from None
    return spec
