"""A local stand-in for Google Cloud that speaks the real wire protocols the client libraries use.

- Cloud Run Admin API v2 over REST/JSON: services create/get/list/delete and long-running
  operations (`done`, `response` with `@type`), errors in Google's JSON error shape.
- An OAuth2 token endpoint for service-account JWT-bearer grants that answers with an ID token
  (`google.oauth2.id_token.fetch_id_token` with a service-account key file uses it).
- Cloud Run's front end: `/run/{service}/...` checks the ID token (`X-Serverless-Authorization`,
  or `Authorization` when that header is absent) for the service URL, strips it and forwards the
  request to the deployed worker, as Cloud Run forwards requests to a container.

Services are kept in memory; every Admin API request is recorded for the tests to inspect.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rsa_key_pem() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def google_error(code: int, message: str) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN")}}
    return JSONResponse(body, status_code=code)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class Fault:
    """Answer the next `times` requests matching method and path fragment with an error."""

    method: str
    path_contains: str
    status: int
    message: str
    times: int = 1


@dataclass
class FakeGoogleCloud:
    """State of the fake: services, operations, recorded requests, injected faults."""

    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    # How many operation polls answer done=false before done=true; None: never done.
    polls_until_done: int | None = 1
    deploy: Callable[[dict[str, Any]], str] | None = None  # service JSON -> worker base URL
    undeploy: Callable[[str], None] | None = None  # service name
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    upstreams: dict[str, str] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    issued_id_tokens: list[dict[str, Any]] = field(default_factory=list)
    proxied: list[dict[str, str]] = field(default_factory=list)
    page_size: int = 2

    def __post_init__(self) -> None:
        self.sa_private_pem, self.sa_public_pem = rsa_key_pem()
        self.google_private_pem, self.google_public_pem = rsa_key_pem()
        self._google_signer = crypt.RSASigner.from_string(self.google_private_pem, "google-1")
        self._op_ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def service_account_info(
        self, email: str = "orchestrator@test-project.iam.gserviceaccount.com"
    ) -> dict[str, str]:
        return {
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "sa-key-1",
            "private_key": self.sa_private_pem,
            "client_email": email,
            "client_id": "1234567890",
            "token_uri": f"{self.base_url}/token",
        }

    def admin_requests(self, method: str | None = None) -> list[Recorded]:
        return [
            r
            for r in self.requests
            if r.path.startswith("/v2/") and (method is None or r.method == method)
        ]

    # Server lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        config = uvicorn.Config(
            self.app(), host=self.host, port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake Google Cloud did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    # The app ---------------------------------------------------------------------------------

    def app(self) -> Starlette:
        prefix = "/v2/projects/{project}/locations/{location}"
        routes = [
            Route(prefix + "/services", self.create_service, methods=["POST"]),
            Route(prefix + "/services", self.list_services, methods=["GET"]),
            Route(prefix + "/services/{service}", self.get_service, methods=["GET"]),
            Route(prefix + "/services/{service}", self.delete_service, methods=["DELETE"]),
            Route(prefix + "/operations/{operation}", self.get_operation, methods=["GET"]),
            Route("/token", self.token, methods=["POST"]),
            Route(
                "/run/{service}/{path:path}",
                self.proxy,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            ),
        ]
        return Starlette(routes=routes, middleware=[])

    async def _record(self, request: Request) -> Response | None:
        raw = await request.body()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        self.requests.append(
            Recorded(
                request.method,
                request.url.path,
                dict(request.query_params),
                body,
                {k.lower(): v for k, v in request.headers.items()},
            )
        )
        for fault in self.faults:
            if (
                fault.times > 0
                and fault.method == request.method
                and fault.path_contains in request.url.path
            ):
                fault.times -= 1
                return google_error(fault.status, fault.message)
        return None

    def _operation(self, project: str, location: str, response: dict[str, Any]) -> dict[str, Any]:
        name = f"projects/{project}/locations/{location}/operations/op-{next(self._op_ids)}"
        op: dict[str, Any] = {"name": name, "done": False}
        self.operations[name] = {"op": op, "response": response, "polls": 0}
        if self.polls_until_done == 0:
            op["done"] = True
            op["response"] = response
        return op

    async def create_service(self, request: Request) -> Response:
        if (fault := await self._record(request)) is not None:
            return fault
        project, location = request.path_params["project"], request.path_params["location"]
        service_id = request.query_params.get("serviceId", "")
        parent = f"projects/{project}/locations/{location}"
        name = f"{parent}/services/{service_id}"
        if name in self.services:
            return google_error(409, f"Resource '{service_id}' already exists.")
        body = self.requests[-1].body or {}
        if body.get("name"):
            return google_error(400, "service.name must be empty; use serviceId")
        uri = f"{self.base_url}/run/{service_id}"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        service = {
            **body,
            "name": name,
            "uid": str(uuid.uuid4()),
            "generation": "1",
            "createTime": now,
            "updateTime": now,
            "uri": uri,
            "urls": [uri],
            "terminalCondition": {"type": "Ready", "state": "CONDITION_SUCCEEDED"},
            "latestReadyRevision": f"{name}/revisions/{service_id}-00001-abc",
        }
        if self.deploy is not None:
            self.upstreams[name] = await asyncio.to_thread(self.deploy, service)
        self.services[name] = service
        return JSONResponse(self._operation(project, location, {"@type": SERVICE_TYPE, **service}))

    async def get_service(self, request: Request) -> Response:
        if (fault := await self._record(request)) is not None:
            return fault
        name = self._service_name(request)
        if name not in self.services:
            return google_error(404, f"Resource '{request.path_params['service']}' not found.")
        return JSONResponse(self.services[name])

    async def list_services(self, request: Request) -> Response:
        if (fault := await self._record(request)) is not None:
            return fault
        parent = (
            f"projects/{request.path_params['project']}/locations/{request.path_params['location']}"
        )
        names = sorted(n for n in self.services if n.startswith(parent + "/"))
        start = int(request.query_params.get("pageToken") or 0)
        page = names[start : start + self.page_size]
        answer: dict[str, Any] = {"services": [self.services[n] for n in page]}
        if start + self.page_size < len(names):
            answer["nextPageToken"] = str(start + self.page_size)
        return JSONResponse(answer)

    async def delete_service(self, request: Request) -> Response:
        if (fault := await self._record(request)) is not None:
            return fault
        name = self._service_name(request)
        service = self.services.pop(name, None)
        if service is None:
            return google_error(404, f"Resource '{request.path_params['service']}' not found.")
        self.upstreams.pop(name, None)
        if self.undeploy is not None:
            await asyncio.to_thread(self.undeploy, name)
        return JSONResponse(
            self._operation(
                request.path_params["project"],
                request.path_params["location"],
                {"@type": SERVICE_TYPE, **service},
            )
        )

    async def get_operation(self, request: Request) -> Response:
        if (fault := await self._record(request)) is not None:
            return fault
        name = (
            f"projects/{request.path_params['project']}/locations/"
            f"{request.path_params['location']}/operations/{request.path_params['operation']}"
        )
        entry = self.operations.get(name)
        if entry is None:
            return google_error(404, f"Operation {name} not found.")
        entry["polls"] += 1
        op = entry["op"]
        if self.polls_until_done is not None and entry["polls"] >= self.polls_until_done:
            op["done"] = True
            op["response"] = entry["response"]
        return JSONResponse(op)

    def _service_name(self, request: Request) -> str:
        p = request.path_params
        return f"projects/{p['project']}/locations/{p['location']}/services/{p['service']}"

    # OAuth2 token endpoint: service-account JWT-bearer grant -> ID token --------------------

    async def token(self, request: Request) -> Response:
        form = await request.form()
        self.requests.append(Recorded("POST", "/token", {}, dict(form), dict(request.headers)))
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        try:
            claims = jwt.decode(str(form["assertion"]), certs=self.sa_public_pem, verify=True)
        except Exception as exc:
            return JSONResponse({"error": "invalid_grant", "error_description": str(exc)}, 400)
        audience = claims.get("target_audience")
        if not audience:
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        now = int(time.time())
        id_claims = {
            "iss": "https://accounts.google.com",
            "sub": claims["iss"],
            "email": claims["iss"],
            "aud": audience,
            "iat": now,
            "exp": now + 3600,
        }
        self.issued_id_tokens.append(id_claims)
        token = jwt.encode(self._google_signer, id_claims).decode()
        return JSONResponse({"id_token": token})

    # Cloud Run's front end ----------------------------------------------------------------

    async def proxy(self, request: Request) -> Response:
        service_id = request.path_params["service"]
        names = [n for n in self.services if n.endswith(f"/services/{service_id}")]
        if not names:
            return Response("404 page not found", status_code=404)
        service = self.services[names[0]]
        headers = {k.lower(): v for k, v in request.headers.items()}
        id_header = headers.get("x-serverless-authorization") or headers.get("authorization", "")
        scheme, _, token = id_header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return Response("Unauthorized: no ID token", status_code=401)
        try:
            claims = jwt.decode(
                token, certs=self.google_public_pem, audience=service["uri"], verify=True
            )
        except Exception:
            return Response("Forbidden: ID token not valid for this service", status_code=403)
        self.proxied.append({"path": request.url.path, "email": str(claims.get("email"))})
        upstream = self.upstreams.get(names[0])
        if upstream is None:
            return Response("Service Unavailable", status_code=503)
        forward = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in {"host", "x-serverless-authorization", "content-length"}
        }
        if "x-serverless-authorization" not in headers:
            forward.pop("authorization", None)  # the ID token itself does not reach the container
        async with httpx.AsyncClient(trust_env=False, timeout=60) as http:
            answer = await http.request(
                request.method,
                f"{upstream}/{request.path_params['path']}",
                params=dict(request.query_params),
                headers=forward,
                content=await request.body(),
            )
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=answer.headers.get("content-type"),
        )
