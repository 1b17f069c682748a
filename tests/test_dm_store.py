"""The member's encrypted local store (server/dm/store.py), written in parts.

Real files in a temporary folder and the real sealing (Argon2id at libsodium's minimum cost, so
the file runs in seconds). What is checked: a round trip; a save writes only the parts that
changed (a new message, a deletion, a change deep inside an old message); a crash at any step
of a save leaves the store as before or as after it; a part that is missing, altered, swapped
or rolled back is refused; format 1 stores still open; message ids chosen by a sender cannot
cut the history into tiny parts.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crypto.devicelist import MasterKey
from crypto.errors import StoreError, WrongPassphraseError
from crypto.messaging import DeviceState
from crypto.secretstore import TEST_PARAMS, StoreKey
from server.cli import main as cli_main
from server.dm import store as store_module
from server.dm.store import PART_MAX, PART_MIN, Profile, Store, StoreBusy, StoreMissing, StoreWiped

PASSPHRASE = "correct horse battery staple"
ACTOR = "https://a.example/users/alice"


def item(n: int, text: str = "", message_id: str | None = None) -> dict[str, Any]:
    return {
        "id": message_id or str(uuid.UUID(int=n, version=4)),
        "direction": "in",
        "peer": "https://b.example/users/bob",
        "message": {
            "from": "https://b.example/users/bob",
            "to": ACTOR,
            "body": {"type": "Note", "content": text or f"m{n}"},
        },
        "unread": True,
    }


def profile(count: int) -> Profile:
    device = DeviceState.create(actor=ACTOR, device_id="ALICE01", master=MasterKey.generate())
    found = Profile(
        server="https://a.example", token="secret-token", actor=ACTOR, acct="alice@a.example", device=device
    )
    found.history = [item(n) for n in range(count)]
    return found


def parts(folder: Path) -> set[str]:
    return {p.name for p in (folder / store_module.HISTORY_DIR).iterdir()}


def listed(folder: Path) -> list[str]:
    """The file names of the parts the main file lists, in order (opened with the passphrase,
    as a test may): each part's file is named by the SHA-256 of its sealed bytes."""
    _, plaintext = StoreKey.open(PASSPHRASE, (folder / store_module.STORE_NAME).read_bytes())
    return [f"{digest}.part" for digest in json.loads(plaintext)["history_parts"]]


def opened(folder: Path) -> Profile:
    return Store(folder, PASSPHRASE, params=TEST_PARAMS).load()


def test_a_store_round_trips_and_keeps_no_history_in_its_main_file(tmp_path: Path) -> None:
    original = profile(2000)
    original.history[5]["text"] = "a lone surrogate \ud800 is kept too"
    Store(tmp_path, PASSPHRASE, params=TEST_PARAMS).save(original)
    loaded = opened(tmp_path)
    assert loaded.history == original.history
    assert loaded.device is not None and loaded.device.to_json() == original.device.to_json()  # type: ignore[union-attr]
    assert (loaded.token, loaded.actor) == ("secret-token", ACTOR)
    assert 2000 // PART_MAX <= len(listed(tmp_path)) <= 2000 // PART_MIN + 1
    assert len(parts(tmp_path)) == len(listed(tmp_path))
    _, main = StoreKey.open(PASSPHRASE, (tmp_path / store_module.STORE_NAME).read_bytes())
    assert "history" not in json.loads(main)
    for path in [tmp_path / store_module.STORE_NAME, *(tmp_path / store_module.HISTORY_DIR).iterdir()]:
        assert b"m1999" not in path.read_bytes() and b"secret-token" not in path.read_bytes()  # sealed
        assert path.stat().st_mode & 0o777 == 0o600


def test_a_save_writes_only_the_parts_that_changed(tmp_path: Path) -> None:
    store = Store(tmp_path, PASSPHRASE, params=TEST_PARAMS)
    member = profile(3000)
    store.save(member)
    before = parts(tmp_path)
    assert len(before) > 5

    member.history.append(item(3000))  # a new message: the last part only
    store.save(member)
    assert len(parts(tmp_path) - before) == 1 and len(before - parts(tmp_path)) == 1

    # A deletion inside a part that ended at a boundary (below the maximum) and keeps more
    # than the minimum: its boundary stays where it was, so that part alone changes.
    counts = sizes(tmp_path)
    index = next(i for i, n in enumerate(counts[:-1]) if PART_MIN + 2 <= n < PART_MAX)
    middle = sum(counts[:index]) + counts[index] // 2
    changes: list[Callable[[list[dict[str, Any]]], object]] = [
        lambda h: h.pop(middle),
        lambda h: h[10]["message"]["body"].update(content="edited deep inside"),  # nested change
        lambda h: h[20].setdefault("reactions", {}).update({"x": ["💛", 1]}),
    ]
    for change in changes:
        before = parts(tmp_path)
        change(member.history)
        store.save(member)
        assert len(parts(tmp_path) - before) == 1, "one part rewritten, the others untouched"
        assert opened(tmp_path).history == member.history

    before = parts(tmp_path)
    store.save(member)  # nothing changed: no part written
    assert parts(tmp_path) == before

    # A store opened afresh knows its parts too (a command-line run loads, then saves).
    again = Store(tmp_path, PASSPHRASE, params=TEST_PARAMS)
    loaded = again.load()
    loaded.history[-1]["unread"] = False
    again.save(loaded)
    assert len(parts(tmp_path) - before) == 1


@pytest.mark.parametrize("fail_at", ["part", "directory", "main", "cleanup"])
def test_a_crash_during_a_save_leaves_the_store_as_before_or_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    store = Store(tmp_path, PASSPHRASE, params=TEST_PARAMS)
    member = profile(1000)
    store.save(member)
    old = copy.deepcopy(member.history)
    member.history.pop(3)
    member.history.append(item(5000))
    new = copy.deepcopy(member.history)

    class Crash(Exception):
        pass

    real_replace, real_unlink = os.replace, Path.unlink

    def replace(src: Any, dst: Any) -> None:
        name = Path(dst).name
        if (fail_at == "part" and name.endswith(".part")) or (fail_at == "main" and name == store_module.STORE_NAME):
            raise Crash
        real_replace(src, dst)

    def unlink(path: Path, missing_ok: bool = False) -> None:
        if fail_at == "cleanup" and path.name.endswith(".part"):
            raise Crash
        real_unlink(path, missing_ok)

    def sync(path: Path) -> None:
        raise Crash

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(Path, "unlink", unlink)
    if fail_at == "directory":
        monkeypatch.setattr(store_module, "_sync_directory", sync)
    with pytest.raises(Crash):
        store.save(member)
    monkeypatch.undo()
    expected = new if fail_at == "cleanup" else old
    assert opened(tmp_path).history == expected
    # The next save finishes the job and leaves no stray files behind.
    Store(tmp_path, PASSPHRASE, params=TEST_PARAMS).save(member)
    assert opened(tmp_path).history == new
    assert parts(tmp_path) == set(listed(tmp_path))


def test_a_missing_altered_swapped_or_rolled_back_part_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path, PASSPHRASE, params=TEST_PARAMS)
    member = profile(1500)
    store.save(member)
    folder = tmp_path / store_module.HISTORY_DIR
    names = listed(tmp_path)
    first, second = folder / names[0], folder / names[1]
    backup = tmp_path.parent / f"{tmp_path.name}-backup"
    shutil.copytree(tmp_path, backup)

    def restore() -> None:
        shutil.rmtree(tmp_path)
        shutil.copytree(backup, tmp_path)

    first.unlink()
    with pytest.raises(StoreError, match="history part 1 is missing"):
        opened(tmp_path)
    restore()

    data = bytearray(second.read_bytes())
    data[-1] ^= 1
    second.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="history part 2 was altered or replaced"):
        opened(tmp_path)
    restore()

    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    with pytest.raises(StoreError, match="history part 1 was altered or replaced"):
        opened(tmp_path)
    restore()

    # Rolled back: the part as an earlier save wrote it, under the name the main file lists now.
    older = first.read_bytes()
    member.history[0]["unread"] = False
    store.save(member)
    (tmp_path / store_module.HISTORY_DIR / listed(tmp_path)[0]).write_bytes(older)
    with pytest.raises(StoreError, match="history part 1 was altered or replaced"):
        opened(tmp_path)

    # The main file itself is sealed: an edit to it is refused as the store was.
    main = bytearray((tmp_path / store_module.STORE_NAME).read_bytes())
    main[-5] ^= 1
    (tmp_path / store_module.STORE_NAME).write_bytes(bytes(main))
    with pytest.raises(WrongPassphraseError):
        opened(tmp_path)


def test_a_format_1_store_opens_and_its_next_save_writes_parts(tmp_path: Path) -> None:
    member = profile(300)
    legacy = {**member.to_json(), "v": 1}  # the history inside the one file, as format 1 kept it
    key = StoreKey.create(PASSPHRASE, TEST_PARAMS)
    (tmp_path / store_module.STORE_NAME).write_bytes(key.seal(json.dumps(legacy).encode()))
    store = Store(tmp_path, PASSPHRASE, params=TEST_PARAMS)
    loaded = store.load()
    assert loaded.history == member.history
    store.save(loaded)
    assert listed(tmp_path) and opened(tmp_path).history == member.history


def test_message_ids_chosen_by_a_sender_cannot_cut_the_history_into_tiny_parts(tmp_path: Path) -> None:
    """Where a part ends depends on the id hashed with this store's salt, which no sender
    sees; and a part holds at least PART_MIN messages whatever the ids."""
    member = profile(0)
    for folder, same_id in ((tmp_path / "same", "the same id every time"), (tmp_path / "random", None)):
        member.history = [item(n, message_id=same_id) for n in range(2000)]
        Store(folder, PASSPHRASE, params=TEST_PARAMS).save(member)
        counts = sizes(folder)
        assert sum(counts) == 2000 and min(counts[:-1]) >= PART_MIN and max(counts) <= PART_MAX
    # Another store cuts the same history elsewhere: the boundaries depend on its salt.
    Store(tmp_path / "other", PASSPHRASE, params=TEST_PARAMS).save(member)
    assert sizes(tmp_path / "other") != counts


def sizes(folder: Path) -> list[int]:
    """How many messages each listed part holds, in order."""
    return [
        len(json.loads(StoreKey.open(PASSPHRASE, (folder / store_module.HISTORY_DIR / name).read_bytes())[1]))
        for name in listed(folder)
    ]


def test_destroy_removes_the_main_file_and_every_part(tmp_path: Path) -> None:
    store = Store(tmp_path, PASSPHRASE, params=TEST_PARAMS)
    store.save(profile(500))
    with store.locked():
        pass
    store.destroy()
    assert not store.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(StoreMissing):
        store.load()


def test_one_command_at_a_time_holds_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two commands on one profile would encrypt with the same ratchet state; the second waits
    up to LOCK_WAIT for the first, then is refused with a clear message (exit 2)."""
    monkeypatch.setattr(store_module, "LOCK_WAIT", 0.3)
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    store = Store(tmp_path, PASSPHRASE, params=TEST_PARAMS)
    store.save(profile(10))
    other = Store(tmp_path, PASSPHRASE, params=TEST_PARAMS)
    with store.locked():
        with pytest.raises(StoreBusy, match="another `hearthside dm` command is using this profile"):
            with other.locked():
                pass
        code, err = run_command(tmp_path, "read")
        assert code == 2 and "another `hearthside dm` command is using this profile" in err
        code, err = run_command(tmp_path, "logout")
        assert code == 2 and "using this profile" in err and store.exists()
    with other.locked():  # released: the next command gets it
        assert other.load().history == store.load().history


def run_command(folder: Path, *argv: str) -> tuple[int, str]:
    """``hearthside dm --profile FOLDER ARGV...``: (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(["dm", "--profile", str(folder), *argv])
    return code, err.getvalue()


def test_a_wipe_overwrites_then_deletes_every_file_of_the_store_without_the_passphrase(tmp_path: Path) -> None:
    """The panic wipe (research/e2ee.md §7.7): every file of the store is overwritten in place
    with random bytes before it is deleted (seen through hard links made beforehand, which
    share the file's blocks), no passphrase is needed, and files that are not the store's stay."""
    folder = tmp_path / "profile"
    store = Store(folder, PASSPHRASE, params=TEST_PARAMS)
    store.save(profile(500))
    with store.locked():
        pass
    (folder / "notes.txt").write_text("not the store's")
    side = tmp_path / "side"
    side.mkdir()
    files = [folder / store_module.STORE_NAME, folder / store_module.LOCK_NAME, *parts_paths(folder)]
    before = {}
    for n, path in enumerate(files):
        os.link(path, side / str(n))
        before[n] = path.read_bytes()

    assert Store(folder, "").wipe(settle=0) == len(files)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    for n, content in before.items():
        now = (side / str(n)).read_bytes()
        assert len(now) == len(content) and (now != content or not content)
    with pytest.raises(StoreError):  # random bytes now, not a store
        StoreKey.open(PASSPHRASE, (side / "0").read_bytes())
    (folder / "notes.txt").unlink()
    assert Store(folder, "").wipe(settle=0) == 0 and not folder.exists()  # the empty folder goes too


def parts_paths(folder: Path) -> list[Path]:
    return sorted((folder / store_module.HISTORY_DIR).iterdir())


@pytest.mark.parametrize("when", ["parts", "commit"])
def test_a_command_holding_a_wiped_store_does_not_write_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A wipe does not wait for a command that holds the store; that command's next save is
    refused, before it writes anything, or (wiped while it wrote parts) after deleting the
    parts it wrote, so the store does not come back."""
    running = Store(tmp_path, PASSPHRASE, params=TEST_PARAMS)
    running.save(profile(300))
    loaded = running.load()
    with running.locked():
        assert Store(tmp_path, "").wipe(settle=0) > 0
        with pytest.raises(StoreWiped, match="wiped while the command ran"):
            running.save(loaded)
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []

    # Wiped while a save writes its parts, or after them: the save stops before the main file
    # and takes its new parts with it.
    running = Store(tmp_path, PASSPHRASE, params=TEST_PARAMS)
    running.save(profile(300))
    loaded = running.load()
    loaded.history = [item(n, "changed") for n in range(300)]
    step = {"parts": "_write_file", "commit": "_sync_directory"}[when]
    original = getattr(store_module, step)

    def then_wiped(path: Path, *data: bytes) -> None:
        original(path, *data)
        if Store(tmp_path, "").wipe(settle=0) == 0:
            raise AssertionError("nothing was wiped")
        monkeypatch.setattr(store_module, step, original)

    monkeypatch.setattr(store_module, step, then_wiped)
    with pytest.raises(StoreWiped):
        running.save(loaded)
    assert not tmp_path.exists() or list(tmp_path.rglob("*")) == []


def test_hearthside_dm_wipe__asks_for_yes_needs_no_passphrase_and_does_not_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HEARTHSIDE_DM_PASSPHRASE", raising=False)

    def no_prompt(prompt: str = "") -> str:
        raise AssertionError("wipe asked for the passphrase")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    store = Store(tmp_path, PASSPHRASE, params=TEST_PARAMS)
    store.save(profile(100))
    code, err = run_command(tmp_path, "wipe")
    assert code == 2 and "--yes" in err and store.exists()
    out = io.StringIO()
    with store.locked(), contextlib.redirect_stdout(out):  # another command holds it: no waiting
        assert cli_main(["dm", "--profile", str(tmp_path), "wipe", "--yes"]) == 0
    assert "overwritten and deleted" in out.getvalue() and "devices revoke" in out.getvalue()
    assert not store.exists() and not (tmp_path / store_module.HISTORY_DIR).exists()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["dm", "--profile", str(tmp_path), "--json", "wipe", "--yes"]) == 0
    assert json.loads(out.getvalue()) == {"profile": str(tmp_path), "files_removed": 0}
