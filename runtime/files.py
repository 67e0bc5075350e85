"""Files only their owner may read (secrets, personal data): created 0600, never wider for an instant."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def private_file(path: Path, mode: str = "w", **options: Any) -> Iterator[IO[Any]]:
    """Write `path` afresh, readable and writable by its owner only. The content goes to a new file beside
    it, created with mode 0600 by the call that creates it (os.open: no umask can widen it, no chmod comes
    after), which then takes `path`'s place in one rename: an older file with a wider mode is replaced, not
    reused, and no reader ever meets half a file. `mode` and `options` as for open() ("w", "wb", encoding…)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, mode, **options) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def narrow_to_owner(path: Path) -> None:
    """A file written before this rule (an older version's): readable by its owner only from now on."""
    if path.exists() and path.stat().st_mode & 0o077:
        path.chmod(0o600)
