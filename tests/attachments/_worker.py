"""Out-of-process actors for the attachment tests (run with `python -m`).

`put-and-hang DB_URL BLOB_ROOT SESSION TURN MARKER`: put one attachment owned by TURN, write
its id to MARKER, then sleep until killed.
`put-many BLOB_ROOT GO_FILE COUNT`: wait for GO_FILE, then put the same bytes COUNT times.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lash_tasks.attachments import FilesystemBlobStore, SessionAttachments
from lash_tasks.store.store import Store

PAYLOAD = b"killed-put payload\n" * 1000
SHARED = bytes(range(256)) * 4096


def put_and_hang(db_url: str, blob_root: str, session_id: str, turn_id: str, marker: str) -> None:
    store = Store.from_url(db_url)
    attachments = SessionAttachments(
        store.manifest, FilesystemBlobStore(blob_root), session_id, "turn", turn_id
    )
    attachment_id = attachments.put(PAYLOAD, "text/plain")
    # Write then rename: the test polls for the marker and must never read it half-written.
    staging = Path(marker + ".tmp")
    staging.write_text(attachment_id)
    staging.replace(marker)
    time.sleep(300)


def put_many(blob_root: str, go_file: str, count: str) -> None:
    blobs = FilesystemBlobStore(blob_root)
    while not Path(go_file).exists():
        time.sleep(0.005)
    for _ in range(int(count)):
        blobs.put(SHARED, "application/octet-stream")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "put-and-hang":
        put_and_hang(*args)
    elif command == "put-many":
        put_many(*args)
    else:
        raise SystemExit(f"unknown command {command!r}")
