"""The member's message store (server/dm/store.py): what one save costs as the history grows.

    python -m bench.dm_store_bench [--sizes 1000,10000,50000] [--saves 5] [--json]

Run it under ``flock /tmp/bench.lock`` so that two benchmarks never share the machine.

A device saves its store before every send and every page of received messages (crash safety,
server/dm/client.py ``_persist``). For each history size, a profile with that many messages
(each a 200-character Note with its franking opening and stamps, as the client keeps them) is
saved once; then, ``--saves`` times, one message is added and the store saved again, as after
a send. Measured in the same run, on the same data and folder kind:

* *one file* (format 1): the whole profile as one JSON document, sealed and written with fsync;
* *in parts* (format 2, ``Store.save``): every part serialised, the changed ones sealed and
  written, then the main file.

Wall-clock median per save, and the bytes written per save. Argon2id runs once per store (at
the first save), not in the figures.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from crypto.devicelist import MasterKey
from crypto.messaging import DeviceState
from crypto.secretstore import TEST_PARAMS, StoreKey
from server.dm.store import HISTORY_DIR, Profile, Store

ACTOR = "https://a.example/users/alice"
PEER = "https://b.example/users/bob"


def b64(size: int) -> str:
    return base64.b64encode(os.urandom(size)).decode()


def message(n: int) -> dict[str, Any]:
    text = ("I hear you, and I am glad you wrote. " * 6)[:200]
    return {
        "id": str(uuid.uuid4()),
        "edits": None,
        "reply_to": None,
        "direction": "in",
        "peer": PEER,
        "message": {
            "v": 3,
            "id": str(uuid.uuid4()),
            "from": PEER,
            "to": ACTOR,
            "created": "2026-11-22T00:00:00Z",
            "expires": None,
            "body": {"type": "Note", "content": text},
        },
        "message_bytes": b64(300),
        "object_id": f"https://b.example/e2ee/messages/{n}",
        "sender_device": "BOB0001",
        "franking_key": b64(32),
        "franking_tag": b64(32),
        "stamp": "k1." + b64(32),
        "sender_stamp": "k1." + b64(32),
        "stamped_at": "2026-11-22T00:00:00Z",
    }


def one_file_save(key: StoreKey, path: Path, profile: Profile) -> int:
    """Format 1: everything in one sealed file, written whole with fsync."""
    blob = key.seal(json.dumps(profile.to_json(), separators=(",", ":")).encode())
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as handle:
        handle.write(blob)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return len(blob)


def folder_bytes(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def measure(size: int, saves: int) -> dict[str, Any]:
    device = DeviceState.create(actor=ACTOR, device_id="ALICE01", master=MasterKey.generate())
    profile = Profile(server="https://a.example", token="t", actor=ACTOR, acct="alice@a.example", device=device)
    profile.history = [message(n) for n in range(size)]
    with tempfile.TemporaryDirectory() as one_dir, tempfile.TemporaryDirectory() as parts_dir:
        key = StoreKey.create("bench passphrase", TEST_PARAMS)
        one_path = Path(one_dir) / "store"
        store = Store(Path(parts_dir), "bench passphrase", params=TEST_PARAMS)
        one_file_save(key, one_path, profile)
        store.save(profile)
        one_times: list[float] = []
        part_times: list[float] = []
        one_written = part_written = 0
        for n in range(saves):
            profile.history.append(message(size + n))
            started = time.perf_counter()
            one_written += one_file_save(key, one_path, profile)
            one_times.append(time.perf_counter() - started)
            before = folder_bytes(Path(parts_dir))
            started = time.perf_counter()
            store.save(profile)
            part_times.append(time.perf_counter() - started)
            after = folder_bytes(Path(parts_dir))
            part_written += sum(b for p, b in after.items() if before.get(p) != b or p not in before)
        parts = len(list((Path(parts_dir) / HISTORY_DIR).iterdir()))
        loaded = Store(Path(parts_dir), "bench passphrase", params=TEST_PARAMS)
        started = time.perf_counter()
        if len(loaded.load().history) != size + saves:
            raise SystemExit("the store did not load what was saved")
        load_time = time.perf_counter() - started
    one, part = statistics.median(one_times), statistics.median(part_times)
    return {
        "messages": size,
        "one_file_ms": round(one * 1000, 1),
        "in_parts_ms": round(part * 1000, 1),
        "speedup": round(one / part, 1),
        "one_file_kb_written": round(one_written / saves / 1024),
        "in_parts_kb_written": round(part_written / saves / 1024),
        "parts": parts,
        "load_ms": round(load_time * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(int(size), args.saves) for size in args.sizes.split(",")]
    if args.json:
        print(json.dumps(rows))
        return
    print(f"### One save after one new message (median of {args.saves}; wall clock, fsync included)\n")
    print(
        "| messages kept | one file (format 1) ms | in parts (format 2) ms | faster | KB written, one file | "
        "KB written, in parts | parts | load ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['messages']:,} | {r['one_file_ms']} | {r['in_parts_ms']} | {r['speedup']}x | "
            f"{r['one_file_kb_written']:,} | {r['in_parts_kb_written']:,} | {r['parts']} | {r['load_ms']} |"
        )


if __name__ == "__main__":
    main()
