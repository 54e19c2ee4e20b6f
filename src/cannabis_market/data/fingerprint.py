"""Cheap change detection for dataset folders (standard library only, so the report CLI starts fast)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def fingerprint(path: str | Path) -> str:
    """Fast fingerprint of a file or folder: SHA-256 of relative names, sizes and mtimes (not contents).

    Used to skip re-validation of an unchanged dataset and to decide whether a report is stale. Hidden
    files and folders (starting with '.') are ignored; a missing path gives "missing".
    """
    root = Path(path)
    if not root.exists():
        return "missing"
    h = hashlib.sha256()
    if root.is_file():
        st = root.stat()
        h.update(f"{root.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in sorted(filenames):
            if fname.startswith("."):
                continue
            full = Path(dirpath) / fname
            try:
                st = full.stat()
            except OSError:
                continue
            h.update(f"{full.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
