"""Our own small error hierarchy for the stores; driver errors are translated at the boundary."""


class StoreError(Exception):
    """A store failed in a way the caller should report, not crash on."""


class StoreUnavailable(StoreError):
    """Redis or PostgreSQL is down, overloaded or not configured to keep our promises (→ 503)."""
