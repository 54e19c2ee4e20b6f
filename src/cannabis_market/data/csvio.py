"""Reading users' CSV files safely: every cell as text, header cleaned, hostile files refused early.

`check_text_file` makes one bounded-memory pass over a file's bytes before polars sees it: it refuses
empty files, NUL bytes (binary files, UTF-16/32 text, sparse files), invalid UTF-8, absurdly long lines
(a 1 GB file without line breaks would otherwise be parsed as one giant field) and duplicated or empty
header names. Messages never echo more than a few dozen characters of the file.
"""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cannabis_market.errors import InputError

CHUNK = 8 << 20
MAX_LINE_BYTES = 1 << 20
"""Longest physical line accepted (1 MB); a contract row is well under 1 KB."""
MAX_ECHO = 60


def cut(text: str, n: int = MAX_ECHO) -> str:
    """`text` cut to at most `n` characters (messages stay bounded whatever the input)."""
    return text if len(text) <= n else text[: max(n - 3, 0)] + "..."


def short(value: object, n: int = MAX_ECHO) -> str:
    """repr() of a string (str() of anything else), cut to at most `n` characters."""
    return cut(repr(value) if isinstance(value, str) else str(value), n)


def clean_header(names: list[str]) -> list[str]:
    """Header names without a byte-order mark or surrounding spaces."""
    return [c.lstrip("\ufeff").strip() for c in names]


@dataclass(frozen=True)
class TextCheck:
    """Outcome of `check_text_file`: the cleaned header names, or the rule the file breaks."""

    header: list[str]
    problem: str | None = None


def _line_too_long(chunk: bytes, since: int, max_line: int) -> int | None:
    """Offset in `chunk` where a line longer than `max_line` bytes is detected, else None.

    `since` is the length of the line still open from the previous chunk. Interior lines are checked
    in blocks of max_line // 2 bytes: a longer line must contain a whole block without a newline.
    """
    first = chunk.find(b"\n")
    if first < 0:
        return 0 if since + len(chunk) > max_line else None
    if since + first > max_line:
        return 0
    last = chunk.rfind(b"\n")
    half = max(1, max_line // 2)
    for s in range(first + 1, last, half):
        if chunk.find(b"\n", s, min(s + half, last)) < 0:
            prev, nxt = chunk.rfind(b"\n", 0, s), chunk.find(b"\n", s)
            if nxt - prev - 1 > max_line:
                return prev + 1
    return None


def _parse_header(first_line: bytes) -> tuple[list[str], str | None]:
    text = first_line.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
    if "\r" in text:
        return [], "uses old Mac line breaks (CR only); re-save the file with LF or CRLF line breaks"
    names = clean_header(next(csv.reader([text]), []))
    if not any(names):
        return names, "the first line is blank; it must be the header row of column names"
    if "" in names:
        return names, f"header has an empty column name (column {names.index('') + 1})"
    seen: set[str] = set()
    dups = sorted({n for n in names if n in seen or seen.add(n)})
    if dups:
        return (
            names,
            f"header names a column twice ({', '.join(short(d, 30) for d in dups[:5])}); names must be unique",
        )
    return names, None


def check_text_file(path: Path, max_line: int = MAX_LINE_BYTES) -> TextCheck:
    """One streaming pass: non-empty, no NUL bytes, valid UTF-8, lines under `max_line`, sane header."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, since, seen_text, first_line = 0, 0, False, b""
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            if offset == 0 and chunk[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
                return TextCheck([], "is UTF-32 text; re-save the file as UTF-8")
            if offset == 0 and chunk[:2] in (b"\xff\xfe", b"\xfe\xff"):
                return TextCheck([], "is UTF-16 text; re-save the file as UTF-8")
            nul = chunk.find(b"\0")
            if nul >= 0:
                return TextCheck(
                    [],
                    f"contains a NUL byte at byte {offset + nul} (a binary, sparse or UTF-16/32 file; "
                    "a table must be UTF-8 text)",
                )
            if decoder.getstate()[0] or not chunk.isascii():
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as e:
                    pos = offset + e.start - len(decoder.getstate()[0])
                    return TextCheck(
                        [], f"not valid UTF-8 text at byte {max(pos, 0)} (re-save the file as UTF-8)"
                    )
            at = _line_too_long(chunk, since, max_line)
            if at is not None:
                return TextCheck(
                    [],
                    f"has a line longer than {max_line:,} bytes near byte {offset + at} "
                    "(not a table of records: wrong file, or line breaks missing)",
                )
            nl = chunk.rfind(b"\n")
            since = since + len(chunk) if nl < 0 else len(chunk) - nl - 1
            if offset == 0:
                end = chunk.find(b"\n")
                first_line = chunk if end < 0 else chunk[: end + 1]
            seen_text = seen_text or bool(chunk.strip())
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return TextCheck([], f"not valid UTF-8 text at byte {offset} (the file ends inside a character)")
    if not seen_text:
        return TextCheck([], "file is empty (no header row)")
    names, problem = _parse_header(first_line)
    return TextCheck(names, problem)


def read_csv_text(path: str | Path) -> pl.DataFrame:
    """All cells as strings (importers parse and report bad values themselves); a BOM or spaces around
    header names are dropped. Missing or unreadable files raise InputError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        raw = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    except pl.exceptions.PolarsError as e:
        raise InputError(f"{path}: not a readable CSV ({str(e).splitlines()[0][:150]})") from None
    return raw.rename(dict(zip(raw.columns, clean_header(raw.columns), strict=True)))
