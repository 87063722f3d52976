"""Webhook test helpers: the saved real payloads, and each provider's signing done independently of core."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from core.webhooks import Provider

FIXTURES = Path(__file__).resolve().parent / "fixtures"  # copied from the shared set; see fixtures/SOURCES.md

EVENT_HEADER = {
    Provider.GITHUB: "X-GitHub-Event",
    Provider.GITLAB: "X-Gitlab-Event",
    Provider.GITEA: "X-Gitea-Event",
    Provider.BITBUCKET: "X-Event-Key",
}


def body_of(name: str) -> bytes:
    path = FIXTURES / name
    assert path.is_file(), f"missing fixture {path}"
    return path.read_bytes()


def json_of(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body_of(name))
    return data


def provider_of(name: str) -> Provider:
    return Provider(name.split("/")[0])


def hex_hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(provider: Provider, body: bytes, secret: str) -> dict[str, str]:
    """The proof each provider attaches to a delivery made with `secret`."""
    match provider:
        case Provider.GITHUB:
            return {"X-Hub-Signature-256": f"sha256={hex_hmac(secret, body)}"}
        case Provider.GITLAB:
            return {"X-Gitlab-Token": secret}
        case Provider.GITEA:
            return {"X-Gitea-Signature": hex_hmac(secret, body)}
        case Provider.BITBUCKET:
            return {"X-Hub-Signature": f"sha256={hex_hmac(secret, body)}"}
