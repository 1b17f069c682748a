"""OAuth 2 endpoints and Mastodon's app registration: ``/api/v1/apps``, ``/oauth/*`` and RFC 8414.

Design note
-----------
Decisions live in ``server.oauth``; this module parses, renders and commits.

* ``/oauth/token`` and ``/oauth/revoke`` answer JSON, with RFC 6749 §5.2 errors rendered by
  the error middleware. Parameter problems there are ``invalid_request`` (400), never 422.
* ``/oauth/authorize`` is the one page a person sees: a login and consent form. Hearthside
  keeps no browser sessions, so the form always asks for the password (``force_login`` is
  implied). Its errors are HTML pages or, once the redirect URI is known to be registered,
  redirects carrying ``error=`` (RFC 6749 §4.1.2.1) — never JSON, because a browser shows it.
* CSRF: the GET sets a random nonce in an ``HttpOnly``, ``SameSite=Strict`` cookie and puts
  an HMAC of it in a hidden field ("signed double-submit"); the POST is refused unless the
  two agree. The HMAC key is ``security.secret_key``, else the ``secret_key`` file ``init``
  writes, else a per-process random key (then a form must be posted back to the process that
  served it).
* The login throttle (its limits; the counts live in the database, shared by every web process,
  see ``server.ratelimit``), the trusted proxies and the form key are per-app state, created
  when the routes are installed. Both handlers call ``verify_login`` before their session
  writes anything, with the client's address: the connection's peer, or what a trusted proxy
  says in ``X-Forwarded-For`` (``server.clientaddr``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.tokens import new_token
from server.accounts import HASHER
from server.auth import SCOPES_SUPPORTED, authenticate, forget_tokens
from server.clientaddr import IPAddress, IPNetwork, client_address, parse_networks
from server.config import Config
from server.errors import ApiError, TooManyRequests, Unauthorized, Unprocessable
from server.keyring import purpose_key
from server.models import OAuthApp
from server.oauth import (
    MAX_APP_NAME_CHARS,
    OOB,
    LoginRefused,
    LoginThrottle,
    OAuthError,
    authenticate_client,
    basic_credentials,
    check_code_challenge,
    check_website,
    create_app,
    create_code,
    exchange_code,
    find_app,
    issue_token,
    parse_redirect_uris,
    parse_registered_scopes,
    requested_scopes,
    revoke_token,
    verify_login,
)
from server.web import CONFIG, SESSIONS, Params, Routes, json_response, now, read_params

log = logging.getLogger(__name__)

CSRF_COOKIE = "hearthside_oauth_csrf"
CSRF_MAX_AGE = 3600


class FormSigner:
    """Signs the authorization form's CSRF nonce (see the module note)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._key: bytes | None = None

    def _secret(self) -> bytes:
        if self._key is None:
            self._key = purpose_key(self._config, "hearthside oauth authorize form")
        return self._key

    def sign(self, nonce: str) -> str:
        return hmac.new(self._secret(), nonce.encode(), hashlib.sha256).hexdigest()

    def valid(self, nonce: str | None, signature: str | None) -> bool:
        if not nonce or not signature or len(nonce) > 128:
            return False
        return hmac.compare_digest(self.sign(nonce), signature)


LOGIN_THROTTLE = web.AppKey("login_throttle", LoginThrottle)
TRUSTED_PROXIES: web.AppKey[tuple[IPNetwork, ...]] = web.AppKey("trusted_proxies")
FORM_SIGNER = web.AppKey("oauth_form_signer", FormSigner)


class _OAuthRoutes(Routes):
    def install(self, app: web.Application) -> None:
        super().install(app)
        config = app[CONFIG]
        app[LOGIN_THROTTLE] = LoginThrottle.from_config(config)
        app[TRUSTED_PROXIES] = parse_networks(config.get("server", "trusted_proxies"))
        app[FORM_SIGNER] = FormSigner(config)


def request_client(request: web.Request) -> IPAddress | None:
    """The address of the client behind ``request`` (see ``server.clientaddr``)."""
    trusted = request.app[TRUSTED_PROXIES]
    return client_address(request.remote, request.headers.getall("X-Forwarded-For", []), trusted)


routes = _OAuthRoutes()


# ---------------------------------------------------------------------------- apps


def render_application(app: OAuthApp, *, client_secret: str | None = None) -> dict[str, Any]:
    """Mastodon's ``Application`` entity; ``CredentialApplication`` when the secret is given."""
    uris = list(app.redirect_uris or [])
    data: dict[str, Any] = {
        "id": str(app.id),
        "name": app.name,
        "website": app.website,
        "scopes": app.scopes.split(),
        "redirect_uri": "\n".join(uris),
        "redirect_uris": uris,
        "vapid_key": "",
    }
    if client_secret is not None:
        data["client_id"] = app.client_id
        data["client_secret"] = client_secret
        data["client_secret_expires_at"] = 0
    return data


def _string_list(params: Params, name: str) -> list[str]:
    values = params.array(name)
    for value in values:
        if not isinstance(value, str) or "\x00" in value:
            raise Unprocessable(f"{name}: must be a string or a list of strings")
    return values


@routes.post("/api/v1/apps")
async def register_app(request: web.Request) -> web.Response:
    params = await read_params(request)
    name = (params.text("client_name", max_len=MAX_APP_NAME_CHARS) or "").strip()
    if not name:
        raise Unprocessable("client_name: can't be blank")
    redirect_uris = parse_redirect_uris(_string_list(params, "redirect_uris"))
    scopes = parse_registered_scopes(" ".join(_string_list(params, "scopes")))
    website = (params.text("website", max_len=2000) or "").strip() or None
    if website is not None:
        check_website(website)
    async with request.app[SESSIONS]() as session:
        new = create_app(session, name=name, redirect_uris=redirect_uris, scopes=scopes, website=website, now=now())
        await session.commit()
    log.info("oauth app registered app=%s", new.app.id)
    return json_response(render_application(new.app, client_secret=new.client_secret))


@routes.get("/api/v1/apps/verify_credentials")
async def verify_app_credentials(request: web.Request) -> web.Response:
    viewer = await authenticate(request)
    assert viewer is not None
    if viewer.app_id is None:
        # Tokens made by the operator CLI belong to no registered app: describe the instance.
        config = request.app[CONFIG]
        return json_response(
            {
                "id": "0",
                "name": config.get("instance", "name"),
                "website": config.base_url,
                "scopes": sorted(viewer.scopes),
                "redirect_uri": "",
                "redirect_uris": [],
                "vapid_key": "",
            }
        )
    async with request.app[SESSIONS]() as session:
        app = await session.get(OAuthApp, viewer.app_id)
    if app is None:  # deleting an app deletes its tokens; this is a race with that
        raise Unauthorized("The access token is invalid")
    return json_response(render_application(app))


# ---------------------------------------------------------------------------- RFC 8414


@routes.get("/.well-known/oauth-authorization-server")
async def authorization_server_metadata(request: web.Request) -> web.Response:
    base = request.app[CONFIG].base_url
    return json_response(
        {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "app_registration_endpoint": f"{base}/api/v1/apps",
            "scopes_supported": SCOPES_SUPPORTED,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "password", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "service_documentation": "https://docs.joinmastodon.org/",
        },
        headers={"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"},
    )


# ---------------------------------------------------------------------------- token endpoint


def _oauth_text(params: Params, name: str, *, max_len: int = 2048) -> str | None:
    """A parameter of a token/revoke request; malformed ones are ``invalid_request`` (RFC 6749 §5.2)."""
    try:
        return params.text(name, max_len=max_len)
    except ApiError as exc:
        raise OAuthError("invalid_request", exc.message) from None


async def _oauth_params(request: web.Request) -> Params:
    try:
        return await read_params(request)
    except ApiError as exc:
        raise OAuthError("invalid_request", exc.message) from None


async def _client(request: web.Request, session: AsyncSession, params: Params) -> OAuthApp:
    """Authenticate the client by HTTP Basic or by ``client_id``/``client_secret`` in the body."""
    basic = basic_credentials(request.headers.get("Authorization", ""))
    body_id = _oauth_text(params, "client_id", max_len=256)
    body_secret = _oauth_text(params, "client_secret", max_len=256)
    if basic is not None:
        if body_secret is not None or (body_id is not None and body_id != basic[0]):
            raise OAuthError("invalid_request", "Use one client authentication method, not two.")
        return await authenticate_client(session, *basic)
    return await authenticate_client(session, body_id, body_secret)


@routes.post("/oauth/token")
async def token(request: web.Request) -> web.Response:
    params = await _oauth_params(request)
    grant_type = _oauth_text(params, "grant_type", max_len=64)
    if not grant_type:
        raise OAuthError("invalid_request", "Missing required parameter: grant_type.")
    if grant_type not in ("authorization_code", "password", "client_credentials"):
        raise OAuthError("unsupported_grant_type", "The authorization grant type is not supported.")
    config = request.app[CONFIG]
    moment = now()
    async with request.app[SESSIONS]() as session:
        app = await _client(request, session, params)
        scope = _oauth_text(params, "scope", max_len=2048)
        if grant_type == "authorization_code":
            issued = await exchange_code(
                session,
                config,
                app=app,
                code=_oauth_text(params, "code", max_len=512),
                redirect_uri=_oauth_text(params, "redirect_uri"),
                code_verifier=_oauth_text(params, "code_verifier", max_len=256),
                scope=scope,
                now=moment,
            )
        elif grant_type == "password":
            scopes = requested_scopes(scope, app.scopes)
            username = _oauth_text(params, "username", max_len=320)
            password = _oauth_text(params, "password", max_len=4096)
            if not username or password is None:
                raise OAuthError("invalid_request", "The password grant needs username and password.")
            user, _account = await verify_login(
                session,
                request.app[HASHER],
                request.app[LOGIN_THROTTLE],
                login=username,
                password=password,
                client=request_client(request),
                now=moment,
            )
            issued = issue_token(session, config, app=app, user_id=user.id, scopes=scopes, now=moment)
        else:
            scopes = requested_scopes(scope, app.scopes)
            issued = issue_token(session, config, app=app, user_id=None, scopes=scopes, now=moment)
        await session.commit()
    log.info("token issued app=%s user=%s grant=%s", app.id, issued.row.user_id, grant_type)
    return json_response(issued.response(), headers={"Pragma": "no-cache"})


@routes.post("/oauth/revoke")
async def revoke(request: web.Request) -> web.Response:
    params = await _oauth_params(request)
    async with request.app[SESSIONS]() as session:
        app = await _client(request, session, params)
        value = _oauth_text(params, "token", max_len=512)
        if not value:
            raise OAuthError("invalid_request", "Missing required parameter: token.")
        revoked = await revoke_token(session, app=app, token=value, now=now())
        await session.commit()
    if revoked is not None:
        forget_tokens(token_digest=revoked)
        log.info("token revoked app=%s", app.id)
    return json_response({})


# ---------------------------------------------------------------------------- authorization form


class _PageError(Exception):
    """Shown as an HTML page: the redirect URI is unknown or unregistered, so no redirect."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class _AuthRequest:
    app: OAuthApp
    redirect_uri: str
    state: str | None
    scopes: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None


class _RedirectError(Exception):
    """An RFC 6749 §4.1.2.1 error sent back to the (registered) redirect URI."""

    def __init__(self, target: _AuthRequest, error: str, description: str) -> None:
        super().__init__(description)
        self.target = target
        self.error = error
        self.description = description


def _page_text(params: Params, name: str, *, max_len: int = 2048) -> str | None:
    try:
        return params.text(name, max_len=max_len)
    except ApiError as exc:
        raise _PageError(exc.message) from None


async def _authorization_request(session: AsyncSession, params: Params) -> _AuthRequest:
    """Validate an authorization request; errors before the redirect URI is trusted are pages."""
    app = await find_app(session, _page_text(params, "client_id", max_len=256))
    if app is None:
        raise _PageError("This application is not registered here (unknown client_id).")
    registered = list(app.redirect_uris or [])
    redirect_uri = _page_text(params, "redirect_uri")
    if not redirect_uri and len(registered) == 1:
        redirect_uri = registered[0]
    if not redirect_uri or redirect_uri not in registered:
        raise _PageError("The redirect_uri is not one this application registered.")
    target = _AuthRequest(app, redirect_uri, _page_text(params, "state") or None)
    response_type = _page_text(params, "response_type", max_len=64)
    if response_type != "code":
        raise _RedirectError(target, "unsupported_response_type", "Only response_type=code is supported.")
    try:
        scopes = requested_scopes(_page_text(params, "scope"), app.scopes)
        challenge, method = check_code_challenge(
            _page_text(params, "code_challenge", max_len=256), _page_text(params, "code_challenge_method", max_len=16)
        )
    except OAuthError as exc:
        raise _RedirectError(target, exc.code, exc.message) from None
    return _AuthRequest(app, redirect_uri, target.state, scopes, challenge, method)


def _with_query(uri: str, values: dict[str, str | None]) -> str:
    parts = urlsplit(uri)
    extra = urlencode({k: v for k, v in values.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;line-height:1.5;"
    "color:#1b1b1b;background:#fdfcf9}label{display:block;margin-top:1rem;font-weight:600}"
    "input{display:block;width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #555}"
    "button{margin:1.25rem .5rem 0 0;padding:.6rem 1.2rem;font-size:1rem}"
    ".error{border-left:4px solid #a4262c;padding:.5rem 1rem;background:#fbeaea}"
    "code{font-size:1.1rem;word-break:break-all}:focus{outline:3px solid #2b7a78;outline-offset:2px}"
)

_SCOPE_WORDS = {
    "read": "read everything your account can see",
    "write": "post, edit and change things for your account",
    "follow": "follow, block and mute accounts",
    "push": "receive push notifications",
    "profile": "see your basic profile",
}


def _page(
    config: Config, title: str, body: str, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="no-referrer"><title>{escape(title)} · {escape(config.get("instance", "name"))}'
        f"</title><style>{_STYLE}</style></head><body><main>{body}</main></body></html>"
    )
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=headers)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response


def _error_page(config: Config, message: str, status: int) -> web.Response:
    body = f'<h1>Authorization failed</h1><p class="error" role="alert">{escape(message)}</p>'
    return _page(config, "Authorization failed", body, status=status)


def _form(
    request: web.Request,
    target: _AuthRequest,
    nonce: str,
    *,
    error: str | None = None,
    username: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    config = request.app[CONFIG]
    app = target.app
    name = escape(app.name)
    hidden = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": target.redirect_uri,
        "scope": target.scopes,
        "state": target.state,
        "code_challenge": target.code_challenge,
        "code_challenge_method": target.code_challenge_method,
        "csrf_token": request.app[FORM_SIGNER].sign(nonce),
    }
    fields = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in hidden.items() if v is not None
    )
    scopes = "".join(
        f"<li>{escape(_SCOPE_WORDS.get(s, s))} <small>({escape(s)})</small></li>" for s in (target.scopes or "").split()
    )
    if target.redirect_uri == OOB:
        after = "After you authorize, you will be shown a code to paste into the application."
    else:
        destination = urlsplit(target.redirect_uri).netloc or target.redirect_uri
        after = f"After you decide, you will be sent back to {escape(destination)}."
    website = f' (<span translate="no">{escape(app.website)}</span>)' if app.website else ""
    alert = f'<p class="error" role="alert" id="form-error">{escape(error)}</p>' if error else ""
    described = ' aria-describedby="form-error"' if error else ""
    body = (
        f"<h1>Authorize {name}</h1>"
        f"<p><strong>{name}</strong>{website} wants to use your account on "
        f"{escape(config.get('instance', 'name'))}.</p>{alert}"
        f'<h2 id="scopes-heading">It asks to</h2><ul aria-labelledby="scopes-heading">{scopes}</ul>'
        f'<form method="post" action="/oauth/authorize"{described}>{fields}'
        '<label for="username">Username or email</label>'
        f'<input id="username" name="username" value="{escape(username)}" autocomplete="username" '
        'autocapitalize="none" spellcheck="false" required>'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password" required>'
        '<button type="submit" name="decision" value="authorize">Authorize</button>'
        '<button type="submit" name="decision" value="deny" formnovalidate>Deny</button>'
        f"</form><p>{after}</p>"
    )
    response = _page(config, f"Authorize {app.name}", body, status=status, headers=headers)
    response.set_cookie(
        CSRF_COOKIE,
        nonce,
        max_age=CSRF_MAX_AGE,
        path="/oauth/authorize",
        httponly=True,
        samesite="Strict",
        secure=config.base_url.startswith("https://"),
    )
    return response


def _redirect_error(request: web.Request, exc: _RedirectError) -> web.Response:
    if exc.target.redirect_uri == OOB:
        return _error_page(request.app[CONFIG], exc.description, 400)
    location = _with_query(
        exc.target.redirect_uri,
        {"error": exc.error, "error_description": exc.description, "state": exc.target.state},
    )
    return _redirect(location)


@routes.get("/oauth/authorize")
async def authorize_form(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    try:
        params = await read_params(request)
        async with request.app[SESSIONS]() as session:
            target = await _authorization_request(session, params)
    except _PageError as exc:
        return _error_page(config, exc.message, exc.status)
    except _RedirectError as exc:
        return _redirect_error(request, exc)
    return _form(request, target, new_token(16))


@routes.post("/oauth/authorize")
async def authorize(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    try:
        params = await read_params(request)
    except ApiError as exc:
        return _error_page(config, exc.message, 400)
    nonce = request.cookies.get(CSRF_COOKIE)
    try:
        signature = _page_text(params, "csrf_token", max_len=128)
        if not request.app[FORM_SIGNER].valid(nonce, signature):
            raise _PageError("This form has expired or did not come from this site. Go back and try again.", 403)
        assert nonce is not None
        async with request.app[SESSIONS]() as session:
            target = await _authorization_request(session, params)
            if _page_text(params, "decision", max_len=16) == "deny":
                log.info("authorization denied app=%s", target.app.id)
                raise _RedirectError(target, "access_denied", "The user denied the request.")
            username = (_page_text(params, "username", max_len=320) or "").strip()
            password = _page_text(params, "password", max_len=4096) or ""
            if not username or not password:
                return _form(request, target, nonce, error="Enter your username and password.", status=422)
            try:
                user, _account = await verify_login(
                    session,
                    request.app[HASHER],
                    request.app[LOGIN_THROTTLE],
                    login=username,
                    password=password,
                    client=request_client(request),
                    now=now(),
                )
            except TooManyRequests as exc:
                headers = {"Retry-After": str(exc.retry_after)}
                return _form(request, target, nonce, error=exc.message, username=username, status=429, headers=headers)
            except LoginRefused as exc:
                return _form(request, target, nonce, error=exc.message, username=username, status=403)
            except OAuthError as exc:
                return _form(request, target, nonce, error=exc.message, username=username, status=401)
            assert target.scopes is not None
            code = create_code(
                session,
                app=target.app,
                user_id=user.id,
                scopes=target.scopes,
                redirect_uri=target.redirect_uri,
                code_challenge=target.code_challenge,
                code_challenge_method=target.code_challenge_method,
                now=now(),
            )
            await session.commit()
    except _PageError as exc:
        return _error_page(config, exc.message, exc.status)
    except _RedirectError as exc:
        return _redirect_error(request, exc)
    log.info("authorization granted app=%s user=%s", target.app.id, user.id)
    if target.redirect_uri == OOB:
        body = (
            "<h1>Authorization code</h1>"
            f"<p>Copy this code and paste it into {escape(target.app.name)}:</p>"
            f'<p><label for="code">Authorization code</label>'
            f'<input id="code" name="code" readonly value="{escape(code)}"></p>'
            f"<p><code>{escape(code)}</code></p><p>It works once, within ten minutes.</p>"
        )
        return _page(config, "Authorization code", body)
    return _redirect(_with_query(target.redirect_uri, {"code": code, "state": target.state}))
