"""Contest folders made from the presets for tools that run a stack of their own (demo, checks, benchmarks)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ops.settings import REPO_CONTESTS


def one_long_period(dest: Path, *, slug: str | None = None, seconds: int = 3600) -> Path:
    """The demo contest with a single period open from the stack's start for `seconds`."""
    shutil.copytree(REPO_CONTESTS / "demo", dest)
    toml = dest / "contest.toml"
    text = toml.read_text()
    text = (text[:text.index("[schedule]")] + f"[schedule]\ncount = 1\nperiod_seconds = {seconds}\n\n"
            + text[text.index("[[groups]]"):])
    if slug is not None:
        text = text.replace('slug = "demo"', f'slug = "{slug}"')
    toml.write_text(text)
    return dest
