"""OAuth 2 service logic: client registration, authorization codes, tokens, password logins.

Design note
-----------
The HTTP handlers (``server.api.oauth``) parse requests and render answers; everything that
decides lives here, over a session the caller commits.

* **Apps** (RFC 6749 §2): ``client_id`` is public, ``client_secret`` is shown once and stored
  as a SHA-256 digest. Redirect URIs are checked at registration (absolute, no fragment, no
  script-capable scheme) and must match exactly afterwards.
* **Scopes**: every requested scope must be one Hearthside knows and must be covered by the
  app's registered scopes (``read`` covers ``read:statuses``, as in Mastodon); otherwise
  ``invalid_scope``. A token never carries more than its app was registered for.
* **Authorization codes** are single-use, live ten minutes and are stored as digests. PKCE
  (RFC 7636) supports only ``S256``, as Mastodon does. A verifier sent for a code issued
  without a challenge is refused (downgrade protection). Marking a code used is one guarded
  ``UPDATE``, so two concurrent exchanges cannot both win; replaying a used code revokes the
  tokens issued from it (RFC 6749 §4.1.2).
* **Logins** (the password grant and the authorization form) give one opaque answer for an
  unknown login and a wrong password, and spend an Argon2 verification in both cases so
  timing does not tell them apart either. Failed attempts are throttled per minute in three
  buckets (``LoginThrottle``): per login name and client address, per login name, and per
  client address, counted in the database (``server.ratelimit``), so the limits hold in total
  across every web process. Counting per name alone let anyone lock a member out by sending
  wrong passwords for their name; now that takes ``login_attempts_per_minute_per_name``
  attempts a minute from many addresses, and even then keeps them out only of addresses they
  have not logged in from within ``known_login_address_days``. Call ``verify_login`` before the session writes: the
  attempt is committed at once, so it counts even when the login then fails and the request
  rolls back. Addresses and login names are never logged.
* Errors are ``OAuthError`` (RFC 6749 §5.2 codes; 401 for ``invalid_client``, 400 for the
  rest), rendered by the error middleware as ``{"error", "error_description"}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote_plus, urlsplit

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.errors import VerificationError
from crypto.passwords import PasswordHasher
from crypto.tokens import digest, new_token, same_digest
from server.auth import SCOPES_SUPPORTED, forget_tokens, parse_scopes, scope_allows
from server.clientaddr import IPAddress, address_key
from server.config import Config
from server.db import conflict_insert, run_blocking
from server.errors import ApiError, TooManyRequests, Unprocessable
from server.ids import new_id
from server.keyring import purpose_key
from server.models import Account, KnownLoginAddress, OAuthApp, OAuthCode, OAuthToken, User
from server.ratelimit import Hit, RateLimit

log = logging.getLogger(__name__)

OOB = "urn:ietf:wg:oauth:2.0:oob"
CODE_LIFETIME = timedelta(minutes=10)
DEFAULT_SCOPES = "read"
MAX_REDIRECT_URIS = 10
MAX_REDIRECT_URI_CHARS = 2000
MAX_APP_NAME_CHARS = 60
_SUPPORTED = frozenset(SCOPES_SUPPORTED)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "about", "blob"})
_PKCE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_GRANT_REFUSED = "The provided authorization grant is invalid, expired, revoked, or was issued to another client."
_LOGIN_REFUSED = "Invalid username or password."


class OAuthError(ApiError):
    """An RFC 6749 §5.2 error: ``code`` is the ``error`` member, the message its description."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description, status=401 if code == "invalid_client" else 400, oauth_error=code)
        self.code = code


class LoginRefused(OAuthError):
    """The password was right but the account may not log in (suspended, pending, ...)."""

    def __init__(self, description: str) -> None:
        super().__init__("invalid_grant", description)


# ---------------------------------------------------------------------------- validation


def parse_redirect_uris(values: list[str]) -> list[str]:
    """Split and check redirect URIs (newline/space separated strings or a list).

    Raises ``Unprocessable`` naming ``redirect_uris`` for anything that is not the
    out-of-band URN or an absolute URI without a fragment.
    """
    uris: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise Unprocessable("redirect_uris: must be a string or a list of strings")
        for uri in value.split():
            if uri not in uris:
                uris.append(uri)
    if not uris:
        raise Unprocessable("redirect_uris: can't be blank")
    if len(uris) > MAX_REDIRECT_URIS:
        raise Unprocessable(f"redirect_uris: at most {MAX_REDIRECT_URIS} are allowed")
    for uri in uris:
        check_redirect_uri(uri)
    return uris


def check_redirect_uri(uri: str) -> None:
    if uri == OOB:
        return
    problem = f"redirect_uris: {uri[:100]!r} must be an absolute URI"
    if len(uri) > MAX_REDIRECT_URI_CHARS:
        raise Unprocessable(f"redirect_uris: longer than {MAX_REDIRECT_URI_CHARS} characters")
    if not uri.isprintable() or any(c.isspace() for c in uri):
        raise Unprocessable(problem)
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 (raises ValueError on a malformed port)
    except ValueError:
        raise Unprocessable(problem) from None
    scheme = parts.scheme.lower()
    if not _SCHEME.match(scheme) or scheme in _FORBIDDEN_SCHEMES:
        raise Unprocessable(problem)
    if scheme in ("http", "https") and not parts.hostname:
        raise Unprocessable(problem)
    if not parts.netloc and not parts.path:
        raise Unprocessable(problem)
    if parts.fragment or uri.endswith("#"):
        raise Unprocessable(f"redirect_uris: {uri[:100]!r} must not contain a fragment")


def check_website(website: str) -> None:
    parts = urlsplit(website)
    if parts.scheme not in ("http", "https") or not parts.netloc or not website.isprintable():
        raise Unprocessable("website: must be an absolute http(s) URL")


def parse_registered_scopes(text: str | None) -> list[str]:
    """Scopes asked for at app registration, in order, each one Hearthside supports (else 422)."""
    scopes = _ordered_scopes(text or DEFAULT_SCOPES)
    for scope in scopes:
        if scope not in _SUPPORTED:
            raise Unprocessable(f"scopes: unknown scope {scope[:64]!r}")
    return scopes or [DEFAULT_SCOPES]


def _ordered_scopes(text: str) -> list[str]:
    out: list[str] = []
    for scope in text.replace("+", " ").split():
        if scope not in out:
            out.append(scope)
    return out


def requested_scopes(text: str | None, allowed: str, *, default: str = DEFAULT_SCOPES) -> str:
    """The scopes a grant asks for, as a space-separated string, if ``allowed`` covers them.

    Raises ``OAuthError("invalid_scope")`` for an unknown scope or one the app was not
    registered for.
    """
    scopes = _ordered_scopes(text or "") or _ordered_scopes(default)
    granted = parse_scopes(allowed)
    for scope in scopes:
        if scope not in _SUPPORTED:
            raise OAuthError("invalid_scope", f"The requested scope {scope[:64]!r} is unknown.")
        if not scope_allows(granted, scope):
            raise OAuthError("invalid_scope", f"The requested scope {scope[:64]!r} was not registered for this app.")
    return " ".join(scopes)


def check_code_challenge(challenge: str | None, method: str | None) -> tuple[str | None, str | None]:
    """Validate PKCE parameters of an authorization request; S256 only, as in Mastodon."""
    if not challenge:
        if method:
            raise OAuthError("invalid_request", "code_challenge_method was given without a code_challenge.")
        return None, None
    if method != "S256":
        raise OAuthError("invalid_request", "Only the S256 code_challenge_method is supported.")
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge):
        raise OAuthError("invalid_request", "code_challenge must be a base64url SHA-256 digest (43 characters).")
    return challenge, method


def s256(verifier: str) -> str:
    """The RFC 7636 S256 challenge for ``verifier``."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def check_code_verifier(verifier: str | None, challenge: str | None) -> None:
    """Raise ``invalid_grant`` unless the verifier matches the code's challenge (or both are absent)."""
    if challenge is None:
        if verifier:
            raise OAuthError("invalid_grant", "A code_verifier was sent for a code issued without a challenge.")
        return
    if not verifier or not _PKCE.match(verifier):
        raise OAuthError("invalid_grant", "The code_verifier is missing or malformed.")
    if not hmac.compare_digest(s256(verifier), challenge):
        raise OAuthError("invalid_grant", "The code_verifier does not match the code_challenge.")


def basic_credentials(header: str) -> tuple[str, str] | None:
    """Client credentials from an HTTP Basic ``Authorization`` header (RFC 6749 §2.3.1), if any."""
    if header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "Malformed HTTP Basic client credentials.") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "Malformed HTTP Basic client credentials.")
    return unquote_plus(client_id), unquote_plus(secret)


# ---------------------------------------------------------------------------- apps


@dataclass(frozen=True, slots=True)
class NewApp:
    app: OAuthApp
    client_secret: str


def create_app(
    session: AsyncSession, *, name: str, redirect_uris: list[str], scopes: list[str], website: str | None, now: datetime
) -> NewApp:
    """Add a registered client to ``session``; the caller commits and shows the secret once."""
    secret = new_token()
    app = OAuthApp(
        id=new_id(),
        name=name,
        website=website,
        redirect_uris=redirect_uris,
        scopes=" ".join(scopes),
        client_id=new_token(),
        client_secret_hash=digest(secret),
        created_at=now,
    )
    session.add(app)
    return NewApp(app, secret)


async def find_app(session: AsyncSession, client_id: str | None) -> OAuthApp | None:
    if not client_id or len(client_id) > 64:
        return None
    return (await session.execute(select(OAuthApp).where(OAuthApp.client_id == client_id))).scalar_one_or_none()


async def authenticate_client(session: AsyncSession, client_id: str | None, client_secret: str | None) -> OAuthApp:
    """The app whose id and secret these are, or ``invalid_client`` (one answer for every failure)."""
    app = await find_app(session, client_id)
    if app is None or not client_secret or not same_digest(client_secret, app.client_secret_hash):
        raise OAuthError("invalid_client", "Client authentication failed: unknown client or wrong secret.")
    return app


# ---------------------------------------------------------------------------- logins


_THROTTLED = "Too many failed login attempts; try again in {seconds} seconds."
LOGINS = RateLimit("login", _THROTTLED)  # per login name and client address
LOGINS_PER_NAME = RateLimit("login-name", _THROTTLED)  # per login name, every address together
LOGINS_PER_ADDRESS = RateLimit("login-address", _THROTTLED)  # per client address, every name together


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """One attempt as counted in each of the throttle's buckets, to forgive it in all of them."""

    hits: tuple[tuple[RateLimit, Hit], ...]


class LoginThrottle:
    """Failed logins in a sliding minute, counted in the database so the limits hold across
    every web process (``server.ratelimit``; see the module note), in three buckets:

    * per login name and client address (``security.login_attempts_per_minute``): the limit
      a guesser meets, which does not lock the member out from their own address;
    * per login name over every address (``..._per_name``): locking a name out, or guessing
      it from many addresses, needs that many attempts a minute;
    * per client address over every name (``..._per_address``): credential stuffing.

    An attempt counts as failed in all three from the moment it starts and is forgiven in
    all three only when the password turns out right, so a burst of parallel guesses cannot
    slip past while the first ones are still being verified. An attempt any bucket refuses
    counts in none: all three are read first (a refusal then writes nothing), and if one
    refuses after others counted (a race with another request), those are taken back.

    **Known addresses.** The per-name bucket is the one an attacker with many addresses can
    fill to lock the member out. So an address the name logged in from with the right password
    in the last ``security.known_login_address_days`` is *known*, and attempts from it are held
    to the other two buckets only (an attacker behind that very address still meets the
    per-name-and-address limit). Someone who fills the per-name bucket then keeps the member
    out only of places they have not logged in from lately. Known addresses are stored as an
    HMAC of name and address under a key derived from the instance secret (``KnownLoginAddress``),
    so a database dump alone cannot be searched for a member's addresses; a process without a
    secret keys them randomly, and other processes then just do not know them (fails safe).
    """

    def __init__(
        self,
        *,
        per_name_and_address: int,
        per_name: int,
        per_address: int,
        known_days: int = 0,
        known_key: bytes = b"",
    ) -> None:
        self.per_name_and_address = per_name_and_address
        self.per_name = per_name
        self.per_address = per_address
        self.known_days = known_days
        self._known_key = known_key or secrets.token_bytes(32)

    @classmethod
    def from_config(cls, config: Config) -> LoginThrottle:
        return cls(
            per_name_and_address=config.get("security", "login_attempts_per_minute"),
            per_name=config.get("security", "login_attempts_per_minute_per_name"),
            per_address=config.get("security", "login_attempts_per_minute_per_address"),
            known_days=config.get("security", "known_login_address_days"),
            known_key=purpose_key(config, "hearthside known login addresses"),
        )

    def _known(self, login: str, client: IPAddress | None) -> str:
        """The stored key of (login name, client address): an HMAC, never either in the clear."""
        message = json.dumps([login, address_key(client)]).encode()
        return hmac.new(self._known_key, message, hashlib.sha256).hexdigest()

    async def is_known(self, session: AsyncSession, login: str, client: IPAddress | None, *, at: datetime) -> bool:
        """Whether ``login`` logged in from ``client`` within the last ``known_days``."""
        if not self.known_days or client is None:
            return False
        last = await session.scalar(
            select(KnownLoginAddress.last_login_at).where(KnownLoginAddress.key == self._known(login, client))
        )
        return last is not None and last > at - timedelta(days=self.known_days)

    async def remember(self, session: AsyncSession, login: str, client: IPAddress | None, *, at: datetime) -> None:
        """Make ``client`` known for ``login`` (a login succeeded); forget addresses that aged
        out. Written in ``session``, which the caller commits with the login."""
        if not self.known_days or client is None:
            return
        # An upsert, so two logins at once from one address cannot collide on the key.
        insert = conflict_insert(session.get_bind().dialect.name)
        await session.execute(
            insert(KnownLoginAddress)
            .values(key=self._known(login, client), last_login_at=at)
            .on_conflict_do_update(index_elements=["key"], set_={"last_login_at": at})
        )
        await session.execute(
            delete(KnownLoginAddress).where(KnownLoginAddress.last_login_at <= at - timedelta(days=self.known_days))
        )

    def _buckets(
        self, login: str, client: IPAddress | None, *, known: bool = False
    ) -> tuple[tuple[RateLimit, tuple[str, ...], int], ...]:
        address = address_key(client)
        return (
            (LOGINS, (login, address), self.per_name_and_address),
            *(() if known else ((LOGINS_PER_NAME, (login,), self.per_name),)),
            (LOGINS_PER_ADDRESS, (address,), self.per_address),
        )

    async def attempt(self, session: AsyncSession, login: str, client: IPAddress | None, *, at: float) -> LoginAttempt:
        """Count an attempt for ``login`` from ``client`` in every bucket that applies (not the
        per-name one from a known address), or raise ``TooManyRequests`` (the longest wait of
        the buckets that refuse) counting it in none.

        Commits ``session``, which must not have written anything yet.
        """
        known = await self.is_known(session, login, client, at=datetime.fromtimestamp(at, UTC))
        buckets = self._buckets(login, client, known=known)
        refusals: list[TooManyRequests] = []
        for limiter, parts, limit in buckets:
            try:
                await limiter.check(session, *parts, limit=limit, at=at)
            except TooManyRequests as exc:
                refusals.append(exc)
        if refusals:
            log.info("login refused reason=throttled")
            raise max(refusals, key=lambda exc: exc.retry_after)  # every refusing bucket must have room
        counted: list[tuple[RateLimit, Hit]] = []
        for limiter, parts, limit in buckets:
            try:
                counted.append((limiter, await limiter.hit(session, *parts, limit=limit, at=at)))
            except TooManyRequests:  # another request took the last room since the read
                await self.forgive(session, LoginAttempt(tuple(counted)))
                log.info("login refused reason=throttled")
                raise
        return LoginAttempt(tuple(counted))

    async def forgive(self, session: AsyncSession, attempt: LoginAttempt) -> None:
        """Take back an attempt in every bucket it counted in (commits ``session``)."""
        for limiter, hit in attempt.hits:
            await limiter.forgive(session, hit)


_dummy_hashes: weakref.WeakKeyDictionary[PasswordHasher, str] = weakref.WeakKeyDictionary()


async def _dummy_verify(session: AsyncSession, hasher: PasswordHasher, password: str) -> None:
    """Spend one verification on a hash nobody has, so unknown logins take as long as real ones."""
    dummy = _dummy_hashes.get(hasher)
    if dummy is None:
        dummy = await run_blocking(session, hasher.hash, new_token())
        _dummy_hashes[hasher] = dummy
    try:
        await run_blocking(session, hasher.verify, dummy, password)
    except VerificationError:
        pass


def login_key(login: str) -> str:
    return login.strip().lower()


async def verify_login(
    session: AsyncSession,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    *,
    login: str,
    password: str,
    client: IPAddress | None,
    now: datetime,
) -> tuple[User, Account]:
    """The user whose username or email ``login`` is and whose password this is.

    ``client`` is the address the attempt came from (``server.clientaddr.client_address``),
    for the throttle. Raises ``TooManyRequests`` when throttled, ``OAuthError("invalid_grant")``
    with one message for an unknown login and a wrong password, and ``LoginRefused`` (after a
    correct password only) for suspended or not yet approved accounts. Records
    ``last_login_at``.

    Call it before ``session`` writes anything: the attempt is committed at once (it must count
    even when the login fails and the request rolls back), and so is its forgiveness.
    """
    key = login_key(login)
    attempt = await throttle.attempt(session, key, client, at=now.timestamp())
    query = select(User, Account).join(Account, Account.id == User.account_id)
    if "@" in key:
        query = query.where(User.email == key)
    else:
        query = query.where(Account.username_lower == key, Account.domain == "", Account.actor_type == "Person")
    found = (await session.execute(query)).one_or_none() if key else None
    if found is None or found[1].deleted_at is not None:
        await _dummy_verify(session, hasher, password)
        log.info("login refused reason=bad_credentials")
        raise OAuthError("invalid_grant", _LOGIN_REFUSED)
    user, account = found
    try:
        await run_blocking(session, hasher.verify, user.password_hash, password)
    except VerificationError:
        log.info("login refused user=%s reason=bad_credentials", user.id)
        raise OAuthError("invalid_grant", _LOGIN_REFUSED) from None
    await throttle.forgive(session, attempt)
    if account.suspended_at is not None or user.disabled:
        log.info("login refused user=%s reason=%s", user.id, "suspended" if account.suspended_at else "disabled")
        raise LoginRefused("Your login is currently disabled.")
    if not user.approved:
        log.info("login refused user=%s reason=pending", user.id)
        raise LoginRefused("Your login is currently pending approval.")
    if hasher.needs_rehash(user.password_hash):
        user.password_hash = await run_blocking(session, hasher.hash, password)
    user.last_login_at = now
    await throttle.remember(session, key, client, at=now)
    return user, account


async def check_user_may_log_in(session: AsyncSession, user_id: int) -> None:
    """Refuse a grant whose user was suspended, disabled, deleted or unapproved since it was issued."""
    found = (
        await session.execute(
            select(User.approved, User.disabled, Account.suspended_at, Account.deleted_at)
            .join(Account, Account.id == User.account_id)
            .where(User.id == user_id)
        )
    ).one_or_none()
    if (
        found is None
        or found.deleted_at is not None
        or found.suspended_at is not None
        or found.disabled
        or not found.approved
    ):
        raise OAuthError("invalid_grant", _GRANT_REFUSED)


# ---------------------------------------------------------------------------- codes and tokens


def create_code(
    session: AsyncSession,
    *,
    app: OAuthApp,
    user_id: int,
    scopes: str,
    redirect_uri: str,
    code_challenge: str | None,
    code_challenge_method: str | None,
    now: datetime,
) -> str:
    """Add a single-use authorization code; returns the code itself (only its digest is stored)."""
    code = new_token()
    session.add(
        OAuthCode(
            id=new_id(),
            code_hash=digest(code),
            app_id=app.id,
            user_id=user_id,
            scopes=scopes,
            redirect_uri=redirect_uri,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method,
            expires_at=now + CODE_LIFETIME,
        )
    )
    return code


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    row: OAuthToken

    def response(self) -> dict[str, object]:
        """The token endpoint's answer, as Mastodon gives it (no ``expires_in``, no refresh token)."""
        return {
            "access_token": self.token,
            "token_type": "Bearer",
            "scope": self.row.scopes,
            "created_at": int(self.row.created_at.timestamp()),
        }


def issue_token(
    session: AsyncSession,
    config: Config,
    *,
    app: OAuthApp,
    user_id: int | None,
    scopes: str,
    now: datetime,
    code_id: int | None = None,
) -> IssuedToken:
    token = new_token()
    row = OAuthToken(
        id=new_id(),
        token_hash=digest(token),
        app_id=app.id,
        user_id=user_id,
        scopes=scopes,
        created_at=now,
        expires_at=now + timedelta(days=config.get("security", "oauth_token_days")),
        code_id=code_id,
    )
    session.add(row)
    return IssuedToken(token, row)


async def revoke_tokens_from_code(session: AsyncSession, code_id: int, now: datetime) -> list[str]:
    """Revoke every live token issued from a code; returns their digests for ``forget_tokens``."""
    rows = (
        (
            await session.execute(
                select(OAuthToken).where(OAuthToken.code_id == code_id, OAuthToken.revoked_at.is_(None))
            )
        )
        .scalars()
        .all()
    )
    for row in rows:
        row.revoked_at = now
    return [row.token_hash for row in rows]


async def exchange_code(
    session: AsyncSession,
    config: Config,
    *,
    app: OAuthApp,
    code: str | None,
    redirect_uri: str | None,
    code_verifier: str | None,
    scope: str | None,
    now: datetime,
) -> IssuedToken:
    """The authorization-code grant (RFC 6749 §4.1.3 with RFC 7636). The caller commits.

    A replayed code revokes the tokens issued from it; that revocation is committed here even
    though the exchange itself fails.
    """
    if not code:
        raise OAuthError("invalid_request", "Missing required parameter: code.")
    if len(code) > 256:
        raise OAuthError("invalid_grant", _GRANT_REFUSED)
    row = (await session.execute(select(OAuthCode).where(OAuthCode.code_hash == digest(code)))).scalar_one_or_none()
    if row is None or row.app_id != app.id:
        raise OAuthError("invalid_grant", _GRANT_REFUSED)
    if row.used_at is not None:
        digests = await revoke_tokens_from_code(session, row.id, now)
        await session.commit()
        for token_digest in digests:
            forget_tokens(token_digest=token_digest)
        log.warning("authorization code replayed code=%s app=%s revoked=%d", row.id, app.id, len(digests))
        raise OAuthError("invalid_grant", _GRANT_REFUSED)
    if row.expires_at <= now:
        raise OAuthError("invalid_grant", _GRANT_REFUSED)
    if redirect_uri != row.redirect_uri:
        raise OAuthError("invalid_grant", "The redirect_uri does not match the one used in the authorization request.")
    check_code_verifier(code_verifier, row.code_challenge)
    scopes = requested_scopes(scope, row.scopes, default=row.scopes) if scope else row.scopes
    await check_user_may_log_in(session, row.user_id)
    claimed = await session.execute(
        update(OAuthCode).where(OAuthCode.id == row.id, OAuthCode.used_at.is_(None)).values(used_at=now)
    )
    if getattr(claimed, "rowcount", 0) != 1:  # a concurrent exchange won the race
        raise OAuthError("invalid_grant", _GRANT_REFUSED)
    user = await session.get(User, row.user_id)
    if user is not None:
        user.last_login_at = now
    return issue_token(session, config, app=app, user_id=row.user_id, scopes=scopes, now=now, code_id=row.id)


async def revoke_token(session: AsyncSession, *, app: OAuthApp, token: str, now: datetime) -> str | None:
    """Revoke ``token`` if it exists and belongs to ``app`` (RFC 7009). Returns its digest, if revoked.

    Unknown tokens are not an error (RFC 7009 §2.2); a token of another client is refused.
    """
    if not token or len(token) > 256:
        return None
    token_digest = digest(token)
    row = (await session.execute(select(OAuthToken).where(OAuthToken.token_hash == token_digest))).scalar_one_or_none()
    if row is None:
        return None
    if row.app_id != app.id:
        raise OAuthError("unauthorized_client", "This token was not issued to this client.")
    if row.revoked_at is None:
        row.revoked_at = now
    return token_digest
