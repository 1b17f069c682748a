"""The ``hearthside`` operator command.

    hearthside init [--data-dir DIR] [--domain HOST[:PORT]] [--host ADDR] [--port N]
    hearthside serve | migrate | doctor          [--config FILE]
    hearthside user create|promote|suspend|unsuspend|verify ...
    hearthside group create NAME --owner USERNAME ...
    hearthside invite create [--max-uses N] [--expires-days D]
    hearthside config-example

The configuration file is found from ``--config``, else ``$HEARTHSIDE_CONFIG``, else
``data/hearthside.toml``. ``init`` writes it (with ``data_dir = "."``, so an instance is one
folder), creates the secret key and the instance keys (mode 0600), migrates the database and
creates the admin account, printing its first-login password once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import stat
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from server.config import Config, ConfigError, load_config, parse_config, render_toml

DEFAULT_DATA_DIR = "data"
CONFIG_NAME = "hearthside.toml"


class CliError(Exception):
    """A problem the operator must fix; printed without a traceback, exit status 2."""


def _config_path(args: argparse.Namespace) -> Path:
    if getattr(args, "config", None):
        return Path(args.config)
    if os.environ.get("HEARTHSIDE_CONFIG"):
        return Path(os.environ["HEARTHSIDE_CONFIG"])
    return Path(DEFAULT_DATA_DIR) / CONFIG_NAME


def _load(args: argparse.Namespace) -> Config:
    return load_config(_config_path(args))


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _base_url_for(domain: str) -> str:
    host = domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain
    local = host in ("localhost", "::1") or host.startswith("127.") or host.endswith(".localhost")
    return f"{'http' if local else 'https'}://{domain}"


async def _with_engine(config: Config, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    from server.db import make_engine

    engine = make_engine(config.database_url, pool_size=2)
    try:
        return await fn(engine)
    finally:
        await engine.dispose()


def cmd_init(args: argparse.Namespace) -> int:
    from crypto.keys import generate_ed25519, generate_rsa

    data_dir = Path(args.data_dir).resolve()
    config_path = data_dir / CONFIG_NAME
    if config_path.exists():
        raise CliError(f"{config_path} exists already: this instance is initialised (use `hearthside serve`)")
    domain = args.domain or f"{args.host}:{args.port}"
    overrides: dict[str, dict[str, Any]] = {
        "instance": {"base_url": args.base_url or _base_url_for(domain), "registrations": args.registrations},
        "server": {"host": args.host, "port": args.port},
        "storage": {"data_dir": "."},
    }
    if args.database_url:
        overrides["database"] = {"url": args.database_url}
    text = render_toml(overrides)
    parse_config(__import__("tomllib").loads(text), path=config_path)  # validate before writing anything
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    _write_private(config_path, text)
    config = load_config(config_path)
    _write_private(data_dir / "secret_key", secrets.token_urlsafe(48) + "\n")
    rsa = generate_rsa()
    ed = generate_ed25519()
    _write_private(data_dir / "keys" / "instance-rsa.pem", rsa.private_pem)
    _write_private(data_dir / "keys" / "instance-ed25519.pem", ed.private_pem)
    password = secrets.token_urlsafe(15)

    async def setup(engine: Any) -> None:
        from server import migrate
        from server.accounts import create_local_user, password_hasher
        from server.db import make_sessionmaker

        await migrate.upgrade(engine)
        async with make_sessionmaker(engine)() as session:
            user, _account = await create_local_user(
                session,
                password_hasher(config),
                username=config.get("instance", "admin_username"),
                password=password,
                role="admin",
                reserved_ok=True,
            )
            user.must_change_password = True
            await session.commit()

    asyncio.run(_with_engine(config, setup))
    print(f"Initialised a Hearthside instance in {data_dir}")
    print(f"  config:   {config_path}")
    print(f"  database: {'SQLite in the data directory' if not args.database_url else 'as configured'}")
    print(f"  public URL: {config.base_url}")
    print()
    print("Admin account (shown only this once; change the password after the first login):")
    print(f"  username: {config.get('instance', 'admin_username')}")
    print(f"  password: {password}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from server.app import create_app
    from server.logs import setup_logging

    config = _load(args)
    setup_logging(config.get("logging", "level"), config.get("logging", "format"))
    problem = asyncio.run(_schema_problem(config))
    if problem:
        raise CliError(problem)
    from server.safety import warn_stale_helplines

    warn_stale_helplines(config)
    host = args.host or config.get("server", "host")
    port = args.port or config.get("server", "port")
    processes = args.processes or config.get("server", "processes")
    print(f"Hearthside serving {config.base_url} on http://{host}:{port} (Ctrl-C stops)", flush=True)
    if processes <= 1:
        web.run_app(create_app(config), host=host, port=port, print=None, access_log=None, handle_signals=True)
        return 0
    return _serve_processes(config, host, port, processes)


def _serve_processes(config: Config, host: str, port: int, processes: int) -> int:
    """N web processes on one port (the kernel spreads connections, SO_REUSEPORT); the first
    also runs the background workers. SIGTERM/SIGINT to the parent stops them all."""
    import os
    import signal

    from aiohttp import web

    from server.app import create_app
    from server.config import with_overrides

    children: list[int] = []
    for index in range(processes):
        pid = os.fork()
        if pid == 0:  # child: its own event loop, engine and workers (or none)
            own = config if index == 0 else with_overrides(config, server={"workers": False})
            web.run_app(
                create_app(own), host=host, port=port, print=None, access_log=None, handle_signals=True, reuse_port=True
            )
            os._exit(0)
        children.append(pid)

    def stop(signum: int, _frame: Any) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    for pid in children:
        _, code = os.waitpid(pid, 0)
        status = status or (code >> 8)
    return status


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the background workers only (inbox, deliveries, jobs), until SIGTERM or Ctrl-C.

    Several ``worker`` processes may share one PostgreSQL database: rows are claimed with
    ``FOR UPDATE SKIP LOCKED`` (DESIGN.md, Storage and processes).
    """
    import signal

    from server.db import make_engine, make_sessionmaker
    from server.logs import setup_logging
    from server.runner import running_federation

    config = _load(args)
    setup_logging(config.get("logging", "level"), config.get("logging", "format"))
    problem = asyncio.run(_schema_problem(config))
    if problem:
        raise CliError(problem)

    async def main() -> None:
        engine = make_engine(config.database_url, pool_size=config.get("database", "pool_size"))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            async with running_federation(config, make_sessionmaker(engine), workers=True):
                print(f"Hearthside workers running for {config.base_url} (Ctrl-C stops)", flush=True)
                await stop.wait()
        finally:
            await engine.dispose()

    asyncio.run(main())
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Replace an actor's RSA and Ed25519 keys and announce the new ones with ``Update``.

    Old keys stay in the database marked revoked (their ids renamed), so what they signed can
    be explained but never verifies again.
    """
    from sqlalchemy import select

    from server import outbox
    from server.actor_keys import rotate_keys
    from server.models import Account

    config = _load(args)

    async def run(engine: Any) -> str:
        from server.db import make_sessionmaker

        async with make_sessionmaker(engine)() as session:
            account = await session.scalar(
                select(Account).where(Account.username_lower == args.username.lower(), Account.domain == "")
            )
            if account is None or account.deleted_at is not None:
                raise CliError(f"no local account or group named {args.username!r}")
            keys = await rotate_keys(session, config, account)
            await session.flush()
            await outbox.federate_profile(session, config, account)
            await session.commit()
            return keys.rsa_key_id

    key_id: str = asyncio.run(_with_engine(config, run))
    print(f"new keys for {args.username}: {key_id} (Update queued for remote followers)")
    return 0


async def _schema_problem(config: Config) -> str | None:
    from sqlalchemy import text

    from server.migrate import head_revision

    async def check(engine: Any) -> str | None:
        try:
            async with engine.connect() as conn:
                current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one_or_none()
        except Exception as exc:  # reported to the operator by type; the message may hold the URL
            return f"database is not ready ({type(exc).__name__}): run `hearthside migrate`"
        if current != head_revision():
            return f"database schema is at {current}, code expects {head_revision()}: run `hearthside migrate`"
        return None

    result: str | None = await _with_engine(config, check)
    return result


def cmd_migrate(args: argparse.Namespace) -> int:
    from server import migrate

    config = _load(args)
    asyncio.run(_with_engine(config, migrate.upgrade))
    print(f"database at revision {migrate.head_revision()}")
    return 0


async def _session_do(config: Config, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    from server import feeds
    from server.db import make_sessionmaker

    async def run(engine: Any) -> Any:
        feeds.use_config(engine, config)  # decisions changed here are published (docs/moderation.md)
        async with make_sessionmaker(engine)() as session:
            result = await fn(session)
            await session.commit()
            return result

    return await _with_engine(config, run)


async def _find_local(session: Any, username: str, *, group: bool = False) -> Any:
    from sqlalchemy import select

    from server.models import Account

    account = (
        await session.execute(select(Account).where(Account.username_lower == username.lower(), Account.domain == ""))
    ).scalar_one_or_none()
    if account is None or account.is_group != group:
        raise CliError(f"no local {'group' if group else 'account'} named {username!r}")
    return account


def cmd_user(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from server.accounts import create_local_user, password_hasher
    from server.errors import ApiError
    from server.models import User
    from server.web import now

    config = _load(args)

    async def act(session: Any) -> str:
        if args.action == "create":
            password = sys.stdin.readline().rstrip("\n") if args.password_stdin else secrets.token_urlsafe(15)
            try:
                await create_local_user(
                    session,
                    password_hasher(config),
                    username=args.username,
                    password=password,
                    email=args.email,
                    role=args.role,
                )
            except ApiError as exc:
                raise CliError(exc.message) from None
            return f"created {args.username} ({args.role})" + ("" if args.password_stdin else f"; password: {password}")
        account = await _find_local(session, args.username)
        user = (await session.execute(select(User).where(User.account_id == account.id))).scalar_one_or_none()
        if args.action == "promote":
            if user is None:
                raise CliError(f"{args.username} has no login")
            user.role = args.role
            return f"{args.username} is now {args.role}"
        if args.action == "suspend":
            account.suspended_at = account.suspended_at or now()
            return f"{args.username} suspended"
        if args.action == "unsuspend":
            account.suspended_at = None
            return f"{args.username} unsuspended"
        if args.action == "verify":
            account.verified_professional = not args.remove
            return f"{args.username} verified professional: {'no' if args.remove else 'yes'}"
        if args.action == "approve":
            if user is None:
                raise CliError(f"{args.username} has no login")
            user.approved = True
            return f"{args.username} approved"
        raise CliError(f"unknown action {args.action}")

    print(asyncio.run(_session_do(config, act)))
    return 0


def cmd_group(args: argparse.Namespace) -> int:
    from server.errors import ApiError
    from server.groups import create_group

    config = _load(args)

    async def act(session: Any) -> str:
        owner = await _find_local(session, args.owner)
        try:
            view = await create_group(
                session,
                owner=owner,
                name=args.name,
                display_name=args.display_name or "",
                description=args.description or "",
                join_policy=args.join_policy,
                members_only=args.members_only,
                language=args.language,
                topic_tags=args.tag or [],
            )
        except ApiError as exc:
            raise CliError(exc.message) from None
        return f"created group {view.account.username} (id {view.account.id}) owned by {owner.username}"

    print(asyncio.run(_session_do(config, act)))
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from crypto.tokens import new_code
    from server.ids import new_id
    from server.models import Invite
    from server.web import now

    config = _load(args)

    async def act(session: Any) -> str:
        code = new_code()
        moment = now()
        session.add(
            Invite(
                id=new_id(),
                code=code,
                max_uses=args.max_uses,
                uses=0,
                created_at=moment,
                expires_at=moment + timedelta(days=args.expires_days) if args.expires_days else None,
            )
        )
        return f"invite code: {code}\nsign-up link: {config.base_url}/invite/{code}"

    print(asyncio.run(_session_do(config, act)))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the configuration, database, keys and listen port; exit 1 if anything fails."""
    from crypto.errors import KeyFormatError
    from crypto.keys import describe_private_key

    results: list[tuple[bool, str]] = []
    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"FAIL config: {exc}")
        return 1
    results.append((True, f"config: {config.path} is valid"))
    data_dir = config.data_dir
    results.append((os.access(data_dir, os.W_OK), f"data directory {data_dir} is writable"))
    for name, expected in (("instance-rsa.pem", "RSA-2048"), ("instance-ed25519.pem", "Ed25519")):
        path = data_dir / "keys" / name
        try:
            kind = describe_private_key(path.read_text())
            mode = stat.S_IMODE(path.stat().st_mode)
            ok = kind == expected and mode & 0o077 == 0
            results.append((ok, f"key {name}: {kind}, mode {mode:o}" + ("" if ok else f" (want {expected}, mode 600)")))
        except (OSError, KeyFormatError) as exc:
            results.append((False, f"key {name}: {type(exc).__name__}: unreadable"))
    problem = asyncio.run(_schema_problem(config))
    results.append((problem is None, problem or "database reachable and migrated"))
    host, port = config.get("server", "host"), config.get("server", "port")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
            results.append((True, f"port {host}:{port} is free"))
        except OSError:
            results.append((False, f"port {host}:{port} is in use (another instance running?)"))
    for ok, message in results:
        print(f"{'ok  ' if ok else 'FAIL'} {message}")
    from server.safety import helpline_warnings  # a warning, not a failure: helplines past review

    print("".join(f"WARN {warning}\n" for warning in helpline_warnings(config)), end="")
    return 0 if all(ok for ok, _ in results) else 1


def cmd_blocklist(args: argparse.Namespace) -> int:
    """Import (preview by default) or export the domain blocklist (Mastodon CSV and friends)."""
    import json
    from pathlib import Path

    from moderation.formats import FormatError, import_blocklist
    from server import blocklists
    from server.web import now

    config = _load(args)
    if args.action == "export":

        async def export(session: Any) -> str:
            return await blocklists.export(session)

        text = asyncio.run(_session_do(config, export))
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0
    path = Path(args.file)
    try:
        result = import_blocklist(path.read_bytes(), args.content_type)
    except FormatError as exc:
        raise CliError(f"{path}: {exc}") from None
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None

    async def act(session: Any) -> dict[str, Any]:
        plan = await blocklists.preview(session, result.rows)
        summary: dict[str, Any] = {"format": result.format, **plan.to_json()}
        summary["problems"] = [{"line": p.line, "message": p.message} for p in result.problems]
        if args.apply:
            summary["applied"] = await blocklists.apply(
                session, plan, actor_account_id=None, source=f"import:{path.name}", at=now()
            )
        return summary

    summary = asyncio.run(_session_do(config, act))
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(
            f"{summary['format']}: {len(summary['added'])} to add, {len(summary['changed'])} to make stricter, "
            f"{len(summary['covered'])} already covered, {len(summary['problems'])} rows with problems"
        )
        for problem in summary["problems"][:20]:
            print(f"  line {problem['line']}: {problem['message']}")
        for domain, count in summary["severed_follows"].items():
            print(f"  suspending {domain} would end {count} follow relationship(s) of local members")
        print("applied" if args.apply else "nothing changed (preview); add --apply to import")
    return 0


def cmd_config_example(args: argparse.Namespace) -> int:
    sys.stdout.write(render_toml())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hearthside", description="Run and administer a Hearthside instance.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", help="configuration file (default: $HEARTHSIDE_CONFIG or data/hearthside.toml)")
        return p

    p = sub.add_parser("init", help="create a new instance in a data directory")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    p.add_argument("--domain", help="public host[:port] (default: host:port)")
    p.add_argument("--base-url", help="public origin, overrides --domain (e.g. https://example.org)")
    p.add_argument("--host", default="127.0.0.1", help="listen address")
    p.add_argument("--port", type=int, default=8080, help="listen port")
    p.add_argument("--registrations", default="approval", choices=["open", "approval", "invite", "closed"])
    p.add_argument("--database-url", help="PostgreSQL URL instead of the embedded SQLite")
    p.set_defaults(fn=cmd_init)

    p = with_config(sub.add_parser("serve", help="run the web server (and workers)"))
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--processes", type=int, help="web processes sharing the port (default: server.processes)")
    p.set_defaults(fn=cmd_serve)
    with_config(sub.add_parser("worker", help="run the background workers only")).set_defaults(fn=cmd_worker)
    keys = sub.add_parser("keys", help="actor signing keys").add_subparsers(dest="keys_command", required=True)
    p = with_config(keys.add_parser("rotate", help="replace an actor's keys and announce them"))
    p.add_argument("username")
    p.set_defaults(fn=cmd_keys_rotate)

    with_config(sub.add_parser("migrate", help="bring the database schema up to date")).set_defaults(fn=cmd_migrate)
    with_config(sub.add_parser("doctor", help="check config, database, keys and port")).set_defaults(fn=cmd_doctor)
    sub.add_parser("config-example", help="print a documented configuration file").set_defaults(fn=cmd_config_example)

    user = sub.add_parser("user", help="manage accounts").add_subparsers(dest="action", required=True)
    p = with_config(user.add_parser("create"))
    p.add_argument("username")
    p.add_argument("--email")
    p.add_argument("--role", default="member", choices=["admin", "moderator", "member"])
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(fn=cmd_user)
    p = with_config(user.add_parser("promote"))
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=["admin", "moderator", "member"])
    p.set_defaults(fn=cmd_user)
    for action in ("suspend", "unsuspend", "approve"):
        p = with_config(user.add_parser(action))
        p.add_argument("username")
        p.set_defaults(fn=cmd_user)
    p = with_config(user.add_parser("verify", help="mark an account as a verified professional"))
    p.add_argument("username")
    p.add_argument("--remove", action="store_true")
    p.set_defaults(fn=cmd_user)

    group = sub.add_parser("group", help="manage groups").add_subparsers(dest="action", required=True)
    p = with_config(group.add_parser("create"))
    p.add_argument("name")
    p.add_argument("--owner", required=True)
    p.add_argument("--display-name")
    p.add_argument("--description")
    p.add_argument("--join-policy", default="open", choices=["open", "approval", "invite"])
    p.add_argument("--members-only", action="store_true")
    p.add_argument("--language", default="en")
    p.add_argument("--tag", action="append", help="topic tag (repeatable)")
    p.set_defaults(fn=cmd_group)

    invite = sub.add_parser("invite", help="manage invite codes").add_subparsers(dest="action", required=True)
    p = with_config(invite.add_parser("create"))
    p.add_argument("--max-uses", type=int)
    p.add_argument("--expires-days", type=int)
    p.set_defaults(fn=cmd_invite)

    blocklist = sub.add_parser("blocklist", help="import or export the domain blocklist").add_subparsers(
        dest="action", required=True
    )
    p = with_config(blocklist.add_parser("import", help="Mastodon or FediBlockHole CSV, plain list, or JSON"))
    p.add_argument("file")
    p.add_argument("--apply", action="store_true", help="write the changes (default: only show them)")
    p.add_argument("--content-type", help="the file's media type, when detection needs help")
    p.add_argument("--json", action="store_true", help="print the preview as JSON")
    p.set_defaults(fn=cmd_blocklist)
    p = with_config(blocklist.add_parser("export", help="Mastodon's domain_blocks.csv"))
    p.add_argument("--output", "-o", help="file to write (default: standard output)")
    p.set_defaults(fn=cmd_blocklist)

    from server.dm import cli as dm_cli

    dm_cli.add_parser(sub)
    __import__("server.subscriptions_cli", fromlist=["add_parser"]).add_parser(sub)  # subscribe, sync, drafts
    __import__("server.feeds_cli").feeds_cli.add_parser(sub)
    __import__("server.safety_cli").safety_cli.add_parser(sub)  # safety scan
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "dm":
        from server.dm import cli as dm_cli

        return dm_cli.run(args)
    try:
        code: int = args.fn(args)
    except (CliError, ConfigError) as exc:
        print(f"hearthside: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
