"""Configuration loading: every problem names the key; the example file is the schema's."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import SCHEMA, ConfigError, load_config, parse_config, render_toml

ROOT = Path(__file__).resolve().parent.parent


def test_example_config__documents_every_key_with_its_default() -> None:
    assert (ROOT / "config.example.toml").read_text() == render_toml()
    text = (ROOT / "config.example.toml").read_text()
    for section, (_doc, keys) in SCHEMA.items():
        assert f"[{section}]" in text
        for key in keys:
            assert f"# {key} = " in text


def test_example_config__loads_to_the_defaults(tmp_path: Path) -> None:
    config = load_config(ROOT / "config.example.toml", env={})
    for section, (_doc, keys) in SCHEMA.items():
        for key, spec in keys.items():
            assert config.get(section, key) == spec.default


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"instance": {"nmae": "x"}}, "instance.nmae: unknown key"),
        ({"instanse": {}}, "instanse: unknown section"),
        ({"server": {"port": "8080"}}, "server.port: must be an integer"),
        ({"server": {"port": 70000}}, "server.port: must be a TCP port"),
        ({"server": {"workers": "yes"}}, "server.workers: must be true or false"),
        ({"instance": {"base_url": "ftp://x.org"}}, "instance.base_url: must be an absolute http(s) URL"),
        ({"instance": {"base_url": "https://x.org/path"}}, "instance.base_url: must be an origin"),
        ({"instance": {"registrations": "sometimes"}}, "instance.registrations: must be one of"),
        ({"instance": {"languages": ["en", 3]}}, "instance.languages[1]: must be a string"),
        ({"database": {"url": "mysql://x"}}, "database.url: must be empty"),
        ({"server": {"port": True}}, "server.port: must be an integer"),
        ({"server": "oops"}, "server: must be a table"),
        ({"moderation": {"policy_url": "about"}}, "moderation.policy_url: must be empty or an absolute"),
        ({"moderation": {"appeals_contact": "mailto:nobody"}}, "moderation.appeals_contact: must be empty"),
        ({"moderation": {"threshold_drop": 0}}, "moderation.threshold_drop: must be at least 1"),
    ],
)
def test_parse_config__names_the_key_and_the_problem(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, env={})
    assert message in str(caught.value)


def test_secrets__come_from_the_environment() -> None:
    config = parse_config(
        {"security": {"secret_key": "env:MY_SECRET"}},
        env={"MY_SECRET": "s3cret", "HEARTHSIDE_DATABASE_URL": "postgresql://u:p@db/h"},
    )
    assert config.get("security", "secret_key") == "s3cret"
    assert config.database_url == "postgresql+asyncpg://u:p@db/h"


def test_secrets__missing_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError, match=r"security.secret_key: environment variable NOPE is not set"):
        parse_config({"security": {"secret_key": "env:NOPE"}}, env={})


def test_load_config__bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_data_dir__relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "h.toml"
    path.parent.mkdir()
    path.write_text('[storage]\ndata_dir = "state"\n')
    config = load_config(path, env={})
    assert config.data_dir == (tmp_path / "conf" / "state").resolve()
    assert config.database_url == f"sqlite+aiosqlite:///{config.data_dir / 'hearthside.sqlite3'}"
