"""The hot reads' plans as a pooled connection caches them: a generic plan, made once, possibly while a
period's partition is new and has no statistics. The standing read must walk the participant's own entries
then too — not every entry of the period (it once did, and cost PostgreSQL ~1.2 ms a read at the peak)."""

from __future__ import annotations

import json
import re
from typing import Any

from psycopg_pool import AsyncConnectionPool

from projections.live_queries import PERSON_IN_PERIOD


def _numbered(sql: str) -> str:
    """psycopg's %(name)s placeholders as PostgreSQL's $1, $2 … (the same name, the same number)."""
    numbers: dict[str, int] = {}
    return re.sub(r"%\((\w+)\)s", lambda m: f"${numbers.setdefault(m.group(1), len(numbers) + 1)}", sql)


def _scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node] if "Relation Name" in node else []
    for child in node.get("Plans", []):
        found += _scans(child)
    return found


async def test_the_standing_read_walks_the_participants_index_without_statistics(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        # The tables are empty and unanalysed, as a new period's partition is at its first reads.
        cur = await conn.execute(f"EXPLAIN (GENERIC_PLAN, FORMAT JSON) {_numbered(PERSON_IN_PERIOD)}")
        row = await cur.fetchone()
        assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    entries = [scan for scan in _scans(plan[0]["Plan"]) if scan["Relation Name"].startswith("entries")]
    assert entries, plan
    for scan in entries:
        assert scan["Node Type"] == "Index Scan", scan
        assert "participant_id" in scan.get("Index Cond", ""), scan  # not the whole period, filtered
