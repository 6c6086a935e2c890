"""The one way the project reads a text file a user hands it (manifests, results, curves, predictions, gold).

``read_text(path, error)`` returns the whole file decoded as UTF-8 (a leading byte-order mark is dropped), or raises
``error`` (the calling module's own input-error class, so its CLI already turns it into one ``error: ...`` line and
exit status 2) with a message that names the file, the line and the offending byte, and how to fix it: a Latin-1
byte, a binary file, a folder where a file was expected, a file that cannot be read. ``text_lines`` splits the text
into numbered lines the way ``open()`` iteration would, without splitting at the Unicode line separators that JSON
allows inside strings. No third-party imports: the scorer, the report and the planner read files through here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterator

_FIX = "save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`"


def read_text(path: str | os.PathLike, error: type[Exception] = ValueError, *, what: str = "file") -> str:
    """The file's text, strictly UTF-8 (``utf-8-sig``); any failure is one ``error`` naming the file and the fix."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, expected a {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise error(f"{path}, line {line}: a NUL byte; this is a binary file, not a text {what}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        bad = data[exc.start : exc.start + 1].hex()
        raise error(
            f"{path}, line {line}: byte 0x{bad} is not UTF-8 (the {what} is in another encoding or is binary); {_FIX}"
        ) from None


def text_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line without its newline) for every line, numbered from 1, split at ``\\n`` only."""
    for lineno, line in enumerate(text.split("\n"), start=1):
        yield lineno, line.rstrip("\r")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file so that readers see either the old or the new content, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def iter_json_objects(
    path: str | os.PathLike, error: type[Exception] = ValueError, *, compact: bool = False
) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON-lines file, read through ``read_text``; a line that
    is not JSON, or not an object, is one ``error`` naming the file and the line (``path, line N``, or the
    compiler-style ``path:N`` the scorer prints with ``compact``)."""
    import json

    for lineno, line in text_lines(read_text(path, error)):
        if not line.strip():
            continue
        where = f"{path}:{lineno}" if compact else f"{path}, line {lineno}"
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise error(f"{where}: not JSON ({exc}); one JSON object per line") from None
        if not isinstance(row, dict):
            raise error(f"{where}: expected a JSON object per line, got {type(row).__name__}")
        yield lineno, row
