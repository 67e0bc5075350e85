"""Every mode the files of a directory had while the code under test ran. An audit hook (PEP 578) looks at
the directory at each file operation Python is about to make (open, chmod, rename, …), so a file created
readable by others and narrowed afterwards is caught in between; `umask(0)` makes the widest default show."""

from __future__ import annotations

import os
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_watched: list[tuple[Path, dict[str, set[int]]]] = []
_inside = threading.local()
_installed = False


def _look(event: str, _args: tuple[Any, ...]) -> None:
    if not _watched or getattr(_inside, "busy", False) or not event.startswith(("open", "os.", "shutil.")):
        return
    _inside.busy = True  # scandir and stat are audited too
    try:
        for directory, seen in _watched:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False):
                        seen.setdefault(entry.name, set()).add(stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode))
    except OSError:
        pass
    finally:
        _inside.busy = False


@contextmanager
def modes_seen(directory: Path) -> Iterator[dict[str, set[int]]]:
    """file name → every permission mode it was seen with during the block (and at its end)."""
    global _installed
    if not _installed:  # an audit hook cannot be removed: one, idle while nothing is watched
        sys.addaudithook(_look)
        _installed = True
    seen: dict[str, set[int]] = {}
    _watched.append((directory, seen))
    try:
        yield seen
    finally:
        _watched.remove((directory, seen))
        _look("open", ())  # how they are left
        for file in directory.iterdir():
            if file.is_file():
                seen.setdefault(file.name, set()).add(stat.S_IMODE(file.stat().st_mode))


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)
