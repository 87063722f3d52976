"""Passwords: hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended set), checked
in constant time, rehashed on the next login when the parameters change."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from domain.errors import Invalid

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 256

_hasher = PasswordHasher()
# Checked when the email is unknown, so that an unknown account takes as long to refuse as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def check_new_password(password: str, field: str = "password") -> None:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise Invalid(field, f"at least {PASSWORD_MIN_LENGTH} characters")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise Invalid(field, f"at most {PASSWORD_MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` is the one hashed; a missing hash takes as long to refuse."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def generated_password() -> str:
    """A password Dockyard chooses (the first admin's): to be changed at the first login."""
    return secrets.token_urlsafe(18)
