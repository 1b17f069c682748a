"""`hearthside subscribe`, `sync` and `drafts`, run as operators run them (a process per call),
against a Mastodon CSV block list served over HTTP from 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import run

pytestmark = pytest.mark.timeout(180)

CSV = "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    folder = tmp_path / "www"
    folder.mkdir()
    (folder / "blocks.csv").write_text(CSV + "spam.example,suspend,false,false,spam,false\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/blocks.csv", folder
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    data = tmp_path / "inst"
    run("init", "--data-dir", str(data), "--port", "18998", "--registrations", "closed")
    path = data / "hearthside.toml"
    text = path.read_text()
    assert "[federation]" in text
    path.write_text(text.replace("[federation]", "[federation]\nallow_private_addresses = true", 1))
    return path


def test_subscriptions_cli__subscribe_sync_and_accept_a_draft(instance: Path, served: tuple[str, Path]) -> None:
    url, _folder = served
    config = ["--config", str(instance)]
    created = json.loads(run("subscribe", url, "--weight", "3", "--json", *config).stdout)
    assert created["format"] == "mastodon_csv" and created["mode"] == "draft"
    result = json.loads(run("sync", created["id"], "--json", *config).stdout)
    assert result["status"] == "ok" and result["drafts"] == 1, result
    drafts = [json.loads(line) for line in run("drafts", "--json", *config).stdout.splitlines()]
    [draft] = [d for d in drafts if d["entity"] == "spam.example"]  # pending drafts are listed
    assert draft["action"] == "add" and draft["policy"] == "drop"
    exported = run("blocklist", "export", *config).stdout
    assert "spam.example" not in exported  # a draft changes nothing
    run("drafts", "accept", draft["id"], *config)
    assert "spam.example,suspend" in run("blocklist", "export", *config).stdout
    bad = run("drafts", "accept", "999", *config, check=False)
    assert bad.returncode != 0 and "999" in bad.stderr
