"""``hearthside dm``: end-to-end encrypted messages from the command line, for members.

Every command opens the member's encrypted store (``--profile``, default
``$HEARTHSIDE_DM_HOME`` or ``~/.local/share/hearthside/dm``) with a passphrase read from
``$HEARTHSIDE_DM_PASSPHRASE`` or asked for; keys never leave it. Output is plain text, or one
JSON object per line with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from crypto.errors import CryptoError, WrongPassphraseError
from server.dm.client import DmClient, DmError, spoken, valid_attachments
from server.dm.store import Store, StoreBusy, StoreMissing

DEFAULT_HOME = Path.home() / ".local" / "share" / "hearthside" / "dm"

NO_MODERATOR_ACCESS = (
    "Messages are end-to-end encrypted: nobody else, not even the moderators or admins of either "
    "server, can read them. If you report a message, you choose what to show your moderators."
)


def _passphrase(confirm: bool = False) -> str:
    value = os.environ.get("HEARTHSIDE_DM_PASSPHRASE")
    if value:
        return value
    value = getpass.getpass("Passphrase for your message store: ")
    if confirm and getpass.getpass("Repeat it: ") != value:
        raise DmError("the passphrases differ")
    if not value:
        raise DmError("a passphrase is needed to protect your keys")
    return value


def _home(args: argparse.Namespace) -> Path:
    return Path(args.profile or os.environ.get("HEARTHSIDE_DM_HOME") or DEFAULT_HOME)


def _store(args: argparse.Namespace, *, new: bool = False) -> Store:
    return Store(_home(args), _passphrase(confirm=new and not os.environ.get("HEARTHSIDE_DM_PASSPHRASE")))


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, ensure_ascii=False) if args.json else text)


def _with_client(work: Callable[[DmClient, argparse.Namespace], Awaitable[int]]) -> Callable[[argparse.Namespace], int]:
    """Open the store, run ``work`` with a client, save the store (also after a failure midway,
    so sessions that advanced are kept)."""

    def run(args: argparse.Namespace) -> int:
        store = _store(args)
        with store.locked():
            profile = store.load()

            async def go() -> int:
                async with DmClient(profile, persist=store.save) as client:
                    try:
                        return await work(client, args)
                    finally:
                        store.save(profile)
                        for notice in client.notices:
                            print(f"notice: {notice}", file=sys.stderr)

            return asyncio.run(go())

    return run


def cmd_login(args: argparse.Namespace) -> int:
    store = _store(args, new=True)
    taken = f"{store.path} exists already; use another --profile for another login"
    if store.exists():
        raise DmError(taken)
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    with store.locked():
        if store.exists():  # made meanwhile by another login
            raise DmError(taken)
        profile = asyncio.run(DmClient.login(args.server, args.username, password))
        store.save(profile)
    _emit(args, {"actor": profile.actor, "acct": profile.acct}, f"Logged in as {profile.acct} ({profile.actor}).")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    """Revoke this device and delete its store; ``--forget-here``: delete the store even when
    this device cannot revoke itself (it stays listed until revoked from another device)."""
    store = _store(args)
    with store.locked():
        return _logout(args, store)


def cmd_wipe(args: argparse.Namespace) -> int:
    """Panic wipe: overwrite and delete this profile's keys, messages and login at once, with
    no passphrase, no network and no waiting (research/e2ee.md §7.7)."""
    home = _home(args)
    store = Store(home, "")  # the passphrase is never needed: nothing is opened
    if not args.yes:
        print(
            f"hearthside dm: wipe deletes this device's keys, messages and login in {home} for good, without "
            "asking again; run `hearthside dm wipe --yes`",
            file=sys.stderr,
        )
        return 2
    removed = store.wipe()
    text = (
        f"Wiped {home}: {removed} file(s) overwritten and deleted. This device is still listed on your server: "
        "revoke it from another of your devices (`hearthside dm devices revoke ID`) or, with none, after setting up "
        "a new one with your recovery code. (Overwriting is best effort: some disks and file systems keep old "
        "copies until the space is reused.)"
        if removed
        else f"Nothing to wipe in {home}."
    )
    _emit(args, {"profile": str(home), "files_removed": removed}, text)
    return 0


def _logout(args: argparse.Namespace, store: Store) -> int:
    profile = store.load()
    device_id = profile.device.device_id if profile.device is not None else None

    async def go() -> str | None:
        async with DmClient(profile, persist=store.save) as client:
            problem = None
            if profile.device is not None:
                try:
                    await client.revoke_self()
                except DmError as exc:
                    if not args.forget_here:
                        raise
                    problem = str(exc)
            await client.revoke_token()  # the server forgets this login too
        return problem

    problem = asyncio.run(go())
    store.destroy()
    if device_id is None:
        text = "Logged out: nothing was set up here; the login is revoked and its store deleted."
    elif problem is None:
        text = f"Logged out: this device ({device_id}) is revoked and its keys and messages here are deleted."
        if profile.device is not None and profile.device.master is not None:
            text += " Your master key was here: keep your recovery code, you need it to approve new devices."
    else:
        text = (
            f"This device's keys and messages here are deleted, but it could not revoke itself ({problem}). Until "
            f"you do, {device_id} stays in your device list."
        )
    _emit(args, {"device_id": device_id, "revoked": problem is None, "store_deleted": True}, text)
    return 0


async def _setup(client: DmClient, args: argparse.Namespace) -> int:
    result = await client.setup(recovery_code=args.recovery_code, new_identity=args.new_identity)
    data = {"device_id": result.device_id, "state": result.state, "recovery_code": result.recovery_code}
    lines = [f"This device is {result.device_id} ({result.state})."]
    if result.recovery_code:
        lines += [
            "Your recovery code (write it down and keep it safe; it lets a new device join without this one):",
            f"  {result.recovery_code}",
        ]
    if result.state == "pending":
        lines.append(
            f"Approve it from a device you already use: `hearthside dm devices approve {result.device_id}`, "
            "or set it up with your recovery code."
        )
    lines.append(NO_MODERATOR_ACCESS)
    _emit(args, data, "\n".join(lines))
    return 0


def _message(args: argparse.Namespace) -> tuple[str, timedelta | None, list[Path]]:
    """What `send` and `reply` send: the text (standard input for none or "-"; "" for files
    alone), the disappearing-message time and the files to attach."""
    if args.text is None and args.attach:
        text = ""  # an attachment alone: the message names the files
    else:
        text = args.text if args.text not in (None, "-") else sys.stdin.read()
    return text.rstrip("\n"), _duration(args.expires) if args.expires else None, [Path(f) for f in args.attach or ()]


async def _send(client: DmClient, args: argparse.Namespace) -> int:
    text, expires, files = _message(args)
    if args.dm_command == "reply":
        message_id = await client.reply(args.message_id, text, expires_in=expires, files=files)
        shown = {"id": message_id, "reply_to": args.message_id}, f"Sent ({message_id}), answering {args.message_id}."
    else:
        message_id = await client.send(args.to, text, expires_in=expires, files=files)
        shown = {"id": message_id, "to": args.to}, f"Sent ({message_id})."
    _emit(args, *shown)
    _show_support(args, client.support)
    return 0


async def _react(client: DmClient, args: argparse.Namespace) -> int:
    if (args.emoji is None) == (not args.undo):
        raise DmError("give one emoji, or --undo to take your reaction back")
    target = await client.react(args.message_id, None if args.undo else args.emoji)
    _emit(
        args,
        {"id": target, "emoji": None if args.undo else args.emoji},
        f"Took back your reaction to {target}." if args.undo else f"Reacted {args.emoji} to {target}.",
    )
    return 0


def _show_support(args: argparse.Namespace, panels: list[dict[str, Any]]) -> None:
    """Support panels this device chose to show (docs/safety.md "Encrypted messages"): each
    kind once per command. Only on this screen; nothing about them is sent anywhere."""
    shown: set[str] = set()
    for panel in panels:
        if panel["kind"] in shown:
            continue
        shown.add(panel["kind"])
        lines = ["", panel["message"]]
        if panel.get("emergency"):
            lines.append(panel["emergency"])
        for line in panel.get("helplines", []):
            ways = ", ".join(f"{way} {line[way]}" for way in ("phone", "sms", "chat", "url") if line.get(way))
            hours = f" ({line['hours']})" if line.get("hours") else ""
            lines.append(f"  {line['name']}: {ways}{hours}")
        if not panel.get("helplines") and panel.get("directory_url"):
            lines.append(f"  Find a service near you: {panel['directory_url']}")
        if panel["kind"] == "supporter":
            lines.append(
                "If they are on your server and you are worried for their safety, `hearthside dm concern NAME` tells "
                "its trained responders (who, never what was said)."
            )
        lines.append("(`hearthside dm support off` stops these notes.)")
        _emit(args, {"support": panel}, "\n".join(lines))


async def _requests(client: DmClient, args: argparse.Namespace) -> int:
    if args.request_action == "accept":
        count = await client.accept(args.contact)
        _emit(args, {"contact": args.contact, "accepted": count}, f"Accepted {args.contact}: `read` shows {count}.")
        return 0
    if args.request_action == "delete":
        count = await client.decline(args.contact)
        _emit(
            args,
            {"contact": args.contact, "deleted": count},
            f"Deleted {count} request(s) from {args.contact}. (`hearthside dm block` stops them writing.)",
        )
        return 0
    await client.fetch()
    waiting = client.requests()
    for entry in waiting:
        lines = [f"{entry['peer']} ({len(entry['messages'])} message(s)):"]
        lines += ["  " + _line(client, item) for item in entry["messages"]]
        _emit(
            args,
            {"peer": entry["peer"], "messages": [_shown(client, i) for i in entry["messages"]]},
            "\n".join(lines),
        )
    if not waiting and not args.json:
        print("No message requests.")
    elif not args.json:
        print("`hearthside dm requests accept NAME` shows them as messages; `... delete NAME`, `block`, `report`.")
    return 0


async def _timer(client: DmClient, args: argparse.Namespace) -> int:
    after = None if args.duration == "off" else _duration(args.duration, option="timer")
    actor = await client.set_timer(args.contact, after)
    seconds = int(after.total_seconds()) if after is not None else None
    _emit(
        args,
        {"contact": args.contact, "actor": actor, "timer_seconds": seconds},
        f"Messages with {args.contact} now disappear {args.duration} after sending, for both of you."
        if after is not None
        else f"Disappearing messages are off with {args.contact}.",
    )
    return 0


async def _save(client: DmClient, args: argparse.Namespace) -> int:
    paths = await client.save_attachments(args.message_id, Path(args.to or "."))
    for path in paths:
        _emit(args, {"id": args.message_id, "path": str(path)}, f"Saved {path}")
    return 0


async def _edit(client: DmClient, args: argparse.Namespace) -> int:
    text = args.text if args.text not in (None, "-") else sys.stdin.read()
    new_id = await client.edit(args.message_id, text.rstrip("\n"))
    _emit(args, {"id": new_id, "edits": args.message_id}, f"Edited ({new_id} replaces {args.message_id}).")
    _show_support(args, client.support)
    return 0


async def _delete(client: DmClient, args: argparse.Namespace) -> int:
    if args.everyone:
        await client.delete_for_everyone(args.message_id)
        text = (
            f"Deleted {args.message_id} from every device it went to. (The recipient can still report it to "
            "their moderators for a week; they no longer see it.)"
        )
    else:
        client.delete(args.message_id)
        text = f"Deleted {args.message_id} from this device."
    _emit(args, {"id": args.message_id, "everyone": args.everyone}, text)
    return 0


async def _block(client: DmClient, args: argparse.Namespace) -> int:
    if args.undo:
        await client.unblock(args.contact)
        _emit(args, {"contact": args.contact, "blocked": False}, f"Unblocked {args.contact}.")
    else:
        await client.block(args.contact)
        _emit(
            args,
            {"contact": args.contact, "blocked": True},
            f"Blocked {args.contact}: neither of you can message the other now. To show your moderators what "
            "they sent, use `hearthside dm report`.",
        )
    return 0


async def _concern(client: DmClient, args: argparse.Namespace) -> int:
    answer = await client.concern(args.contact, args.comment or "")
    _emit(args, answer, answer.get("message") or "Sent to your instance's trained responders.")
    return 0


async def _support(client: DmClient, args: argparse.Namespace) -> int:
    if args.switch is not None:
        client.profile.support_panels = args.switch == "on"
        if not client.profile.support_panels:
            client.profile.support_kit = client.profile.support_kit_at = None
    on = client.profile.support_panels
    _emit(
        args,
        {"support_panels": on},
        "Support notes are on: when a message you send or receive may show someone is struggling, this device "
        "shows helplines (it reads the message here; nothing is sent anywhere)."
        if on
        else "Support notes are off.",
    )
    return 0


def _duration(text: str, *, option: str = "--expires") -> timedelta:
    """``30s``, ``10m``, ``2h``, ``7d``."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise DmError(f"{option}: give a duration such as 30s, 10m, 2h or 7d, not {text!r}")
    return timedelta(seconds=int(number) * units[unit])


def _line(client: DmClient, item: dict[str, Any]) -> str:
    message = item["message"]
    arrow = "->" if item["direction"] == "out" else "<-"
    peer = message["to"] if item["direction"] == "out" else message["from"]
    content = "(deleted by the sender)" if item.get("deleted_at") else message["body"].get("content", "")
    edited = " (edited)" if item.get("edits") else ""
    files = "".join(f" [file: {a['name']}, {a['size']} bytes]" for a in valid_attachments(message))
    answers = f"(answering {item['reply_to']}: {client.quote(item['reply_to'])}) " if item.get("reply_to") else ""
    reactions = "".join(
        f" [{emoji} {'them' if actor == item['peer'] else 'you'}]"
        for actor, emoji in client.reactions(item["id"]).items()
    )
    return f"{message['created']} {arrow} {peer}: {answers}{content}{edited}{files}{reactions}  [{item['id']}]"


def _shown(client: DmClient, item: dict[str, Any]) -> dict[str, Any]:
    """A history item as `read --json` prints it (a message its sender deleted: no text)."""
    data = {k: item[k] for k in ("id", "direction", "peer", "message")}
    if item.get("edits"):
        data["edits"] = item["edits"]
    if item.get("reply_to"):
        data["reply_to"] = item["reply_to"]
    reactions = client.reactions(item["id"])
    if reactions:
        data["reactions"] = reactions
    if item.get("deleted_at"):
        data["message"] = {**item["message"], "body": {"type": "Note", "content": ""}}
        data["deleted_at"] = item["deleted_at"]
    return data


async def _read(client: DmClient, args: argparse.Namespace) -> int:
    before = client.profile.undecryptable
    fresh = await client.receive()
    if args.all:
        items = client.profile.history
        if args.with_:
            actor = await client.resolve(args.with_)
            items = client.history_with(actor)
        # Requests wait in `requests`; a message corrected by an edit shows once, as edited.
        items = [i for i in items if not i.get("request") and not i.get("replaced_by")]
    else:
        # New messages, and earlier ones the other member has reacted to since.
        ids = {m.id for m in fresh} | set(client.reacted)
        items = [item for item in client.profile.history if item["id"] in ids]
    for item in items:
        _emit(args, _shown(client, item), _line(client, item))
    _show_support(args, client.support)
    if client.reacted and not args.all:
        print(
            "notice: to show your moderators a hurtful reaction: `hearthside dm report --reactions-on ID`",
            file=sys.stderr,
        )
    waiting = client.requests()
    if waiting:
        print(
            f"notice: message requests from {len(waiting)} sender(s) you don't know: `hearthside dm requests`",
            file=sys.stderr,
        )
    failed = client.profile.undecryptable - before
    if failed:
        print(f"notice: {failed} message(s) could not be decrypted or failed a check and were dropped", file=sys.stderr)
    if not items and not args.json:
        print("No new messages.")
    return 0


async def _keep(client: DmClient, args: argparse.Namespace) -> int:
    if args.period is not None:
        period = None if args.period == "forever" else _duration(args.period, option="keep")
        deleted = client.keep(period)
    else:
        deleted = client.purge_expired()
    seconds = client.profile.keep_seconds
    text = (
        f"Messages on this device are deleted {spoken(seconds)} after they were written"
        if seconds
        else "Messages on this device are kept until you delete them"
    )
    _emit(
        args,
        {"keep_seconds": seconds, "deleted": deleted},
        text + (f" ({deleted} deleted now)." if deleted else "."),
    )
    return 0


async def _search(client: DmClient, args: argparse.Namespace) -> int:
    peer = await client.resolve(args.with_) if args.with_ else None
    found = client.search(args.text, peer=peer)
    for item in found:
        _emit(args, _shown(client, item), _line(client, item))
    if not found and not args.json:
        print("Nothing found on this device.")
    return 0


async def _conversations(client: DmClient, args: argparse.Namespace) -> int:
    await client.fetch()  # new messages stay unread for `read`
    for entry in client.conversations():
        unread = f", {entry['unread']} unread" if entry["unread"] else ""
        timer = f", disappearing after {entry['timer_seconds']} s" if entry["timer_seconds"] else ""
        _emit(args, entry, f"{entry['peer']}  {entry['messages']} message(s){unread}{timer}, last {entry['last']}")
    return 0


async def _verify(client: DmClient, args: argparse.Namespace) -> int:
    if args.sas:
        return await _verify_sas(client, args)
    number = await client.safety_number(args.contact, accept_new_key=args.accept_new_key)
    if args.confirm:
        await client.mark_verified(args.contact)
    verified = client.device.is_verified(await client.resolve(args.contact))
    _emit(
        args,
        {"contact": args.contact, "safety_number": number, "verified": verified},
        f"Safety number with {args.contact}:\n  {number}\n"
        "Compare it with theirs (in person or on a call). If they match, run this again with --confirm."
        + ("\nVerified." if verified else ""),
    )
    return 0


async def _verify_sas(client: DmClient, args: argparse.Namespace) -> int:
    print(f"Waiting for {args.contact} to run the same command (up to 5 minutes)...", file=sys.stderr)

    async def confirm(emoji: tuple[tuple[str, str], ...], decimals: tuple[int, int, int]) -> bool:
        print("  ".join(f"{symbol} {name}" for symbol, name in emoji))
        print("  ".join(f"{number:04d}" for number in decimals))
        answer = await asyncio.to_thread(input, "Do they match what the other person sees? [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    verified = await client.verify_sas(args.contact, confirm)
    _emit(
        args,
        {"contact": args.contact, "verified": verified},
        f"Verified {args.contact}." if verified else "Not verified: you said they differ. The other side was told.",
    )
    return 0 if verified else 1


async def _devices(client: DmClient, args: argparse.Namespace) -> int:
    action = args.device_action
    if action == "approve" and not await client.approve(args.device_id):
        print(f"{args.device_id} was already approved.", file=sys.stderr)
    elif action == "revoke" and not await client.revoke(args.device_id):
        print(f"{args.device_id} was already revoked.", file=sys.stderr)
    listing = await client.devices()
    for device in listing["devices"]:
        mark = " (this device)" if device["current"] else ""
        _emit(args, device, f"{device['device_id']}  {device['state']}{mark}  since {device['created_at']}")
    return 0


async def _report(client: DmClient, args: argparse.Namespace) -> int:
    reactions_on = args.reactions_on or []
    answer = await client.report(
        args.message_ids, comment=args.comment or "", forward=args.forward, reactions_on=reactions_on
    )
    text = f"Reported {answer['messages']} message(s) and reaction(s) to your moderators (report {answer['id']})" + (
        ", and forwarded to the sender's server." if answer.get("forwarded") else "."
    )
    if args.block:
        chosen = {*args.message_ids, *reactions_on}
        sender = next(i["peer"] for i in client.profile.history if i["id"] in chosen)
        await client.block(sender)  # after the report: what was revealed is filed first
        answer = {**answer, "blocked": sender}
        text += f" Blocked {sender}: neither of you can message the other now."
    _emit(args, answer, text)
    return 0


def add_parser(sub: Any) -> None:
    dm = sub.add_parser("dm", help="end-to-end encrypted private messages (member tool)")
    dm.add_argument("--profile", help="folder of the encrypted key store (default: $HEARTHSIDE_DM_HOME)")
    dm.add_argument("--json", action="store_true", help="one JSON object per line")
    commands = dm.add_subparsers(dest="dm_command", required=True)

    p = commands.add_parser("login", help="log in to your Hearthside server")
    p.add_argument("server", help="your server's URL, e.g. https://example.org")
    p.add_argument("username")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(fn=cmd_login)

    p = commands.add_parser("logout", help="revoke this device and delete its keys and messages here")
    p.add_argument(
        "--forget-here",
        action="store_true",
        help="delete them here even if this device cannot revoke itself (no master key, or your only device)",
    )
    p.set_defaults(fn=cmd_logout)

    p = commands.add_parser(
        "wipe", help="at once, with no passphrase or network: overwrite and delete everything this profile keeps"
    )
    p.add_argument("--yes", action="store_true", help="really wipe (nothing asks again)")
    p.set_defaults(fn=cmd_wipe)

    p = commands.add_parser("setup", help="set up this device's keys")
    p.add_argument("--recovery-code", help="join with your recovery code instead of approval from another device")
    p.add_argument(
        "--new-identity",
        action="store_true",
        help="lost every device and the recovery code: start over (other devices are revoked; contacts are told "
        "your safety number changed)",
    )
    p.set_defaults(fn=_with_client(_setup))

    for name, first, what, helped in (
        ("send", "to", "name@server or an actor URL", "send a message"),
        ("reply", "message_id", "as `read` shows it", "answer a message (the reply shows which one it answers)"),
    ):
        p = commands.add_parser(name, help=helped)
        p.add_argument(first, help=what)
        p.add_argument("text", nargs="?", help="the message (default: standard input)")
        p.add_argument("--expires", help="disappearing message: deleted on every device after e.g. 10m, 2h, 7d")
        p.add_argument("--attach", action="append", metavar="FILE", help="attach a file, encrypted here (repeatable)")
        p.set_defaults(fn=_with_client(_send))

    p = commands.add_parser("react", help="react to a message with one emoji (or take your reaction back)")
    p.add_argument("message_id", help="as `read` shows it")
    p.add_argument("emoji", nargs="?", help="one emoji, e.g. 💛")
    p.add_argument("--undo", action="store_true", help="take your reaction back")
    p.set_defaults(fn=_with_client(_react))

    p = commands.add_parser("save", help="save a message's attachments (fetched, checked and decrypted here)")
    p.add_argument("message_id", help="as `read` shows it")
    p.add_argument("--to", help="folder to save into (default: the current one)")
    p.set_defaults(fn=_with_client(_save))

    p = commands.add_parser("read", help="fetch and show new messages")
    p.add_argument("--all", action="store_true", help="show the whole history kept on this device")
    p.add_argument("--with", dest="with_", help="only the conversation with this contact (with --all)")
    p.set_defaults(fn=_with_client(_read))

    p = commands.add_parser("keep", help="how long this device keeps messages (older ones are deleted here)")
    p.add_argument("period", nargs="?", help="e.g. 30d, 365d, or forever (default: show the setting)")
    p.set_defaults(fn=_with_client(_keep))

    p = commands.add_parser("search", help="search the messages kept on this device (no server can)")
    p.add_argument("text", help="words to look for, in any case")
    p.add_argument("--with", dest="with_", help="only the conversation with this contact")
    p.set_defaults(fn=_with_client(_search))

    commands.add_parser("conversations", help="list conversations").set_defaults(fn=_with_client(_conversations))

    p = commands.add_parser("verify", help="show the safety number with a contact")
    p.add_argument("contact")
    p.add_argument("--confirm", action="store_true", help="mark the contact verified (numbers matched)")
    p.add_argument(
        "--sas", action="store_true", help="compare 7 emoji with the contact, both running this at the same time"
    )
    p.add_argument(
        "--accept-new-key",
        action="store_true",
        help="a verified contact started over with a new master key: accept it (they become unverified)",
    )
    p.set_defaults(fn=_with_client(_verify))

    devices = commands.add_parser("devices", help="list, approve or revoke your devices")
    actions = devices.add_subparsers(dest="device_action")
    for name in ("approve", "revoke"):
        a = actions.add_parser(name)
        a.add_argument("device_id")
    devices.set_defaults(fn=_with_client(_devices))

    requests = commands.add_parser("requests", help="messages from people you don't know, waiting for you")
    choices = requests.add_subparsers(dest="request_action")
    for name in ("accept", "delete"):
        choices.add_parser(name).add_argument("contact", help="name@server or an actor URL")
    requests.set_defaults(fn=_with_client(_requests))

    p = commands.add_parser("timer", help="disappearing messages for a whole conversation, for both sides")
    p.add_argument("contact", help="name@server or an actor URL")
    p.add_argument("duration", help="e.g. 30s, 10m, 8h, 7d, or off")
    p.set_defaults(fn=_with_client(_timer))

    p = commands.add_parser("edit", help="correct a message you sent in the last 24 hours, on every device")
    p.add_argument("message_id", help="as `read --all` shows it")
    p.add_argument("text", nargs="?", help="the corrected message (default: standard input)")
    p.set_defaults(fn=_with_client(_edit))

    p = commands.add_parser("delete", help="delete a message from this device, or one you sent from every device")
    p.add_argument("message_id", help="as `read --all` shows it")
    p.add_argument(
        "--everyone", action="store_true", help="a message you sent in the last 24 hours: from every device it went to"
    )
    p.set_defaults(fn=_with_client(_delete))

    p = commands.add_parser("block", help="block a contact: neither of you can message the other")
    p.add_argument("contact", help="name@server or an actor URL")
    p.add_argument("--undo", action="store_true", help="unblock them")
    p.set_defaults(fn=_with_client(_block))

    p = commands.add_parser(
        "concern", help="worried about someone on your server? tell its trained responders (never what was said)"
    )
    p.add_argument("contact", help="name@server or an actor URL (a member of your own server)")
    p.add_argument("--comment", help="what worries you (optional; do not paste their messages unless you mean to)")
    p.set_defaults(fn=_with_client(_concern))

    p = commands.add_parser("support", help="support notes shown on this device when a message may show distress")
    p.add_argument("switch", nargs="?", choices=("on", "off"), help="turn them on or off (default: show the setting)")
    p.set_defaults(fn=_with_client(_support))

    p = commands.add_parser("report", help="reveal messages or reactions of one conversation to your moderators")
    p.add_argument(
        "message_ids",
        nargs="*",
        help="ids shown by `read --all`: messages they sent you, and any of yours to show as context",
    )
    p.add_argument(
        "--reactions-on",
        action="append",
        metavar="ID",
        help="also reveal this message (yours or theirs) and the other member's reactions to it (repeatable)",
    )
    p.add_argument("--comment", help="what happened (optional)")
    p.add_argument(
        "--forward",
        action="store_true",
        help="also send their revealed messages (never yours) to their server (it will learn that you reported them)",
    )
    p.add_argument("--block", action="store_true", help="and block the sender")
    p.set_defaults(fn=_with_client(_report))


def run(args: argparse.Namespace) -> int:
    try:
        code: int = args.fn(args)
    except (DmError, StoreMissing, StoreBusy) as exc:
        print(f"hearthside dm: {exc}", file=sys.stderr)
        return 2
    except WrongPassphraseError:
        print("hearthside dm: wrong passphrase", file=sys.stderr)
        return 2
    except CryptoError as exc:
        print(f"hearthside dm: {exc}", file=sys.stderr)
        return 2
    return code
