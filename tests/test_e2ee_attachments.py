"""Encrypted attachments (docs/e2ee.md "Attachments"): the cipher, padding and checks in
``crypto/attachments.py``, and the server's upload, capability URL, fetch-on-behalf, deletion,
limits and retention (``server/api/e2ee.py``), on SQLite and PostgreSQL.

Between two instances, with the client library and the commands: tests/test_e2ee_e2e.py.
"""

from __future__ import annotations

import hashlib
import os
import struct
from datetime import timedelta
from pathlib import Path
from typing import Any

import nacl.secret
import pytest
from conftest import make_config
from sqlalchemy import func, select, update
from test_e2ee_api import CRYPTO_SCOPES, E, Member, expect_error, new_token, ok

from crypto.attachments import (
    KEY_BYTES,
    OVERHEAD,
    AttachmentError,
    descriptors,
    open_described,
    open_sealed,
    padme,
    seal,
    sealed_size,
)
from server import e2ee
from server.config import Config
from server.db import make_sessionmaker
from server.models import E2EEAttachment
from server.web import now

CAP, QUOTA, PER_MINUTE = 4096, 10_000, 6


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Config:
    limits = {
        "max_attachment_bytes": CAP,
        "attachment_quota_bytes": QUOTA,
        "attachments_per_minute": PER_MINUTE,
        "attachment_ttl_days": 3,
    }
    return make_config(tmp_path, db_url, e2ee=limits, server={"workers": False})


@pytest.fixture
def member(client: Any, engine: Any, config: Config, make_user: Any) -> Any:
    """A member with one active device (tests/test_e2ee_api.py's ``Member``)."""

    async def make(username: str) -> Member:
        person = Member(client, engine, config, await make_user(username, scopes=CRYPTO_SCOPES))
        await person.first_device()
        return person

    return make


# ---------------------------------------------------------------------------- the cipher


def test_padme__the_papers_rule_and_its_bounds() -> None:
    """PURBs §4: only the top floor(log2(E))+1 bits of the length may be set; at most ~12 % more."""
    assert [padme(n) for n in (0, 1, 2, 9, 100, 1000, 1025, 10**6)] == [0, 1, 2, 10, 104, 1024, 1088, 1015808]
    for n in range(2, 70_000, 7):
        padded = padme(n)
        assert n <= padded <= n * 1.12 and padme(padded) == padded
        exponent = n.bit_length() - 1
        assert padded & ((1 << (exponent - exponent.bit_length())) - 1) == 0
    # Few distinct sizes: every length from 60,000 to 70,000 pads to one of 6 values.
    assert len({padme(n) for n in range(60_000, 70_000)}) == 6
    with pytest.raises(ValueError):
        padme(-1)


@pytest.mark.parametrize("size", [0, 1, 31, 1000, 100_000])
def test_seal__opens_to_the_same_bytes_and_hides_the_exact_size(size: int) -> None:
    data = os.urandom(size)
    sealed = seal(data)
    assert len(sealed.ciphertext) == sealed_size(size) and len(sealed.key) == KEY_BYTES
    assert sealed.digest == hashlib.sha256(sealed.ciphertext).digest() and sealed.size == size
    assert open_sealed(sealed.ciphertext, key=sealed.key, digest=sealed.digest, size=size) == data
    assert seal(data).key != sealed.key  # a fresh key for every file


def test_open__refuses_every_change_naming_what_is_wrong() -> None:
    data = b"a private drawing" * 20
    sealed = seal(data)
    good = {"key": sealed.key, "digest": sealed.digest, "size": sealed.size}
    flipped = bytearray(sealed.ciphertext)
    flipped[50] ^= 1
    with pytest.raises(AttachmentError, match="digest mismatch"):
        open_sealed(bytes(flipped), **good)
    with pytest.raises(AttachmentError, match="digest mismatch"):
        open_sealed(sealed.ciphertext[:-1], **good)
    # The stored bytes changed along with the digest (a sender-side lie): the MAC refuses.
    with pytest.raises(AttachmentError, match="does not decrypt"):
        open_sealed(bytes(flipped), key=sealed.key, digest=hashlib.sha256(flipped).digest(), size=sealed.size)
    with pytest.raises(AttachmentError, match="does not decrypt"):
        open_sealed(sealed.ciphertext, key=os.urandom(KEY_BYTES), digest=sealed.digest, size=sealed.size)
    with pytest.raises(AttachmentError, match="not the one the message gave"):
        open_sealed(sealed.ciphertext, key=sealed.key, digest=sealed.digest, size=sealed.size + 1)
    for bad_key, bad_digest in ((b"short", sealed.digest), (sealed.key, b"short")):
        with pytest.raises(AttachmentError, match="must be 32 bytes"):
            open_sealed(sealed.ciphertext, key=bad_key, digest=bad_digest, size=sealed.size)


def test_descriptors__only_well_formed_files_on_the_senders_own_server() -> None:
    """What a message names is followed only when well-formed and stored where the sender's
    device uploads (its own server's /e2ee/attachments/); names are made safe to write."""
    from crypto.encoding import b64encode

    sealed = seal(b"x")
    good = {
        "url": "https://a.example/e2ee/attachments/" + "t" * 43,
        "key": b64encode(sealed.key),
        "digest": b64encode(sealed.digest),
        "size": 1,
        "name": "../../etc/passwd",
        "media_type": "text/plain",
    }
    bad = [
        {**good, "url": "https://b.example/e2ee/attachments/abc"},  # another server
        {**good, "url": "https://a.example/users/alice"},  # not an upload
        {**good, "url": "https://a.example/e2ee/attachments/abc?x=1"},
        {**good, "url": "ftp://a.example/e2ee/attachments/abc"},
        {**good, "size": -1},
        {**good, "size": True},
        {**good, "name": 7},
        {k: v for k, v in good.items() if k != "key"},
        "not an object",
    ]
    message = {"from": "https://a.example/users/alice", "body": {"type": "Note", "attachments": [good, *bad]}}
    (kept,) = descriptors(message)
    assert kept["name"] == "passwd" and kept["url"] == good["url"]
    assert descriptors({"from": "https://a.example/users/alice", "body": {"attachments": [good] * 11}}) == [kept] * 10
    assert descriptors({"body": {"attachments": "nope"}}) == []
    assert open_described(sealed.ciphertext, kept) == b"x"
    with pytest.raises(AttachmentError, match="key"):
        open_described(sealed.ciphertext, {**kept, "key": "not base64!"})
    with pytest.raises(AttachmentError, match="not the one the message gave"):
        open_described(sealed.ciphertext, {k: v for k, v in kept.items() if k != "size"})


def _sealed_frame(frame: bytes) -> tuple[bytes, bytes, bytes]:
    key = os.urandom(KEY_BYTES)
    ciphertext = bytes(nacl.secret.SecretBox(key).encrypt(frame))
    return ciphertext, key, hashlib.sha256(ciphertext).digest()


def test_open__refuses_frames_our_seal_never_makes() -> None:
    """A sender's own device could frame a file wrongly: non-zero padding, a length past the
    end, padding that is not Padmé's, or no frame at all."""
    data = b"x" * 100
    frame = struct.pack(">Q", len(data)) + data
    padded = frame + bytes(padme(len(frame)) - len(frame))
    cases = {
        "padding is not all zeros": padded[:-1] + b"\x01",
        "not the one the message gave": struct.pack(">Q", 10_000) + padded[8:],
        "not the one the message gave ": frame + bytes(padme(len(frame)) - len(frame) + 8),  # too much padding
        "malformed frame": b"\x00" * 4,
    }
    for expected, plaintext in cases.items():
        ciphertext, key, digest = _sealed_frame(plaintext)
        with pytest.raises(AttachmentError, match=expected.strip()):
            open_sealed(ciphertext, key=key, digest=digest, size=len(data))
    ciphertext, key, digest = _sealed_frame(padded)
    assert open_sealed(ciphertext, key=key, digest=digest, size=len(data)) == data


# ---------------------------------------------------------------------------- the server


BINARY = {"Content-Type": "application/octet-stream"}


async def upload(client: Any, headers: dict[str, str], body: bytes) -> Any:
    return await client.post(f"{E}/attachments", data=body, headers={**headers, **BINARY})


async def stored_rows(engine: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(E2EEAttachment))).scalar_one())


async def test_upload__answers_a_url_that_serves_the_same_bytes_to_anyone_holding_it(
    client: Any, engine: Any, member: Any
) -> None:
    alice = await member("alice")
    sealed = seal(b"a photo of my cat")
    stored = await ok(await upload(client, alice.listed[0].headers, sealed.ciphertext), 201, "E2EEAttachmentStored")
    assert stored["size"] == len(sealed.ciphertext) and stored["url"].startswith(
        "http://127.0.0.1:8080/e2ee/attachments/"
    )
    path = stored["url"].removeprefix("http://127.0.0.1:8080")
    public = await client.get(path)
    assert public.status == 200 and public.headers["Content-Type"] == "application/octet-stream"
    assert public.headers["Cache-Control"] == "no-store" and await public.read() == sealed.ciphertext
    via = await client.get(f"{E}/attachments/fetch", params={"url": stored["url"]}, headers=alice.listed[0].headers)
    assert via.status == 200 and await via.read() == sealed.ciphertext
    # The database holds the token only as a digest: a dump hands out no working URL.
    token = path.rsplit("/", 1)[1]
    async with engine.connect() as conn:
        digest = (await conn.execute(select(E2EEAttachment.token_digest))).scalar_one()
    assert digest == hashlib.sha256(token.encode()).hexdigest() and token not in digest
    for wrong in (token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 43, "short"):
        assert (await client.get(f"/e2ee/attachments/{wrong}")).status == 404


async def test_upload__refusals_name_the_problem_and_store_nothing(
    client: Any, engine: Any, member: Any, make_user: Any
) -> None:
    alice = await member("alice")
    device = alice.listed[0].headers
    await expect_error(
        await client.post(f"{E}/attachments", data=b"x" * 100, headers={**device, "Content-Type": "image/png"}),
        415,
        "application/octet-stream",
    )
    await expect_error(await upload(client, device, os.urandom(CAP + 1)), 413, f"limit of {CAP} bytes")
    await expect_error(await upload(client, device, os.urandom(OVERHEAD - 1)), 422, f"at least {OVERHEAD}")
    # A token without a device, or without the crypto scope, uploads nothing.
    no_device = await new_token(engine, alice.user.user_id)
    await expect_error(await upload(client, no_device, os.urandom(100)), 403, "no E2EE device")
    plain = await make_user("plain", scopes="read write")
    assert (await upload(client, plain.headers, os.urandom(100))).status == 403
    assert (await client.post(f"{E}/attachments", data=os.urandom(100), headers=BINARY)).status == 401
    assert await stored_rows(engine) == 0


async def test_upload__quota_and_rate_limit(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice")
    device = alice.listed[0].headers
    for _ in range(2):
        await ok(await upload(client, device, os.urandom(CAP)), 201)
    await expect_error(await upload(client, device, os.urandom(CAP)), 422, f"limit of {QUOTA} bytes")
    assert await stored_rows(engine) == 2
    for _ in range(PER_MINUTE - 3):
        await ok(await upload(client, device, os.urandom(100)), 201)
    refused = await upload(client, device, os.urandom(100))
    await expect_error(refused, 429, "too many attachments")
    assert refused.headers["Retry-After"] == "60"


async def test_fetch__only_attachment_urls_and_only_for_devices(client: Any, engine: Any, member: Any) -> None:
    """The fetch on a member's behalf must not become a way to make this server fetch anything:
    only http(s)://host/e2ee/attachments/TOKEN, nothing more."""
    alice = await member("alice")
    device = alice.listed[0].headers
    bad = [
        "",
        "http://127.0.0.1:8080/users/alice",
        "http://127.0.0.1:8080/e2ee/attachments/",
        "http://127.0.0.1:8080/e2ee/attachments/abc?x=1",
        "http://127.0.0.1:8080/e2ee/attachments/abc#frag",
        "http://127.0.0.1:8080/e2ee/attachments/a/b",
        "http://user@127.0.0.1:8080/e2ee/attachments/abc",
        "ftp://127.0.0.1/e2ee/attachments/abc",
        "file:///etc/passwd",
        "http://127.0.0.1:8080/e2ee/attachments/" + "a" * 2100,
    ]
    for url in bad:
        await expect_error(
            await client.get(f"{E}/attachments/fetch", params={"url": url}, headers=device), 422, "attachment URL"
        )
    missing = await client.get(
        f"{E}/attachments/fetch", params={"url": "http://127.0.0.1:8080/e2ee/attachments/" + "a" * 43}, headers=device
    )
    await expect_error(missing, 404, "not found")
    no_device = await new_token(engine, alice.user.user_id)
    await expect_error(
        await client.get(f"{E}/attachments/fetch", params={"url": bad[2] + "abc"}, headers=no_device), 403
    )


async def test_delete__only_by_the_uploader_then_gone(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice")
    bob = await member("bob")
    stored = await ok(await upload(client, alice.listed[0].headers, os.urandom(200)), 201)
    path = stored["url"].removeprefix("http://127.0.0.1:8080")
    await expect_error(await client.delete(f"{E}/attachments/{stored['id']}", headers=bob.listed[0].headers), 404)
    assert (await client.get(path)).status == 200
    deleted = await ok(await client.delete(f"{E}/attachments/{stored['id']}", headers=alice.listed[0].headers))
    assert deleted == {"id": stored["id"], "deleted": True}
    assert (await client.get(path)).status == 404 and await stored_rows(engine) == 0


async def test_retention__expired_attachments_are_not_served_and_are_pruned(
    client: Any, engine: Any, config: Config, member: Any
) -> None:
    alice = await member("alice")
    stored = await ok(await upload(client, alice.listed[0].headers, os.urandom(200)), 201)
    kept = await ok(await upload(client, alice.listed[0].headers, os.urandom(200)), 201)
    assert stored["expires_at"] > now().isoformat()[:10]  # three days on
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        await session.execute(
            update(E2EEAttachment)
            .where(E2EEAttachment.id == int(stored["id"]))
            .values(expires_at=now() - timedelta(seconds=1))
        )
        await session.commit()
    assert (await client.get(stored["url"].removeprefix("http://127.0.0.1:8080"))).status == 404
    async with sessions() as session:
        assert await e2ee.prune(session, config, now()) >= 1
        await session.commit()
    assert await stored_rows(engine) == 1
    assert (await client.get(kept["url"].removeprefix("http://127.0.0.1:8080"))).status == 200
    # A member who deletes their account takes their attachments with them.
    async with sessions() as session:
        await e2ee.forget_member(session, alice.user.account_id, now())
        await session.commit()
    assert await stored_rows(engine) == 0
