"""Logins and their sessions, kept server-side in Redis; failed logins rate-limited per account and per
address (Redis counters).

    dockyard:session:<sha256 of the secret>   HASH id, user_id, csrf, created_at, last_seen_at, address;
                                              expires after session_idle_seconds without use, and is
                                              refused (and deleted) session_max_seconds after the login
    dockyard:user-sessions:<user id>          SET of that person's session keys, to list and revoke them
    dockyard:login-failures:user:<email>      failed logins in the current window (INCR, expiring)
    dockyard:login-failures:address:<address>

The session secret travels only in an HttpOnly cookie; `csrf` is the token a cookie-authenticated write
must repeat in its X-CSRF-Token header (the page reads it from the login answer or the csrf cookie).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import User, new_id, utcnow
from core.settings import Settings
from domain.actors import secret_hash
from domain.audit import audit
from domain.errors import NotFound, RateLimited, Unauthenticated
from domain.passwords import hash_password, needs_rehash, verify_password

SESSION_PREFIX = "dys_"
_SESSION = "dockyard:session:"
_USER_SESSIONS = "dockyard:user-sessions:"
_FAILURES = "dockyard:login-failures:"


@dataclass(frozen=True)
class SessionInfo:
    id: str  # public: names the session in lists and revocations (the secret never leaves the cookie)
    user_id: str
    csrf: str
    created_at: float
    last_seen_at: float
    address: str


@dataclass(frozen=True)
class Login:
    user: User
    secret: str
    session: SessionInfo


async def login(
    session: AsyncSession, redis: Redis, settings: Settings, *, email: str, password: str, address: str
) -> Login:
    """Check the password and open a session. Refused alike for an unknown email and a wrong password;
    after too many failures for the account or from the address, refused with RateLimited."""
    email = email.strip().lower()
    user_key, address_key = f"{_FAILURES}user:{email}", f"{_FAILURES}address:{address}"
    await _refuse_if_limited(redis, user_key, settings.login_failures_per_user, "this account")
    await _refuse_if_limited(redis, address_key, settings.login_failures_per_address, "your address")
    user = await session.scalar(select(User).where(User.email == email))
    if user is None or not verify_password(user.password_hash, password) or user.disabled_at is not None:
        window = int(settings.login_failure_window_seconds)
        async with redis.pipeline(transaction=True) as pipe:
            for key in (user_key, address_key):
                pipe.incr(key)
                pipe.expire(key, window, nx=True)
            await pipe.execute()
        audit(session, f"login:{address}", "user.login_failed", email)
        await session.commit()
        raise Unauthenticated("wrong email or password")
    await redis.delete(user_key)
    if user.password_hash is not None and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    secret, info = await open_session(redis, settings, user.id, address)
    audit(session, f"user:{user.id}", "user.login", user.id, session_id=info.id, address=address)
    await session.commit()
    return Login(user=user, secret=secret, session=info)


async def _refuse_if_limited(redis: Redis, key: str, limit: int, what: str) -> None:
    failures = await redis.get(key)
    if failures is not None and int(failures) >= limit:
        retry_after = max(1, int(await redis.ttl(key)))
        raise RateLimited(
            f"too many failed logins for {what}: try again in {retry_after} s", retry_after=retry_after
        )


async def open_session(
    redis: Redis, settings: Settings, user_id: str, address: str
) -> tuple[str, SessionInfo]:
    secret = SESSION_PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    info = SessionInfo(
        id=new_id("ses"),
        user_id=user_id,
        csrf=secrets.token_urlsafe(24),
        created_at=now,
        last_seen_at=now,
        address=address,
    )
    key = _SESSION + secret_hash(secret)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=_fields(info))  # type: ignore[arg-type]
        pipe.expire(key, int(settings.session_idle_seconds))
        pipe.sadd(_USER_SESSIONS + user_id, key)
        pipe.expire(_USER_SESSIONS + user_id, int(settings.session_max_seconds))
        await pipe.execute()
    return secret, info


def _fields(info: SessionInfo) -> dict[str, str]:
    return {
        "id": info.id,
        "user_id": info.user_id,
        "csrf": info.csrf,
        "created_at": repr(info.created_at),
        "last_seen_at": repr(info.last_seen_at),
        "address": info.address,
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _info(fields: dict[bytes | str, bytes | str]) -> SessionInfo:
    text = {_text(key): _text(value) for key, value in fields.items()}
    return SessionInfo(
        id=text["id"],
        user_id=text["user_id"],
        csrf=text["csrf"],
        created_at=float(text["created_at"]),
        last_seen_at=float(text["last_seen_at"]),
        address=text.get("address", ""),
    )


async def session_of(redis: Redis, settings: Settings, secret: str) -> SessionInfo:
    """The session the cookie names, its idle expiry pushed back; Unauthenticated when it has ended."""
    key = _SESSION + secret_hash(secret)
    fields = await redis.hgetall(key)
    if not fields:
        raise Unauthenticated("your session has ended: log in again")
    info = _info(fields)
    now = time.time()
    left = settings.session_max_seconds - (now - info.created_at)
    if left <= 0:
        await _forget(redis, key, info.user_id)
        raise Unauthenticated("your session has ended: log in again")
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, "last_seen_at", repr(now))
        pipe.expire(key, max(1, int(min(settings.session_idle_seconds, left))))
        await pipe.execute()
    return info


async def _forget(redis: Redis, key: bytes | str, user_id: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.srem(_USER_SESSIONS + user_id, key)
        await pipe.execute()


async def end_session(redis: Redis, secret: str) -> None:
    """Log out: the session named by the cookie ends now."""
    key = _SESSION + secret_hash(secret)
    user_id = await redis.hget(key, "user_id")
    if user_id is not None:
        await _forget(redis, key, _text(user_id))


async def sessions_of(redis: Redis, user_id: str) -> list[SessionInfo]:
    """The person's open sessions, newest first (ended ones are dropped from the index on the way)."""
    found = []
    for key in await redis.smembers(_USER_SESSIONS + user_id):
        fields = await redis.hgetall(key)
        if fields:
            found.append(_info(fields))
        else:
            await redis.srem(_USER_SESSIONS + user_id, key)
    return sorted(found, key=lambda info: info.created_at, reverse=True)


async def revoke_session(redis: Redis, user_id: str, session_id: str) -> None:
    for key in await redis.smembers(_USER_SESSIONS + user_id):
        found = await redis.hget(key, "id")
        if found is not None and _text(found) == session_id:
            await _forget(redis, key, user_id)
            return
    raise NotFound("session", session_id)


async def revoke_all_sessions(redis: Redis, user_id: str) -> int:
    keys = list(await redis.smembers(_USER_SESSIONS + user_id))
    if keys:
        await redis.delete(*keys, _USER_SESSIONS + user_id)
    return len(keys)
