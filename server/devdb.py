"""A throwaway PostgreSQL cluster for the test suite and the benchmarks.

Starts ``initdb`` + ``pg_ctl`` from the machine's PostgreSQL binaries on 127.0.0.1 and a free
port, in a temporary directory, with durability switched off (the data is disposable), and
removes everything on ``stop``. ``initdb`` refuses to run as root, so as root it runs as the
``postgres`` system user that the Debian package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed (``make pg-binaries`` installs them)."""


def pg_bindir() -> Path:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        if (Path(out) / "initdb").exists():
            return Path(out)
    except (OSError, subprocess.CalledProcessError):
        pass
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise PostgresUnavailable("PostgreSQL server binaries not found: run `make pg-binaries`")
    return Path(candidates[-1]).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DevPostgres:
    port: int = 0
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hearthside-pg-")))
    user: str = "hearthside"

    def _run_as(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self, *, max_connections: int = 200) -> DevPostgres:
        bindir = pg_bindir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.port = self.port or free_port()
        data = self.root / "data"
        subprocess.run(
            [*self._run_as(), str(bindir / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections={max_connections}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        subprocess.run(
            [
                *self._run_as(),
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.root / "log"),
                "-o",
                options,
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        return self

    def stop(self) -> None:
        subprocess.run(
            [*self._run_as(), str(pg_bindir() / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"
