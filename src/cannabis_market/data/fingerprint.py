"""Content fingerprints of dataset folders (standard library only, so the report CLI starts fast).

The fingerprint keys the validation cache and decides whether a report is stale, so it must change
whenever any byte changes -- even when an edit keeps the size and the modification time (a restored
mtime, a coarse-clock filesystem). It therefore hashes file *contents* (SHA-256, ~1.5 GB/s with the
CPU's SHA extensions). Within one process a file's hash is remembered under its inode, size, mtime and
ctime; the ctime cannot be set back by users, so any rewrite is hashed again.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

CHUNK = 1 << 20
_MEMO: dict[tuple[str, int, int, int, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """SHA-256 of one regular file's bytes, read in 1 MB chunks (bounded memory)."""
    p = Path(path)
    st = p.stat()
    key = (str(p), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    hit = _MEMO.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with p.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    if len(_MEMO) > 4096:
        _MEMO.clear()
    _MEMO[key] = h.hexdigest()
    return _MEMO[key]


def _entry(root: Path, full: Path) -> str:
    """What one folder entry contributes: its content hash, or for a link leaving `root` (or anything
    that is not a regular file: FIFO, device) only its kind and target text -- never read."""
    try:
        lst = full.lstat()
        if stat.S_ISLNK(lst.st_mode):
            target = full.resolve()
            if not target.is_relative_to(root.resolve()) or not target.is_file():
                return f"link:{os.readlink(full)}"
        elif not stat.S_ISREG(lst.st_mode):
            return f"special:{stat.S_IFMT(lst.st_mode)}"
        return file_digest(full)
    except (OSError, RuntimeError):
        return "unreadable"


def fingerprint(path: str | Path) -> str:
    """Content fingerprint of a file or folder: SHA-256 over relative names and file-content hashes.

    Hidden files and folders (starting with '.') are ignored; a missing path gives "missing". Symbolic
    links are hashed by their target text when they leave the folder (their target is never read).
    """
    root = Path(path)
    if not root.exists():
        return "missing"
    h = hashlib.sha256()
    if root.is_file():
        h.update(f"{root.name}\0{_entry(root.parent, root)}\n".encode())
        return h.hexdigest()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in sorted(filenames):
            if fname.startswith("."):
                continue
            full = Path(dirpath) / fname
            h.update(f"{full.relative_to(root).as_posix()}\0{_entry(root, full)}\n".encode())
    return h.hexdigest()
