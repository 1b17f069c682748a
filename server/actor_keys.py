"""Signing keys of local actors and of the instance actor.

Design note
-----------
Every local account has two active keys (research/federation.md §8.1 item 4, FEP-521a):
RSA-2048 ``{actor}#main-key`` (draft-cavage signatures, the single ``publicKey`` object) and
Ed25519 ``{actor}#ed25519-key`` (``assertionMethod`` Multikey, FEP-8b32 proofs). They are
``actor_keys`` rows with ``private_pem`` set, created the first time anything needs them
(:func:`local_keys`).

* Generation runs before any write of the session, RSA in a thread through
  :func:`server.db.run_blocking`, so the SQLite writer is never held while a key is made.
* Racing first uses end with one key per kind: key ids are fixed per actor and unique in the
  table, rows are inserted with ``ON CONFLICT (key_id) DO NOTHING`` (SQLite and PostgreSQL
  both have it), and every caller then reads back whichever row won. No transaction is ever
  aborted by the race, so callers' other work in the session is safe.
* Rotation (:func:`rotate_keys`) keeps the old rows for the record with ``revoked_at`` set and
  their ``key_id`` renamed to ``{key_id}-revoked-{row id}`` (the published ids stay the fixed
  fragments remote servers know, and the unique index stays meaningful); the new keys take the
  fixed ids. A revoked key id never resolves to a usable key again.

The instance actor's keys are files (``data_dir/keys/instance-rsa.pem`` and
``instance-ed25519.pem``, written by ``hearthside init`` with mode 0600) read once per process
(:func:`instance_keys`). When they are missing, as in a data directory made by hand or by
tests, they are created here the same way (atomically, never overwriting a file another
process wrote first) and a warning is logged, since a new instance key is a new identity.

Logs name account ids and key kinds, never key material.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.keys import KeyPairPem, generate_ed25519, generate_rsa
from crypto.signing import PrivateKey, PublicKey
from federation.documents import ActorKeys, ActorUrls, instance_actor_url
from server.config import Config
from server.db import insert_ignoring_conflict, run_blocking
from server.entities import account_uri
from server.ids import new_id
from server.models import Account, ActorKey
from server.web import now

log = logging.getLogger(__name__)

KINDS = ("rsa", "ed25519")
INSTANCE_KEY_FILES = {"rsa": "instance-rsa.pem", "ed25519": "instance-ed25519.pem"}


@dataclass(frozen=True, slots=True)
class LocalKeys:
    """An actor's active key pair ids and PEMs (private halves kept out of ``repr``)."""

    rsa_key_id: str
    rsa_public_pem: str
    rsa_private_pem: str = field(repr=False)
    ed25519_key_id: str
    ed25519_public_pem: str
    ed25519_private_pem: str = field(repr=False)
    ed25519_multibase: str

    def public(self) -> ActorKeys:
        """What the actor document publishes."""
        return ActorKeys(
            rsa_key_id=self.rsa_key_id,
            rsa_public_pem=self.rsa_public_pem,
            ed25519_key_id=self.ed25519_key_id,
            ed25519_multibase=self.ed25519_multibase,
        )


def _bundle(rsa_id: str, rsa: KeyPairPem, ed_id: str, ed: KeyPairPem) -> LocalKeys:
    return LocalKeys(
        rsa_key_id=rsa_id,
        rsa_public_pem=rsa.public_pem,
        rsa_private_pem=rsa.private_pem,
        ed25519_key_id=ed_id,
        ed25519_public_pem=ed.public_pem,
        ed25519_private_pem=ed.private_pem,
        ed25519_multibase=PublicKey.from_pem(ed.public_pem).to_multibase(),
    )


# ---------------------------------------------------------------------------- local accounts


def _key_ids(config: Config, account: Account) -> dict[str, str]:
    urls = ActorUrls.of(account_uri(config, account))
    return {"rsa": urls.main_key, "ed25519": urls.ed25519_key}


async def _active(session: Any, account_id: int, key_ids: dict[str, str]) -> dict[str, ActorKey]:
    rows = (
        await session.execute(
            select(ActorKey).where(
                ActorKey.account_id == account_id,
                ActorKey.key_id.in_(list(key_ids.values())),
                ActorKey.revoked_at.is_(None),
                ActorKey.private_pem.is_not(None),
            )
        )
    ).scalars()
    return {row.kind: row for row in rows if key_ids.get(row.kind) == row.key_id}


async def _generate(session: AsyncSession, kinds: set[str]) -> dict[str, KeyPairPem]:
    """New pairs for ``kinds``; RSA off the event loop (and off the SQLite writer)."""
    pairs: dict[str, KeyPairPem] = {}
    if "rsa" in kinds:
        pairs["rsa"] = await run_blocking(session, generate_rsa)
    if "ed25519" in kinds:
        pairs["ed25519"] = generate_ed25519()  # microseconds
    return pairs


async def _store(session: AsyncSession, account_id: int, key_ids: dict[str, str], pairs: dict[str, KeyPairPem]) -> None:
    moment = now()
    for kind, pair in pairs.items():
        await session.execute(
            insert_ignoring_conflict(session, ActorKey, "key_id").values(
                id=new_id(),
                account_id=account_id,
                key_id=key_ids[kind],
                kind=kind,
                public_pem=pair.public_pem,
                private_pem=pair.private_pem,
                created_at=moment,
                revoked_at=None,
            )
        )


def _from_rows(rows: dict[str, ActorKey]) -> LocalKeys:
    rsa, ed = rows["rsa"], rows["ed25519"]
    assert rsa.private_pem is not None and ed.private_pem is not None  # selected with IS NOT NULL
    return _bundle(
        rsa.key_id,
        KeyPairPem(private_pem=rsa.private_pem, public_pem=rsa.public_pem),
        ed.key_id,
        KeyPairPem(private_pem=ed.private_pem, public_pem=ed.public_pem),
    )


async def existing_keys(session: Any, config: Config, account: Account) -> LocalKeys | None:
    """The account's active keys if both exist, else None; reads only (any read session)."""
    rows = await _active(session, account.id, _key_ids(config, account))
    return _from_rows(rows) if set(rows) == set(KINDS) else None


async def local_keys(session: AsyncSession, config: Config, account: Account) -> LocalKeys:
    """The account's active RSA and Ed25519 keys, created on first use.

    When keys are created their rows join the session's transaction: the caller commits. Call
    this before the session writes anything else (RSA generation ends a read-only
    transaction to free the connection, as :func:`server.db.run_blocking` explains).
    """
    if not account.local:
        raise ValueError("local_keys: only local accounts have private keys here")
    key_ids = _key_ids(config, account)
    rows = await _active(session, account.id, key_ids)
    missing = set(KINDS) - set(rows)
    if missing:
        pairs = await _generate(session, missing)
        await _store(session, account.id, key_ids, pairs)
        rows = await _active(session, account.id, key_ids)
        log.info("actor keys created for account %s (%s)", account.id, ",".join(sorted(missing)))
    return _from_rows(rows)


async def rotate_keys(session: AsyncSession, config: Config, account: Account) -> LocalKeys:
    """Revoke the account's current keys and make new ones; the caller commits.

    Announcing the rotation (``Update`` of the actor) is the caller's job. Two rotations racing
    end with one new pair per kind: the loser's inserts do nothing and it returns the
    winner's keys.
    """
    if not account.local:
        raise ValueError("rotate_keys: only local accounts have private keys here")
    key_ids = _key_ids(config, account)
    pairs = await _generate(session, set(KINDS))  # before any write of this session
    current = (
        await session.execute(
            select(ActorKey.id, ActorKey.key_id).where(
                ActorKey.account_id == account.id,
                ActorKey.revoked_at.is_(None),
                ActorKey.private_pem.is_not(None),
            )
        )
    ).all()
    moment = now()
    for row_id, key_id in current:
        await session.execute(
            update(ActorKey)
            .where(ActorKey.id == row_id, ActorKey.revoked_at.is_(None))
            .values(revoked_at=moment, key_id=f"{key_id}-revoked-{row_id}")
            .execution_options(synchronize_session=False)
        )
    await _store(session, account.id, key_ids, pairs)
    rows = await _active(session, account.id, key_ids)
    log.info("actor keys rotated for account %s", account.id)
    return _from_rows(rows)


# ---------------------------------------------------------------------------- instance actor


_instance_cache: dict[tuple[str, str], LocalKeys] = {}
_instance_lock = threading.Lock()


def _read_or_create(path: Path, make: Any) -> str:
    """The PEM in ``path``; created (mode 0600, atomically, never overwriting) when absent."""
    try:
        return path.read_text(encoding="ascii")
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    pem: str = make().private_pem
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(pem)
        try:
            os.link(temporary, path)  # fails if another process created it meanwhile
            log.warning("instance key %s was missing: a new one was generated", path.name)
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text(encoding="ascii")


def instance_keys(config: Config) -> LocalKeys:
    """The instance actor's keys (``{base}/actor#main-key``, ``#ed25519-key``), cached."""
    cache_key = (str(config.data_dir), config.base_url)
    with _instance_lock:
        cached = _instance_cache.get(cache_key)
        if cached is not None:
            return cached
        folder = config.data_dir / "keys"
        pems = {
            "rsa": _read_or_create(folder / INSTANCE_KEY_FILES["rsa"], generate_rsa),
            "ed25519": _read_or_create(folder / INSTANCE_KEY_FILES["ed25519"], generate_ed25519),
        }
        pairs: dict[str, KeyPairPem] = {}
        for kind, pem in pems.items():
            private = PrivateKey.from_pem(pem)
            if private.kind != kind:
                raise ValueError(f"keys/{INSTANCE_KEY_FILES[kind]} holds a {private.kind} key, expected {kind}")
            pairs[kind] = KeyPairPem(private_pem=pem, public_pem=private.public_key().to_pem())
        urls = ActorUrls.of(instance_actor_url(config.base_url))
        keys = _bundle(urls.main_key, pairs["rsa"], urls.ed25519_key, pairs["ed25519"])
        _instance_cache[cache_key] = keys
        return keys
