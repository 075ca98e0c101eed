"""A `gcloud` stand-in for testing scripts/deploy.sh: it records every call, refuses flags and values
the real command does not take (per the gcloud reference of each command used), and keeps the
project's resources in a JSON state file so that `describe` tells the truth and a second run sees
what the first created. A resource command fails like gcloud when its API is not enabled yet, and
a deploy fails when a secret, image, account or Cloud SQL instance it names does not exist yet.

Environment: GCLOUD_STANDIN_STATE (state file), GCLOUD_STANDIN_LOG (one JSON line per call),
GCLOUD_STANDIN_FAIL (a command path such as "sql instances create": it fails once reached),
GCLOUD_STANDIN_RUN_URL (the URL `run services describe` reports for every service).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GLOBAL = {"--project": "value", "--quiet": "bool", "--format": "value", "--verbosity": "value",
          "--account": "value", "--impersonate-service-account": "value"}  # fmt: skip
LIST = {"--filter": "value", "--limit": "value", "--page-size": "value", "--sort-by": "value",
        "--flatten": "value", "--uri": "bool"}  # fmt: skip
IAM = {
    "--member": "value",
    "--role": "value",
    "--condition": "value",
    "--condition-from-file": "value",
}
RUN_DEPLOY = {
    "--image": "value", "--source": "value", "--region": "value", "--platform": "value",
    "--gpu": "value", "--gpu-type": "value", "--cpu": "value", "--memory": "value",
    "--cpu-throttling": "bool", "--no-cpu-throttling": "bool",
    "--gpu-zonal-redundancy": "bool", "--no-gpu-zonal-redundancy": "bool",
    "--max-instances": "value", "--min-instances": "value", "--concurrency": "value",
    "--port": "value", "--timeout": "value", "--ingress": "value",
    "--invoker-iam-check": "bool", "--no-invoker-iam-check": "bool",
    "--allow-unauthenticated": "bool", "--no-allow-unauthenticated": "bool",
    "--service-account": "value", "--set-secrets": "value", "--update-secrets": "value",
    "--set-env-vars": "value", "--update-env-vars": "value", "--add-cloudsql-instances": "value",
    "--set-cloudsql-instances": "value", "--network": "value", "--subnet": "value",
    "--vpc-egress": "value", "--vpc-connector": "value", "--labels": "value", "--command": "value",
    "--args": "value", "--execution-environment": "value", "--async": "bool",
}  # fmt: skip


@dataclass(frozen=True)
class Spec:
    api: str | None  # the API it needs enabled
    positionals: tuple[int, int]  # at least, at most
    flags: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()


SPECS: dict[tuple[str, ...], Spec] = {
    ("projects", "describe"): Spec(None, (1, 1)),
    ("projects", "get-iam-policy"): Spec(None, (1, 1), LIST),
    ("projects", "add-iam-policy-binding"): Spec(None, (1, 1), IAM, ("--member", "--role")),
    ("services", "list"): Spec(None, (0, 0), {"--enabled": "bool", "--available": "bool", **LIST}),
    ("services", "enable"): Spec(None, (1, 99), {"--async": "bool"}),
    ("artifacts", "repositories", "describe"): Spec("artifactregistry", (1, 1), {"--location": "value"}),
    ("artifacts", "repositories", "create"): Spec(
        "artifactregistry", (1, 1),
        {"--location": "value", "--repository-format": "value", "--description": "value",
         "--labels": "value", "--kms-key": "value", "--async": "bool"},
        ("--repository-format", "--location"),
    ),
    ("artifacts", "repositories", "delete"): Spec("artifactregistry", (1, 1), {"--location": "value", "--async": "bool"}),
    ("artifacts", "docker", "images", "describe"): Spec("artifactregistry", (1, 1), {"--show-all-metadata": "bool"}),
    ("builds", "submit"): Spec(
        "cloudbuild", (0, 1),
        {"--config": "value", "--tag": "value", "--region": "value", "--substitutions": "value",
         "--timeout": "value", "--machine-type": "value", "--async": "bool", "--no-source": "bool",
         "--ignore-file": "value", "--gcs-log-dir": "value"},
    ),
    ("auth", "configure-docker"): Spec(None, (0, 1)),
    ("sql", "instances", "describe"): Spec("sqladmin", (1, 1)),
    ("sql", "instances", "create"): Spec(
        "sqladmin", (1, 1),
        {"--database-version": "value", "--tier": "value", "--region": "value", "--cpu": "value",
         "--memory": "value", "--edition": "value", "--storage-auto-increase": "bool",
         "--storage-size": "value", "--availability-type": "value", "--root-password": "value",
         "--async": "bool"},
        ("--database-version",),
    ),
    ("sql", "instances", "delete"): Spec("sqladmin", (1, 1), {"--async": "bool"}),
    ("sql", "databases", "describe"): Spec("sqladmin", (1, 1), {"--instance": "value"}, ("--instance",)),
    ("sql", "databases", "create"): Spec(
        "sqladmin", (1, 1), {"--instance": "value", "--charset": "value", "--collation": "value",
                             "--async": "bool"}, ("--instance",)),
    ("sql", "users", "list"): Spec("sqladmin", (0, 0), {"--instance": "value", **LIST}, ("--instance",)),
    ("sql", "users", "create"): Spec(
        "sqladmin", (1, 1), {"--instance": "value", "--password": "value", "--host": "value",
                             "--type": "value", "--prompt-for-password": "bool"}, ("--instance",)),
    ("storage", "buckets", "describe"): Spec("storage", (1, 1)),
    ("storage", "buckets", "create"): Spec(
        "storage", (1, 1), {"--location": "value", "--uniform-bucket-level-access": "bool",
                            "--default-storage-class": "value", "--public-access-prevention": "bool"}),
    ("storage", "buckets", "get-iam-policy"): Spec("storage", (1, 1)),
    ("storage", "buckets", "add-iam-policy-binding"): Spec("storage", (1, 1), IAM, ("--member", "--role")),
    ("storage", "rm"): Spec("storage", (1, 99), {"--recursive": "bool", "--all-versions": "bool",
                                                  "--continue-on-error": "bool"}),
    ("secrets", "describe"): Spec("secretmanager", (1, 1)),
    ("secrets", "create"): Spec(
        "secretmanager", (1, 1), {"--replication-policy": "value", "--data-file": "value",
                                  "--locations": "value", "--labels": "value"}),
    ("secrets", "delete"): Spec("secretmanager", (1, 1)),
    ("secrets", "versions", "access"): Spec("secretmanager", (1, 1), {"--secret": "value"}, ("--secret",)),
    ("secrets", "get-iam-policy"): Spec("secretmanager", (1, 1)),
    ("secrets", "add-iam-policy-binding"): Spec("secretmanager", (1, 1), IAM, ("--member", "--role")),
    ("iam", "service-accounts", "describe"): Spec("iam", (1, 1)),
    ("iam", "service-accounts", "create"): Spec("iam", (1, 1), {"--display-name": "value",
                                                                "--description": "value"}),
    ("iam", "service-accounts", "delete"): Spec("iam", (1, 1)),
    ("iam", "service-accounts", "get-iam-policy"): Spec("iam", (1, 1)),
    ("iam", "service-accounts", "add-iam-policy-binding"): Spec("iam", (1, 1), IAM, ("--member", "--role")),
    ("compute", "routers", "describe"): Spec("compute", (1, 1), {"--region": "value"}, ("--region",)),
    ("compute", "routers", "create"): Spec("compute", (1, 1), {"--region": "value", "--network": "value",
                                                               "--asn": "value"}, ("--network", "--region")),
    ("compute", "routers", "delete"): Spec("compute", (1, 1), {"--region": "value"}, ("--region",)),
    ("compute", "routers", "nats", "create"): Spec(
        "compute", (1, 1),
        {"--router": "value", "--region": "value", "--auto-allocate-nat-external-ips": "bool",
         "--nat-all-subnet-ip-ranges": "bool", "--nat-external-ip-pool": "value"},
        ("--router", "--region"),
    ),
    ("run", "deploy"): Spec("run", (1, 1), RUN_DEPLOY, ("--region",)),
    ("run", "services", "describe"): Spec("run", (1, 1), {"--region": "value"}, ("--region",)),
    ("run", "services", "list"): Spec("run", (0, 0), {"--region": "value", **LIST}),
    ("run", "services", "delete"): Spec("run", (1, 1), {"--region": "value", "--async": "bool"}, ("--region",)),
}  # fmt: skip


class Refused(Exception):
    def __init__(self, command: str, message: str, code: int = 1) -> None:
        super().__init__(f"ERROR: (gcloud.{command}) {message}")
        self.code = code


def parse(argv: list[str]) -> tuple[tuple[str, ...], list[str], dict[str, Any]]:
    for length in (4, 3, 2):
        if tuple(argv[:length]) in SPECS:
            path = tuple(argv[:length])
            break
    else:
        raise Refused(".".join(argv[:2]), f"Invalid choice: {' '.join(argv[:3])!r}.", 2)
    spec, name = SPECS[path], ".".join(path)
    known = GLOBAL | spec.flags
    positionals: list[str] = []
    flags: dict[str, Any] = {}
    rest = argv[len(path) :]
    i = 0
    while i < len(rest):
        token = rest[i]
        if token.startswith("--"):
            flag, eq, value = token.partition("=")
            kind = known.get(flag)
            if kind is None:
                raise Refused(name, f"unrecognized arguments: {token}", 2)
            if kind == "bool":
                if eq:
                    raise Refused(name, f"argument {flag}: ignored explicit argument {value!r}", 2)
                flags[flag] = True
            else:
                if not eq:
                    i += 1
                    if i >= len(rest):
                        raise Refused(name, f"argument {flag}: expected one argument", 2)
                    value = rest[i]
                flags[flag] = value
        else:
            positionals.append(token)
        i += 1
    low, high = spec.positionals
    if not low <= len(positionals) <= high:
        raise Refused(name, f"takes {low}..{high} positional arguments, got {positionals}", 2)
    for flag in spec.required:
        if flag not in flags:
            raise Refused(name, f"argument {flag}: Must be specified.", 2)
    return path, positionals, flags


class Project:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        for key in ("apis", "resources", "secrets", "policies", "images"):
            self.state.setdefault(key, [] if key in ("apis", "images") else {})

    def save(self) -> None:
        self.path.write_text(json.dumps(self.state, indent=1))

    def has(self, kind: str, name: str) -> bool:
        return name in self.state["resources"].get(kind, {})

    def add(self, command: str, kind: str, name: str, data: Any = True) -> None:
        if self.has(kind, name):
            raise Refused(command, f"Resource in projects [{self.state.get('project')}] is the subject "
                                   f"of a conflict: {kind} {name} already exists", 1)  # fmt: skip
        self.state["resources"].setdefault(kind, {})[name] = data

    def need(self, command: str, kind: str, name: str) -> None:
        if not self.has(kind, name):
            raise Refused(command, f"NOT_FOUND: {kind} {name} does not exist")


def main(argv: list[str]) -> int:
    log = Path(os.environ["GCLOUD_STANDIN_LOG"])
    with log.open("a") as out:
        out.write(json.dumps({"argv": argv}) + "\n")
    project = Project(Path(os.environ["GCLOUD_STANDIN_STATE"]))
    try:
        path, args, flags = parse(argv)
        name = ".".join(path)
        if " ".join(path) == os.environ.get("GCLOUD_STANDIN_FAIL"):
            raise Refused(name, "PERMISSION_DENIED: the caller does not have permission (injected)")
        if path[0] not in {"projects", "auth"} and "--project" not in flags:
            raise Refused(name, "The required property [project] is not currently set.")
        api = SPECS[path].api
        if api and f"{api}.googleapis.com" not in project.state["apis"]:
            raise Refused(name, f"PERMISSION_DENIED: {api}.googleapis.com API has not been used in "
                                "project before or it is disabled. Enable it by visiting ...")  # fmt: skip
        result = act(project, path, args, flags, name)
        project.save()
        if result is not None:
            print(result)
        return 0
    except Refused as exc:
        print(str(exc), file=sys.stderr)
        return exc.code


def act(
    project: Project, path: tuple[str, ...], args: list[str], flags: dict[str, Any], name: str
) -> str | None:
    command = " ".join(path)
    target = args[0] if args else ""
    fmt = str(flags.get("--format", ""))
    if command == "projects describe":
        return "123456789" if "projectNumber" in fmt else target
    if command == "services list":
        return "\n".join(project.state["apis"])
    if command == "services enable":
        for api in args:
            if not re.fullmatch(r"[a-z]+\.googleapis\.com", api):
                raise Refused(name, f"invalid service name {api!r}")
            if api not in project.state["apis"]:
                project.state["apis"].append(api)
        return None
    if command.endswith("get-iam-policy"):
        bindings: dict[str, list[str]] = {}
        for role, member in project.state["policies"].get(f"{path[0]}:{target}", []):
            bindings.setdefault(role, []).append(member)
        return json.dumps({"bindings": [{"role": r, "members": m} for r, m in bindings.items()]})
    if command.endswith("add-iam-policy-binding"):
        if not flags["--role"].startswith("roles/"):
            raise Refused(name, f"invalid role {flags['--role']!r}")
        if not re.fullmatch(r"(serviceAccount|user|group):\S+", flags["--member"]):
            raise Refused(name, f"invalid member {flags['--member']!r}")
        if path[0] == "iam":
            project.need(name, "service-account", target)
        if path[0] == "secrets":
            project.need(name, "secret", target)
        if path[0] == "storage":
            project.need(name, "bucket", target)
        if flags["--member"].startswith("serviceAccount:"):
            project.need(name, "service-account", flags["--member"].split(":", 1)[1])
        entry = [flags["--role"], flags["--member"]]
        policy = project.state["policies"].setdefault(f"{path[0]}:{target}", [])
        if entry not in policy:
            policy.append(entry)
        return None
    kinds = {"artifacts repositories": "repository", "sql instances": "sql-instance",
             "storage buckets": "bucket", "secrets": "secret", "iam service-accounts": "service-account",
             "compute routers": "router", "run services": "service"}  # fmt: skip
    group = " ".join(path[:-1])
    if path[-1] == "describe" and group in kinds:
        project.need(name, kinds[group], target)
        if group == "run services":
            url = os.environ.get("GCLOUD_STANDIN_RUN_URL", f"https://{target}-123456789.run.app")
            return (
                url
                if "status.url" in fmt
                else project.state["resources"]["service"][target]["image"]
            )
        return target
    if path[-1] == "delete" and group in kinds:
        project.need(name, kinds[group], target)
        del project.state["resources"][kinds[group]][target]
        return None
    if command == "artifacts repositories create":
        if flags["--repository-format"] not in {
            "docker",
            "maven",
            "npm",
            "python",
            "apt",
            "yum",
            "go",
        }:
            raise Refused(name, f"invalid --repository-format {flags['--repository-format']!r}")
        project.add(name, "repository", target)
        return None
    if command == "artifacts docker images describe":
        if target not in project.state["images"]:
            raise Refused(name, f"NOT_FOUND: image {target} not found")
        return target
    if command == "builds submit":
        config = Path(flags.get("--config", "cloudbuild.yaml")).read_text()
        images = re.findall(r"^  - '([^']+)'$", config, re.MULTILINE)
        for image in images:
            repo = image.split("/")[2]
            project.need(name, "repository", repo)
            if image not in re.findall(r"'-t', '([^']+)'", config):
                raise Refused(name, f"image {image} is listed but no step builds it")
        project.state["images"].extend(images)
        return None
    if command == "auth configure-docker":
        return None
    if command == "sql instances create":
        if not re.fullmatch(r"POSTGRES_\d+", flags["--database-version"]):
            raise Refused(name, "--database-version: expected POSTGRES_<major>")
        if "--tier" not in flags and not {"--cpu", "--memory"} <= set(flags):
            raise Refused(name, "give --tier, or --cpu and --memory")
        project.add(name, "sql-instance", target)
        return None
    if command == "sql databases describe":
        project.need(name, "sql-database", f"{flags['--instance']}/{target}")
        return target
    if command == "sql databases create":
        project.need(name, "sql-instance", flags["--instance"])
        project.add(name, "sql-database", f"{flags['--instance']}/{target}")
        return None
    if command == "sql users list":
        users = project.state["resources"].get("sql-user", {})
        return "\n".join(
            u.split("/", 1)[1] for u in users if u.startswith(flags["--instance"] + "/")
        )
    if command == "sql users create":
        project.need(name, "sql-instance", flags["--instance"])
        project.add(name, "sql-user", f"{flags['--instance']}/{target}", flags.get("--password"))
        return None
    if command == "storage buckets create":
        if not target.startswith("gs://"):
            raise Refused(name, "a bucket URL is gs://NAME")
        project.add(name, "bucket", target)
        return None
    if command == "storage rm":
        project.need(name, "bucket", target)
        del project.state["resources"]["bucket"][target]
        return None
    if command == "secrets create":
        if flags.get("--data-file") != "-":
            raise Refused(name, "the test expects every secret value on stdin (--data-file=-)")
        if flags.get("--replication-policy") not in {"automatic", "user-managed"}:
            raise Refused(name, "--replication-policy: automatic or user-managed")
        project.add(name, "secret", target)
        project.state["secrets"][target] = sys.stdin.read()
        return None
    if command == "secrets versions access":
        project.need(name, "secret", flags["--secret"])
        sys.stdout.write(project.state["secrets"][flags["--secret"]])
        return None
    if command == "iam service-accounts create":
        if not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", target):
            raise Refused(name, f"account id {target!r}: 6-30 lower-case letters, digits, dashes")
        project.add(
            name, "service-account", f"{target}@{flags['--project']}.iam.gserviceaccount.com"
        )
        return None
    if command == "compute routers create":
        project.add(name, "router", target)
        return None
    if command == "compute routers nats create":
        project.need(name, "router", flags["--router"])
        return None
    if command == "run services list":
        return "\n".join(project.state["resources"].get("service", {}))
    if command == "run deploy":
        return deploy(project, target, flags, name)
    raise Refused(name, "not handled by the stand-in")


def deploy(project: Project, service: str, flags: dict[str, Any], name: str) -> None:
    if "--image" not in flags:
        raise Refused(name, "--image or --source is required (the test expects --image)")
    if flags["--image"] not in project.state["images"]:
        raise Refused(name, f"Image '{flags['--image']}' not found.")
    if "--service-account" in flags:
        project.need(name, "service-account", flags["--service-account"])
    for pair in filter(None, str(flags.get("--set-secrets", "")).split(",")):
        match = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=([\w-]+):(latest|\d+)", pair)
        if match is None:
            raise Refused(name, f"--set-secrets: {pair!r} is not ENV=SECRET:VERSION")
        project.need(name, "secret", match[2])
    for pair in filter(None, str(flags.get("--set-env-vars", "")).split(",")):
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", pair):
            raise Refused(name, f"--set-env-vars: {pair!r} is not KEY=VALUE")
    if "--add-cloudsql-instances" in flags:
        instance = str(flags["--add-cloudsql-instances"]).split(":")[-1]
        project.need(name, "sql-instance", instance)
    if flags.get("--ingress", "all") not in {
        "all",
        "internal",
        "internal-and-cloud-load-balancing",
    }:
        raise Refused(name, f"--ingress: invalid choice {flags['--ingress']!r}")
    if "--vpc-egress" in flags:
        if flags["--vpc-egress"] not in {"all-traffic", "private-ranges-only"}:
            raise Refused(name, f"--vpc-egress: invalid choice {flags['--vpc-egress']!r}")
        if "--network" not in flags and "--vpc-connector" not in flags:
            raise Refused(
                name, "--vpc-egress needs --network (Direct VPC egress) or --vpc-connector"
            )
    if "--gpu" in flags:
        # Cloud Run GPU: a type, CPU always allocated, at least 4 CPU and 16 GiB.
        if flags.get("--gpu-type") not in {"nvidia-l4", "nvidia-rtx-pro-6000"}:
            raise Refused(name, "--gpu needs --gpu-type (nvidia-l4)")
        if "--no-cpu-throttling" not in flags:
            raise Refused(name, "GPU services need --no-cpu-throttling")
        if float(flags.get("--cpu", 1)) < 4 or not re.fullmatch(
            r"(1[6-9]|[2-9]\d)Gi", str(flags.get("--memory"))
        ):
            raise Refused(name, "GPU services need at least --cpu=4 and --memory=16Gi")
    if "--no-invoker-iam-check" in flags and "--allow-unauthenticated" in flags:
        raise Refused(name, "--no-invoker-iam-check and --allow-unauthenticated: choose one")
    project.state["resources"].setdefault("service", {})[service] = {
        "image": flags["--image"],
        "flags": flags,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
