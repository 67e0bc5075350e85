"""Where each key of a TOML document is written, so a contest error can name its line.

tomllib (the standard parser) keeps no positions and tomlkit exposes none either; contest files
use plain tables, arrays of tables and `key = value` lines, which a line scan places exactly.
"""

from __future__ import annotations

import re

_ARRAY_TABLE = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]")
_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")

Table = tuple[str, int | None]  # table name and, for an array of tables, its 0-based index


class TomlLines:
    """Line numbers (1-based) of table headers and keys, first occurrence."""

    def __init__(self, text: str) -> None:
        self.headers: dict[Table, int] = {}
        self.keys: dict[tuple[Table, str], int] = {}
        counts: dict[str, int] = {}
        current: Table = ("", None)
        for number, line in enumerate(text.splitlines(), start=1):
            if m := _ARRAY_TABLE.match(line):
                name = m.group(1)
                current = (name, counts.get(name, 0))
                counts[name] = counts.get(name, 0) + 1
                self.headers.setdefault(current, number)
                self.headers.setdefault((name, None), number)
            elif m := _TABLE.match(line):
                current = (m.group(1), None)
                self.headers.setdefault(current, number)
            elif m := _KEY.match(line):
                self.keys.setdefault((current, m.group(1)), number)

    def line(self, path: tuple[str | int, ...]) -> int | None:
        """The line of the deepest part of `path` written in the file, e.g. ("groups", 0, "prizes", 1,
        "count") → the `prizes = …` line of the first [[groups]]; ("contest",) → its header."""
        if not path:
            return None
        name = str(path[0])
        index = path[1] if len(path) > 1 and isinstance(path[1], int) else None
        rest = path[2:] if index is not None else path[1:]
        key = next((p for p in rest if isinstance(p, str)), None)
        table: Table = (name, index)
        if key is not None and (table, key) in self.keys:
            return self.keys[(table, key)]
        if table in self.headers:
            return self.headers[table]
        return self.keys.get((("", None), name))  # a key written outside any table
