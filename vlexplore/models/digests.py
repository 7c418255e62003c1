"""Content identity of local weights: a checkpoint's model id carries a hash of its bytes, not its name."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path

from ..fsutil import atomic_write_text

DIGEST_FILE = "checkpoint-digests.json"
DIGEST_MEMO_MAX = 256
_digest_lock = threading.Lock()
_digests: dict[tuple[str, int, int, str], str] = {}


def _hasher():
    try:
        import blake3
    except ImportError:
        return "b2", hashlib.blake2b(digest_size=16)
    return "b3", blake3.blake3(max_threads=blake3.blake3.AUTO)


def file_digest(path: str | Path, *, memo_dir: str | Path | None = None) -> str:
    """``"b3-<32 hex>"``: the content hash of a file (blake3; ``b2-`` = hashlib's blake2b where blake3 is missing).

    Remembered by (real path, size, mtime_ns) in this process and, with ``memo_dir``, in
    ``memo_dir/checkpoint-digests.json``, so a 600 MB checkpoint is read once, not at every load.
    A changed file (size or modification time) is hashed again.
    """
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    algo, h = _hasher()
    memo_key = f"{algo}|{real}|{st.st_size}|{st.st_mtime_ns}"
    with _digest_lock:
        if (*key, algo) in _digests:
            return _digests[(*key, algo)]
    memo_path = Path(memo_dir) / DIGEST_FILE if memo_dir is not None else None
    memo = _read_memo(memo_path)
    digest = memo.get(memo_key)
    if not (isinstance(digest, str) and digest.startswith(f"{algo}-")):
        with open(real, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        digest = f"{algo}-{h.hexdigest()[:32]}"
        if memo_path is not None:
            memo[memo_key] = digest
            _write_memo(memo_path, memo)
    with _digest_lock:
        _digests[(*key, algo)] = digest
    return digest


def _read_memo(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_memo(path: Path, memo: dict) -> None:
    items = list(memo.items())[-DIGEST_MEMO_MAX:]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(dict(items)))
    except OSError:  # a read-only cache only costs a re-hash next time
        pass


def _hub_file_identity(path: str, memo_dir) -> str:
    """A downloaded hub file's identity: its blob name in the hub cache (the content's sha256), else its hash."""
    blob = os.path.basename(os.path.realpath(path))
    if re.fullmatch(r"[0-9a-f]{40,64}", blob):
        return f"hub-{blob[:32]}"
    return file_digest(path, memo_dir=memo_dir)
