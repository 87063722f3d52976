"""Git provider webhooks, pure: check a delivery's signature, name it, and say what it asks for.

    verify_signature(provider, headers, body, secret)    # SignatureError → 401
    key = delivery_id(provider, headers)                  # de-duplicate on it (None: none was sent)
    for event in parse_events(provider, headers, body):   # PayloadError → 400
        ...  # Ping | Push | PullRequest | Ignored; decide_push(push, branch, patterns) for a Push

`headers` is any str → str mapping; names are matched case-insensitively. README.md has each provider's
rules.
"""

from __future__ import annotations

from typing import Protocol

from core.webhooks import bitbucket, gitea, github, gitlab
from core.webhooks.common import Headers, PayloadError, SignatureError
from core.webhooks.decide import DeployCommit, Skip, decide_push
from core.webhooks.events import (
    Commit,
    Ignored,
    Ping,
    Provider,
    PullRequest,
    PullRequestAction,
    Push,
    Repository,
    WebhookEvent,
)
from core.webhooks.watch import matches_watch_patterns

__all__ = [
    "Commit",
    "DeployCommit",
    "Headers",
    "Ignored",
    "PayloadError",
    "Ping",
    "Provider",
    "PullRequest",
    "PullRequestAction",
    "Push",
    "Repository",
    "SignatureError",
    "Skip",
    "WebhookEvent",
    "decide_push",
    "delivery_id",
    "matches_watch_patterns",
    "parse_events",
    "verify_signature",
]


class _Rules(Protocol):
    def verify(self, headers: Headers, body: bytes, secret: str) -> None: ...
    def delivery_id(self, headers: Headers) -> str | None: ...
    def parse(self, headers: Headers, body: bytes) -> tuple[WebhookEvent, ...]: ...


_RULES: dict[Provider, _Rules] = {
    Provider.GITHUB: github,
    Provider.GITLAB: gitlab,
    Provider.GITEA: gitea,
    Provider.BITBUCKET: bitbucket,
}


def verify_signature(provider: Provider, headers: Headers, body: bytes, secret: str) -> None:
    """Raise SignatureError unless `body` carries `provider`'s proof of `secret` (compared in constant time).

    An empty `secret` is a configuration error (ValueError): it would accept anyone's signature.
    """
    _RULES[provider].verify(headers, body, secret)


def delivery_id(provider: Provider, headers: Headers) -> str | None:
    """The provider's id of this delivery, the same when it retries; None when the headers carry none."""
    return _RULES[provider].delivery_id(headers)


def parse_events(provider: Provider, headers: Headers, body: bytes) -> tuple[WebhookEvent, ...]:
    """What the delivery asks for: one event, except a Bitbucket push of several refs (one Push per ref).

    Raises PayloadError (naming the header or key path) for a body the provider would not send.
    """
    return _RULES[provider].parse(headers, body)
