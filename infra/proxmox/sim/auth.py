"""PVE authentication: API tokens, and tickets with CSRF prevention tokens.

    Authorization: PVEAPIToken=root@pam!dockyard=SECRET      (no CSRF token needed)
    POST /access/ticket username=root@pam password=...     -> {ticket, CSRFPreventionToken, username}
    Cookie: PVEAuthCookie=<ticket>                         (+ header CSRFPreventionToken on non-GET)

Tickets look like PVE's (`PVE:root@pam:6789ABCD::<signature>`), are signed with a key of this process
and last two hours. Users and tokens come from the cluster file; a token may carry a list of privileges
(`"privileges": ["VM.Audit"]`) to exercise 403s, else it holds them all, as root's tokens without
privilege separation do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from infra.proxmox.sim.base import PveError

TICKET_LIFETIME_SECONDS = 7200


@dataclass(frozen=True)
class Principal:
    user: str  # root@pam, or root@pam!dockyard for a token
    via_ticket: bool
    privileges: frozenset[str] | None  # None: all


class Authenticator:
    def __init__(self, users: dict[str, str], tokens: dict[str, dict[str, Any]]) -> None:
        self.users = users  # userid -> password
        self.tokens = tokens  # userid!tokenid -> {"secret": ..., "privileges": [...]?}
        self._key = secrets.token_bytes(32)

    # --- tickets ------------------------------------------------------------------------------------------

    def login(self, username: str, password: str, realm: str | None = None) -> dict[str, str]:
        if realm and "@" not in username:
            username = f"{username}@{realm}"
        expected = self.users.get(username)
        if expected is None or not hmac.compare_digest(expected, password):
            if not self._valid_ticket(password, username):
                raise PveError(401, "authentication failure")
        return {
            "username": username,
            "ticket": self._ticket(username),
            "CSRFPreventionToken": self._csrf(username, int(time.time())),
            "clustername": "dockyard-sim",
        }

    def _ticket(self, user: str) -> str:
        plain = f"PVE:{user}:{int(time.time()):08X}"
        return f"{plain}::{self._sign(plain)}"

    def _valid_ticket(self, ticket: str, user: str | None = None) -> str | None:
        plain, sep, signature = ticket.partition("::")
        parts = plain.split(":")
        if (
            not sep
            or len(parts) != 3
            or parts[0] != "PVE"
            or not hmac.compare_digest(signature, self._sign(plain))
        ):
            return None
        if time.time() - int(parts[2], 16) > TICKET_LIFETIME_SECONDS or (user and parts[1] != user):
            return None
        return parts[1]

    def _csrf(self, user: str, stamp: int) -> str:
        return f"{stamp:08X}:{self._sign(f'{stamp:08X}:{user}')}"

    def _sign(self, text: str) -> str:
        digest = hmac.new(self._key, text.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode().rstrip("=")

    # --- requests -----------------------------------------------------------------------------------------

    def authenticate(self, method: str, headers: dict[str, str]) -> Principal:
        """The caller, or a 401 the way pveproxy answers it."""
        authorization = headers.get("authorization", "")
        if authorization.startswith("PVEAPIToken="):
            return self._token(authorization.removeprefix("PVEAPIToken="))
        ticket = _cookie(headers.get("cookie", ""), "PVEAuthCookie")
        if ticket is None:
            raise PveError(401, "No ticket")
        user = self._valid_ticket(unquote(ticket))
        if user is None:
            raise PveError(401, "Authentication failed!")
        if method != "GET":
            token = headers.get("csrfpreventiontoken", "")
            stamp, _, _ = token.partition(":")
            try:
                fresh = abs(time.time() - int(stamp, 16)) < TICKET_LIFETIME_SECONDS
            except ValueError:
                fresh = False
            if not fresh or not hmac.compare_digest(token, self._csrf(user, int(stamp, 16))):
                raise PveError(401, "Permission denied - invalid csrf token")
        return Principal(user, True, None)

    def _token(self, value: str) -> Principal:
        token_id, sep, secret = value.partition("=")
        if not sep:
            token_id, _, secret = value.partition(":")
        entry = self.tokens.get(token_id)
        if entry is None or not hmac.compare_digest(str(entry["secret"]), secret):
            raise PveError(401, "Authentication failed!")
        privileges = entry.get("privileges")
        return Principal(token_id, False, frozenset(privileges) if privileges is not None else None)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def check_permissions(principal: Principal, permissions: dict[str, Any], params: dict[str, Any]) -> None:
    """PVE's permission check, with the token's privileges on every path: 403 naming what is missing."""
    if principal.privileges is None or "check" not in permissions:
        return
    missing = _missing(permissions["check"], principal.privileges, params)
    if missing is not None:
        raise PveError(403, f"Permission check failed ({missing[0]}, {missing[1]})")


def _missing(check: list[Any], held: frozenset[str], params: dict[str, Any]) -> tuple[str, str] | None:
    kind = check[0]
    if kind in ("and", "or"):
        results = [_missing(sub, held, params) for sub in check[1:]]
        failures = [result for result in results if result is not None]
        if kind == "and":
            return failures[0] if failures else None
        return failures[0] if len(failures) == len(results) else None
    if kind == "perm":
        path = check[1]
        for name, value in params.items():
            path = path.replace(f"{{{name}}}", str(value))
        if "require_param" in check and check[check.index("require_param") + 1] not in params:
            return (path, ",".join(check[2]))
        wanted = list(check[2])
        any_of = "any" in check
        have = [privilege in held for privilege in wanted]
        if (any(have) if any_of else all(have)) or not wanted:
            return None
        return (path, next(p for p, ok in zip(wanted, have, strict=True) if not ok))
    return None
