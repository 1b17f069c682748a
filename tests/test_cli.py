"""The `hearthside` operator command, run as operators run it: a real process per call."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PgServer, _free_port, _pg_admin, wait_for_port

HEARTHSIDE = [sys.executable, "-m", "server"]


def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*HEARTHSIDE, *args], capture_output=True, text=True, input=stdin, timeout=120, env={**os.environ}
    )
    if check and result.returncode != 0:
        raise AssertionError(f"hearthside {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


@pytest.fixture(params=["sqlite", "postgres"])
async def instance(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return (await init_instance(request, tmp_path))[0]


async def init_instance(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """`hearthside init` a fresh instance on a free port; returns (config path, admin password)."""
    data = tmp_path / "inst"
    port = _free_port()
    extra: list[str] = []
    if request.param == "postgres":
        pg: PgServer = request.getfixturevalue("pg_server")
        name = f"cli_{port}"
        await _pg_admin(pg, f"CREATE DATABASE {name}")
        extra = ["--database-url", pg.url(name)]
    result = run("init", "--data-dir", str(data), "--port", str(port), "--registrations", "open", *extra)
    assert result.stdout.count("password: ") == 1
    password = result.stdout.split("password: ")[1].split()[0]
    return data / "hearthside.toml", password


@contextlib.contextmanager
def serving(config_path: Path, *extra: str) -> Iterator[int]:
    """Run `hearthside serve` for the block; yields the port. Stops it with SIGINT."""
    port = int(config_path.read_text().split("\nport = ")[1].split("\n")[0])
    log = config_path.parent / "serve.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([*HEARTHSIDE, "serve", "--config", str(config_path), *extra], stdout=sink, stderr=sink)
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_init__creates_config_keys_database_and_admin(instance: Path) -> None:
    data = instance.parent
    assert oct(data.stat().st_mode & 0o777) == "0o700"
    for name in ("hearthside.toml", "secret_key", "keys/instance-rsa.pem", "keys/instance-ed25519.pem"):
        assert (data / name).stat().st_mode & 0o077 == 0, name
    doctor = run("doctor", "--config", str(instance))
    assert "FAIL" not in doctor.stdout
    assert doctor.stdout.count("ok ") >= 6


def test_init__refuses_to_overwrite_an_instance(instance: Path) -> None:
    again = run("init", "--data-dir", str(instance.parent), check=False)
    assert again.returncode == 2
    assert "initialised" in again.stderr


def test_doctor__reports_a_broken_key(instance: Path) -> None:
    (instance.parent / "keys" / "instance-rsa.pem").write_text("garbage")
    doctor = run("doctor", "--config", str(instance), check=False)
    assert doctor.returncode == 1
    assert "FAIL key instance-rsa.pem" in doctor.stdout


def test_config_error__names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "h.toml"
    bad.write_text("[server]\nprot = 8080\n")
    result = run("doctor", "--config", str(bad), check=False)
    assert result.returncode == 1
    assert "server.prot: unknown key" in result.stdout


def test_user_group_invite_commands(instance: Path) -> None:
    cfg = ["--config", str(instance)]
    created = run("user", "create", "robin", "--password-stdin", *cfg, stdin="a long password\n")
    assert "created robin (member)" in created.stdout
    assert "a long password" not in created.stdout
    dup = run("user", "create", "ROBIN", *cfg, check=False)
    assert dup.returncode == 2 and "already taken" in dup.stderr
    assert "robin is now moderator" in run("user", "promote", "robin", "--role", "moderator", *cfg).stdout
    assert "robin suspended" in run("user", "suspend", "robin", *cfg).stdout
    assert "verified professional: yes" in run("user", "verify", "admin", *cfg).stdout
    group = run("group", "create", "anxiety_support", "--owner", "admin", "--members-only", *cfg)
    assert "created group anxiety_support" in group.stdout
    missing = run("group", "create", "other", "--owner", "nobody", *cfg, check=False)
    assert missing.returncode == 2 and "no local account named 'nobody'" in missing.stderr
    invite = run("invite", "create", "--max-uses", "3", *cfg)
    assert "invite code: " in invite.stdout


def test_serve__answers_health_and_instance(instance: Path) -> None:
    with serving(instance) as port:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            body: Any = json.load(response)
        assert body == {"status": "ok"}
    text = (instance.parent / "serve.log").read_text()
    assert "GET /readyz 200" in text  # access log: route template and status, nothing else


def test_serve__two_processes_share_the_port_and_stop_together(instance: Path) -> None:
    """``serve --processes 2``: both answer on one port (SO_REUSEPORT); SIGINT stops both."""
    with serving(instance, "--processes", "2") as port:
        for _ in range(20):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
                assert json.load(response) == {"status": "ok"}
        children = subprocess.run(["pgrep", "-f", f"serve --config {instance}"], capture_output=True, text=True)
        assert len(children.stdout.split()) == 3  # the parent and two web processes
    left = subprocess.run(["pgrep", "-f", f"serve --config {instance}"], capture_output=True, text=True)
    assert left.stdout.split() == []
