"""Gateway API keys: the secret is shown once and only its SHA-256 is stored.

A plain, fast SHA-256 is the right hash here, unlike for passwords: the secret
is 240 bits from ``secrets``, so there is nothing to guess and no dictionary
for a slow hash (bcrypt, scrypt) to protect against; a fast hash also lets the
gateway check a key on every request. Keys are looked up *by* their hash with
an indexed equality, so no secret is ever compared byte by byte and
``hmac.compare_digest`` has nothing to protect.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, RowMapping, select

from llmfleet.errors import FleetError, StateError
from llmfleet.state.records import ApiKey
from llmfleet.state.tables import api_keys

SECRET_PREFIX = "lf-"  # noqa: S105 - a marker, not a password
SECRET_BYTES = 30  # 40 url-safe characters
DISPLAY_CHARS = len(SECRET_PREFIX) + 8


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def insert_key(
    conn: Connection,
    *,
    name: str,
    services: Sequence[str],
    rpm: int | None,
    tpm: int | None,
    now: datetime,
) -> tuple[ApiKey, str]:
    """Create a key; returns its record and the secret, which is not kept."""
    _check_key_request(name=name, services=services, rpm=rpm, tpm=tpm)
    clash = _active_by_name(conn, name)
    if clash is not None:
        raise StateError(
            f"an active API key named '{name}' already exists ({clash.prefix}...)",
            hint="revoke it first or pick another name",
        )
    secret = new_secret()
    values = {
        "name": name,
        "prefix": secret[:DISPLAY_CHARS],
        "secret_sha256": hash_secret(secret),
        "services": sorted(set(services)),
        "rpm": rpm,
        "tpm": tpm,
        "created_at": now,
        "revoked_at": None,
    }
    key_id = conn.execute(api_keys.insert().values(**values).returning(api_keys.c.id)).scalar_one()
    return find_key(conn, int(key_id)), secret


def _check_key_request(
    *, name: str, services: Sequence[str], rpm: int | None, tpm: int | None
) -> None:
    if not name.strip() or len(name) > 128:
        raise FleetError(f"an API key name must have 1 to 128 characters, got {name!r}")
    if any(not service for service in services):
        raise FleetError("an API key's services must be service names, got an empty one")
    for label, limit in (("rpm", rpm), ("tpm", tpm)):
        if limit is not None and limit < 1:
            raise FleetError(f"an API key's {label} must be at least 1, got {limit}")


def verify(conn: Connection, secret: str) -> ApiKey | None:
    """The active key whose secret is ``secret``, or None."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    query = select(api_keys).where(
        api_keys.c.secret_sha256 == hash_secret(secret), api_keys.c.revoked_at.is_(None)
    )
    row = conn.execute(query).mappings().first()
    return to_key(row) if row else None


def all_keys(conn: Connection) -> list[ApiKey]:
    rows = conn.execute(select(api_keys).order_by(api_keys.c.id)).mappings()
    return [to_key(row) for row in rows]


def revoke(conn: Connection, ref: int | str, *, now: datetime) -> ApiKey:
    """Revoke the key with id, prefix or active name ``ref``; revoking twice is a no-op."""
    key = find_key(conn, ref)
    if key.revoked_at is not None:
        return key
    conn.execute(api_keys.update().where(api_keys.c.id == key.id).values(revoked_at=now))
    return find_key(conn, key.id)


def find_key(conn: Connection, ref: int | str) -> ApiKey:
    text = str(ref)
    query = select(api_keys)
    if text.isdigit():
        query = query.where(api_keys.c.id == int(text))
    elif text.startswith(SECRET_PREFIX):
        query = query.where(api_keys.c.prefix.startswith(text[:DISPLAY_CHARS], autoescape=True))
    else:
        query = query.where(api_keys.c.name == text, api_keys.c.revoked_at.is_(None))
    found = [to_key(row) for row in conn.execute(query).mappings()]
    if not found:
        raise StateError(f"there is no API key '{text}'", hint="list keys to see ids and prefixes")
    if len(found) > 1:
        ids = ", ".join(str(key.id) for key in found)
        raise StateError(f"'{text}' matches several API keys ({ids})", hint="use the key id")
    return found[0]


def _active_by_name(conn: Connection, name: str) -> ApiKey | None:
    query = select(api_keys).where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
    row = conn.execute(query).mappings().first()
    return to_key(row) if row else None


def to_key(row: RowMapping) -> ApiKey:
    return ApiKey(
        id=int(row["id"]),
        name=row["name"],
        prefix=row["prefix"],
        services=tuple(row["services"]),
        rpm=row["rpm"],
        tpm=row["tpm"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
