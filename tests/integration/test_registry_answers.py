"""resolve_image against a registry that answers oddly: a loopback HTTP server of the test's own plays a
registry whose token flow is broken in each way seen in the wild. Each ends in a non-retryable error
naming the registry (the deploy is FAILED at resolve) or, for what may heal, a retryable one."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.registry import RegistryActivities, challenge_params
from core.settings import load_settings
from tests.support.process import free_port

pytestmark = pytest.mark.timeout(60)

DIGEST = "sha256:" + "ab" * 32
Answer = tuple[int, dict[str, str], bytes]


class OddRegistry:
    """Answers the manifest HEAD with a 401 and `challenge`, and the token request with `token_answer`;
    a manifest HEAD carrying a bearer token gets the digest."""

    def __init__(self, challenge: Callable[[str], str | None], token_answer: Answer) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.token_requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                if self.headers.get("Authorization", "").startswith("Bearer "):
                    self._answer(200, {"Docker-Content-Digest": DIGEST}, b"")
                    return
                header = challenge(f"http://{registry.host}/token")
                self._answer(401, {"WWW-Authenticate": header} if header is not None else {}, b"")

            def do_GET(self) -> None:
                registry.token_requests.append(self.path)
                self._answer(*token_answer)

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OddRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def bearer(realm_url: str) -> str:
    return f'Bearer realm="{realm_url}",service="odd",scope="repository:apps/web:pull,push"'


JSON = {"Content-Type": "application/json"}


@pytest.fixture
def odd_registry(request: pytest.FixtureRequest) -> Iterator[OddRegistry]:
    challenge, answer = request.param
    with OddRegistry(challenge, answer) as running:
        yield running


async def resolve(registry: OddRegistry) -> str:
    settings = load_settings(registry_host=registry.host, registry_scheme="http", registry_password=None)
    resolved = await ActivityEnvironment().run(
        RegistryActivities(settings).resolve_image, f"{registry.host}/apps/web:v1"
    )
    return resolved.digest


@pytest.mark.parametrize(
    "odd_registry",
    [(bearer, (200, JSON, json.dumps({"token": "t0k3n"}).encode()))],
    indirect=True,
    ids=["token"],
)
async def test_a_well_behaved_token_flow_resolves(odd_registry: OddRegistry) -> None:
    assert await resolve(odd_registry) == DIGEST
    (request,) = odd_registry.token_requests
    assert "scope=repository%3Aapps%2Fweb%3Apull%2Cpush" in request  # the quoted comma survived


@pytest.mark.parametrize(
    ("odd_registry", "expected"),
    [
        (
            (lambda realm: 'Bearer service="odd"', (200, JSON, b"{}")),
            "its auth challenge names no token realm URL",
        ),
        (
            (lambda realm: 'Bearer realm="/token"', (200, JSON, b"{}")),
            "its auth challenge names no token realm URL",
        ),
        ((bearer, (200, {}, b"<html>sign in</html>")), "answered with no JSON: '<html>sign in</html>'"),
        ((bearer, (200, JSON, b'{"expires_in": 300}')), "answered with no token"),
        ((bearer, (200, JSON, b'["t0k3n"]')), "answered with no token"),
        ((bearer, (404, JSON, b"{}")), "answered HTTP 404"),
    ],
    indirect=["odd_registry"],
    ids=["no-realm", "relative-realm", "not-json", "no-token", "json-list", "token-404"],
)
async def test_an_odd_answer_is_a_non_retryable_error_naming_the_registry(
    odd_registry: OddRegistry, expected: str
) -> None:
    with pytest.raises(ApplicationError) as failed:
        await resolve(odd_registry)

    assert failed.value.non_retryable
    assert failed.value.type == "RegistryProtocolError"
    assert failed.value.message.startswith(f"registry {odd_registry.host}: ")
    assert expected in failed.value.message, failed.value.message


@pytest.mark.parametrize("odd_registry", [(bearer, (403, JSON, b"{}"))], indirect=True, ids=["token-refused"])
async def test_a_refused_token_is_access_denied(odd_registry: OddRegistry) -> None:
    with pytest.raises(ApplicationError) as failed:
        await resolve(odd_registry)

    assert (failed.value.type, failed.value.non_retryable) == ("RegistryAccessDenied", True)
    assert odd_registry.host in failed.value.message


@pytest.mark.parametrize(
    "odd_registry", [(bearer, (503, JSON, b"{}"))], indirect=True, ids=["token-service-down"]
)
async def test_a_failing_token_service_is_retried(odd_registry: OddRegistry) -> None:
    with pytest.raises(RuntimeError, match="answered HTTP 503"):
        await resolve(odd_registry)


@pytest.mark.parametrize(
    ("challenge", "params"),
    [
        (
            'Bearer realm="https://auth.example/token",service="registry.example"',
            {"realm": "https://auth.example/token", "service": "registry.example"},
        ),
        (
            'Bearer realm="https://a/t",scope="repository:x/y:pull,push"',
            {"realm": "https://a/t", "scope": "repository:x/y:pull,push"},
        ),
        ("Bearer realm=https://a/t, service=reg", {"realm": "https://a/t", "service": "reg"}),
        ("Bearer", {}),
    ],
    ids=["quoted", "comma-in-scope", "unquoted", "empty"],
)
def test_challenge_params(challenge: str, params: dict[str, str]) -> None:
    assert challenge_params(challenge) == params
