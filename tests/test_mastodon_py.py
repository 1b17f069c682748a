"""The unmodified Mastodon.py client against a live `hearthside serve` process.

The flow follows the issue: register an app, log in, post with a content warning, read the home
and public timelines, follow an account and a group, favourite, read notifications, search.
Both the password grant and the authorization-code grant (through the HTML login form) are
exercised, and the instance runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from mastodon import Mastodon
from mastodon.errors import MastodonAPIError, MastodonNotFoundError
from test_cli import init_instance, run, serving


@pytest.fixture(params=["sqlite", "postgres"])
async def live(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    config_path, admin_password = await init_instance(request, tmp_path)
    cfg = ["--config", str(config_path)]
    run("user", "create", "robin", "--password-stdin", *cfg, stdin="robin's long password\n")
    run("group", "create", "night_owls", "--owner", "robin", "--description", "Peer support after dark", *cfg)
    return config_path, admin_password


def _app(base: str, tmp_path: Path, name: str) -> tuple[str, str]:
    return Mastodon.create_app(
        name, api_base_url=base, scopes=["read", "write", "follow"], redirect_uris="urn:ietf:wg:oauth:2.0:oob"
    )


def test_mastodon_py__basic_flow(live: tuple[Path, str], tmp_path: Path) -> None:
    config_path, admin_password = live
    with serving(config_path) as port:
        base = f"http://127.0.0.1:{port}"
        client_id, client_secret = _app(base, tmp_path, "hearthside-e2e")

        # robin logs in with the password grant
        robin = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base)
        robin.log_in("robin", "robin's long password", scopes=["read", "write", "follow"], allow_http=True)
        me = robin.account_verify_credentials()
        assert me.username == "robin"

        # admin logs in with the authorization-code grant through the HTML form (Mastodon.py
        # 2.3.3 sends no PKCE challenge; PKCE itself is covered in test_oauth.py)
        admin = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base)
        url = admin.auth_request_url(
            redirect_uris="urn:ietf:wg:oauth:2.0:oob", scopes=["read", "write", "follow"], allow_http=True
        )
        code = _authorize_through_form(url, "admin", admin_password)
        admin.log_in(
            code=code, redirect_uri="urn:ietf:wg:oauth:2.0:oob", scopes=["read", "write", "follow"], allow_http=True
        )
        assert admin.account_verify_credentials().username == "admin"

        # robin posts with a content warning
        post = robin.status_post(
            "Today was **hard**, but I went for a walk. #selfcare", spoiler_text="low mood", visibility="public"
        )
        assert post.spoiler_text == "low mood"
        assert post.sensitive is True
        assert "<strong>hard</strong>" in post.content

        # admin follows robin and joins the group (a group is an account with group: true)
        found = admin.account_lookup("robin")
        relationship = admin.account_follow(found.id)
        assert relationship.following is True
        group = admin.account_lookup("night_owls")
        assert group.group is True
        joined = admin.account_follow(group.id)
        assert joined.following is True

        # timelines
        home = admin.timeline_home()
        assert [s.id for s in home] == [post.id]
        public = robin.timeline_public()
        assert post.id in [s.id for s in public]

        # favourite -> robin is notified, along with admin's follow
        fav = admin.status_favourite(post.id)
        assert fav.favourited is True and fav.favourites_count == 1
        notifications = robin.notifications()
        kinds = {(n.type, n.account.username) for n in notifications}
        assert ("favourite", "admin") in kinds
        assert ("follow", "admin") in kinds

        # posting to the group by mentioning it, as on Lemmy
        in_group = admin.status_post("@night_owls anyone else awake?")
        assert in_group["hearthside"]["group"]["acct"] == "night_owls"

        # search
        results = admin.search("robin", result_type="accounts")
        assert [a.username for a in results.accounts] == ["robin"]
        results = admin.search("walk", result_type="statuses")
        assert [s.id for s in results.statuses] == [post.id]

        # plaintext direct messages are refused with a pointer to E2EE
        with pytest.raises(MastodonAPIError, match="end-to-end encrypted"):
            robin.status_post("secret", visibility="direct")
        with pytest.raises(MastodonNotFoundError):
            robin.status("1234")
        secrets_seen = [admin_password, "robin's long password", robin.access_token, admin.access_token, client_secret]

    # The server's log names routes and statuses, never content, passwords, tokens or secrets.
    log = (config_path.parent / "serve.log").read_text()
    assert "POST /api/v1/statuses 200" in log
    for secret in [*secrets_seen, "went for a walk", "anyone else awake", "low mood"]:
        assert secret not in log


def _authorize_through_form(url: str, username: str, password: str) -> str:
    """Fill in the server's HTML login form the way a person in a browser would."""
    session = requests.Session()
    page = session.get(url, timeout=10)
    assert page.status_code == 200, page.text
    form = re.search(r"<form[^>]*action=\"([^\"]*)\"", page.text)
    fields: dict[str, Any] = dict(
        re.findall(r"<input[^>]*type=\"hidden\"[^>]*name=\"([^\"]+)\"[^>]*value=\"([^\"]*)\"", page.text)
    )
    fields.update({"username": username, "password": password})
    action = form.group(1) if form else urlsplit(url).path
    target = action if action.startswith("http") else f"{urlsplit(url).scheme}://{urlsplit(url).netloc}{action}"
    answer = session.post(target, data=fields, allow_redirects=False, timeout=10)
    if answer.status_code in (301, 302, 303):
        return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    match = re.search(r"<code[^>]*>([^<]+)</code>", answer.text) or re.search(
        r"value=\"([A-Za-z0-9_-]{20,})\"", answer.text
    )
    assert match, answer.text
    return match.group(1)


def test_mastodon_py__admin_domain_blocks(live: tuple[Path, str], tmp_path: Path) -> None:
    """Mastodon.py's admin domain-block calls (what blocklist tools such as FediBlockHole use)."""
    config_path, admin_password = live
    scopes = ["read", "write", "admin:read", "admin:write"]
    with serving(config_path) as port:
        base = f"http://127.0.0.1:{port}"
        client_id, client_secret = Mastodon.create_app(
            "blocklist-tool", api_base_url=base, scopes=scopes, redirect_uris="urn:ietf:wg:oauth:2.0:oob"
        )
        admin = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base)
        admin.log_in("admin", admin_password, scopes=scopes, allow_http=True)
        created = admin.admin_create_domain_block(
            "spam.example", severity="suspend", reject_media=True, public_comment="spam, harassment"
        )
        assert (created.domain, created.severity, created.reject_media) == ("spam.example", "suspend", True)
        assert [b.domain for b in admin.admin_domain_blocks()] == ["spam.example"]
        updated = admin.admin_update_domain_block(created.id, severity="silence", reject_media=False)
        assert (updated.severity, updated.reject_media) == ("silence", False)
        assert admin.admin_domain_blocks(id=created.id).public_comment == "spam, harassment"
        with pytest.raises(MastodonAPIError, match="stricter limits"):
            admin.admin_create_domain_block("sub.spam.example", severity="noop")
        admin.admin_delete_domain_block(created.id)
        assert admin.admin_domain_blocks() == []


def test_mastodon_py__reports_account_actions_and_domain_allows(live: tuple[Path, str], tmp_path: Path) -> None:
    """Mastodon.py's member report call and its admin report, account-moderation and
    domain-allow calls, unmodified, against Hearthside."""
    config_path, admin_password = live
    scopes = ["read", "write", "follow", "admin:read", "admin:write"]
    with serving(config_path) as port:
        base = f"http://127.0.0.1:{port}"
        client_id, client_secret = Mastodon.create_app(
            "moderation-tool", api_base_url=base, scopes=scopes, redirect_uris="urn:ietf:wg:oauth:2.0:oob"
        )
        admin = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base)
        admin.log_in("admin", admin_password, scopes=scopes, allow_http=True)
        robin = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base)
        robin.log_in("robin", "robin's long password", scopes=["read", "write", "follow"], allow_http=True)

        # The admin reports robin's post; the report is in the queue.
        post = robin.status_post("something that breaks the rules")
        robin_account = robin.account_verify_credentials()
        report = admin.report(robin_account.id, status_ids=[post.id], comment="please look", category="other")
        assert report.target_account.id == robin_account.id and report.action_taken is False
        [queued] = admin.admin_reports()
        assert queued.id == report.id and queued.comment == "please look"
        assert [s.id for s in queued.statuses] == [post.id]
        assert admin.admin_report_assign(report.id).assigned_account.username == "admin"
        assert admin.admin_report_unassign(report.id).assigned_account is None

        # A warning tied to the report settles it; robin sees the moderation warning.
        admin.admin_account_moderate(robin_account.id, action=None, report_id=report.id, text="please be kind")
        assert admin.admin_report(report.id).action_taken is True
        assert admin.admin_reports() == [] and [r.id for r in admin.admin_reports(resolved=True)] == [report.id]
        assert admin.admin_report_reopen(report.id).action_taken is False
        assert admin.admin_report_resolve(report.id).action_taken is True
        warning = next(n for n in robin.notifications() if n.type == "moderation_warning")
        assert warning.moderation_warning.text == "please be kind"

        # Limit, then lift it.
        admin.admin_account_moderate(robin_account.id, action="silence", text="a break from public timelines")
        assert admin.admin_account(robin_account.id).silenced is True
        assert admin.admin_account_unsilence(robin_account.id).silenced is False

        # Domain allows.
        allowed = admin.admin_create_domain_allow("partner.example")
        assert [a.domain for a in admin.admin_domain_allows()] == ["partner.example"]
        assert admin.admin_domain_allow(allowed.id).domain == "partner.example"
        admin.admin_delete_domain_allow(allowed.id)
        assert admin.admin_domain_allows() == []
        with pytest.raises(MastodonNotFoundError):
            admin.admin_domain_allow(allowed.id)


def test_mastodon_py__moderator_handles_an_encrypted_message_report(
    live: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Members on the ``hearthside dm`` commands (separate processes, as on their own machines),
    a moderator on unmodified Mastodon.py: robin reveals one encrypted message sam sent; the
    admin report Mastodon.py reads carries it (verified) and only it, and acting on sam with
    the report named resolves it as for any report."""
    config_path, admin_password = live
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", "a passphrase for the moderation test")
    cfg = ["--config", str(config_path)]
    run("user", "create", "sam", "--password-stdin", *cfg, stdin="sam's long password\n")
    scopes = ["read", "write", "follow", "admin:read", "admin:write"]
    abusive = f"you are worthless {tmp_path.name}"
    with serving(config_path) as port:
        base = f"http://127.0.0.1:{port}"
        client_id, client_secret = Mastodon.create_app(
            "moderation-tool", api_base_url=base, scopes=scopes, redirect_uris="urn:ietf:wg:oauth:2.0:oob"
        )
        people = {}
        for name, password in (("robin", "robin's long password"), ("sam", "sam's long password")):
            people[name] = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base)
            people[name].log_in(name, password, scopes=["read", "write", "follow"], allow_http=True)
        robin_id, sam_id = (people[n].account_verify_credentials().id for n in ("robin", "sam"))
        people["robin"].account_follow(sam_id)
        people["sam"].account_follow(robin_id)  # the default policy: people robin follows may write

        profiles = {name: tmp_path / f"{name}-dm" for name in people}
        for name, password in (("robin", "robin's long password"), ("sam", "sam's long password")):
            run("dm", "--profile", str(profiles[name]), "login", base, name, "--password-stdin", stdin=password + "\n")
            run("dm", "--profile", str(profiles[name]), "setup")
        domain = f"127.0.0.1:{port}"
        run("dm", "--profile", str(profiles["sam"]), "send", f"@robin@{domain}", "hello robin")
        run("dm", "--profile", str(profiles["sam"]), "send", f"@robin@{domain}", abusive)
        read = run("dm", "--profile", str(profiles["robin"]), "--json", "read").stdout
        lines = [json.loads(line) for line in read.splitlines() if line.startswith("{")]
        assert [item["message"]["body"]["content"] for item in lines] == ["hello robin", abusive]
        run("dm", "--profile", str(profiles["robin"]), "report", lines[1]["id"], "--comment", "please look")

        admin = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base)
        admin.log_in("admin", admin_password, scopes=scopes, allow_http=True)
        [queued] = admin.admin_reports()
        assert queued.category == "e2ee_message" and queued.comment == "please look"
        assert queued.target_account.account.id == sam_id and queued.statuses == []
        [revealed] = queued.hearthside_encrypted_messages  # Mastodon.py keeps fields it does not know
        assert revealed.content == abusive and revealed.verified is True
        assert "hello robin" not in json.dumps(queued, default=str)  # only what robin revealed
        assert admin.admin_report_assign(queued.id).assigned_account.username == "admin"
        admin.admin_account_moderate(sam_id, action="silence", report_id=queued.id, text="not here")
        assert admin.admin_report(queued.id).action_taken is True
        assert admin.admin_reports() == []
        assert admin.admin_account(sam_id).silenced is True
