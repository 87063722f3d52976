"""What every provider module shares: errors, header lookup, HMAC checks, typed JSON reads, refs and paths."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping

from core.limits import control_character
from core.webhooks.events import Commit

Headers = Mapping[str, str]

ZERO_SHA = "0" * 40
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class SignatureError(Exception):
    """The delivery is not proven to come from the provider (answer 401); `reason` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PayloadError(Exception):
    """The body is not what the provider sends (answer 400); `reason` names the header or key path."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def header(headers: Headers, name: str) -> str | None:
    """The value of header `name`, matched case-insensitively (plain dicts keep whatever case was sent)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def first_header(headers: Headers, *names: str) -> str | None:
    for name in names:
        if value := header(headers, name):
            return value
    return None


def require_header(headers: Headers, name: str) -> str:
    value = header(headers, name)
    if not value:
        raise PayloadError(f"missing {name} header")
    return value


def check_secret(secret: str) -> None:
    if not secret:
        raise ValueError("an empty webhook secret verifies nothing: configure one")


def check_hmac_sha256(name: str, value: str | None, body: bytes, secret: str, prefix: str = "") -> None:
    """`value` must be `prefix` + the hex HMAC-SHA256 of `body` keyed with `secret` (constant-time)."""
    check_secret(secret)
    if value is None:
        raise SignatureError(f"missing {name} header")
    value = value.strip()
    if not value:
        raise SignatureError(f"{name} header is empty: set the same secret on the provider's webhook")
    digest = value.removeprefix(prefix)
    if not value.startswith(prefix) or not _HEX_SHA256.fullmatch(digest):
        raise SignatureError(f"malformed {name} header: expected {prefix}<64 hex digits>")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), digest.lower().encode()):
        raise SignatureError(f"signature does not match: {name} was not made with this secret over this body")


class Fields:
    """A JSON object read with its types checked; a failure names its key path (`pull_request.head.sha`)."""

    def __init__(self, data: Mapping[str, object], path: str = "") -> None:
        self._data = data
        self._path = path

    @classmethod
    def decode(cls, body: bytes) -> Fields:
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise PayloadError(
                f"body is not JSON ({exc}): configure the webhook's content type as application/json"
            ) from None
        if not isinstance(data, dict):
            raise PayloadError(f"body is a JSON {type(data).__name__}, not an object")
        return cls(data)

    @property
    def path(self) -> str:
        return self._path or "body"

    def where(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def has(self, key: str) -> bool:
        return self._data.get(key) is not None

    def _get(self, key: str) -> object:
        if key not in self._data:
            raise PayloadError(f"{self.where(key)}: missing")
        return self._data[key]

    def _wrong(self, key: str, expected: str, value: object) -> PayloadError:
        got = "null" if value is None else type(value).__name__
        return PayloadError(f"{self.where(key)}: expected {expected}, got {got}")

    def text(self, key: str, *, multiline: bool = False) -> str:
        """A string without control characters (a commit message may hold tabs and line breaks):
        what is read here reaches the database, git and the build."""
        value = self._get(key)
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        if problem := control_character(value, multiline=multiline):
            raise PayloadError(f"{self.where(key)}: {problem}")
        return value

    def opt_text(self, key: str) -> str | None:
        return self.text(key) if self.has(key) else None

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false", value)
        return value

    def number(self, key: str) -> int:
        value = self._get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._wrong(key, "an integer", value)
        return value

    def obj(self, key: str) -> Fields:
        value = self._get(key)
        if not isinstance(value, dict):
            raise self._wrong(key, "an object", value)
        return Fields(value, self.where(key))

    def opt_obj(self, key: str) -> Fields | None:
        return self.obj(key) if self.has(key) else None

    def objs(self, key: str) -> list[Fields]:
        found: list[Fields] = []
        for index, item in enumerate(self._list(key)):
            if not isinstance(item, dict):
                raise self._wrong(f"{key}[{index}]", "an object", item)
            found.append(Fields(item, f"{self.where(key)}[{index}]"))
        return found

    def opt_texts(self, key: str) -> list[str] | None:
        if key not in self._data:
            return None
        found: list[str] = []
        for index, item in enumerate(self._list(key)):
            if not isinstance(item, str):
                raise self._wrong(f"{key}[{index}]", "a string", item)
            found.append(item)
        return found

    def _list(self, key: str) -> list[object]:
        value = self._get(key)
        if not isinstance(value, list):
            raise self._wrong(key, "a list", value)
        return value


def ref_names(ref: str) -> tuple[str | None, str | None]:
    """(branch, tag) of a full ref name; both None for other refs (`refs/notes/...`)."""
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/"), None
    if ref.startswith("refs/tags/"):
        return None, ref.removeprefix("refs/tags/")
    return None, None


def is_zero(sha: str) -> bool:
    return not sha.strip("0")


def commit_of(fields: Fields) -> Commit:
    """A commit as GitHub, GitLab and Gitea describe it: `id`, `message`, `author.name`, `author.email`."""
    author = fields.obj("author")
    return Commit(
        sha=fields.text("id"),
        message=fields.text("message", multiline=True),
        author_name=author.text("name"),
        author_email=author.opt_text("email"),
    )


def changed_paths(commits: Iterable[Fields]) -> frozenset[str] | None:
    """The union of `added`, `modified` and `removed` over `commits`, or None when any commit lacks its lists.

    A commit whose lists are all empty also counts as unknown: GitHub leaves them empty for commits too large
    to diff in time, and an empty commit pushed on purpose is a request to redeploy, which None grants.
    """
    paths: set[str] = set()
    for commit in commits:
        lists = [commit.opt_texts(key) for key in ("added", "modified", "removed")]
        if any(files is None for files in lists) or not any(lists):
            return None
        for files in lists:
            paths.update(files or ())
    return frozenset(paths)
