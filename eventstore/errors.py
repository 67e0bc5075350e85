"""Our own small error hierarchy for the stores; driver errors are translated at the boundary of each
store (one place per store), so callers catch only these."""

from runtime.errors import Unavailable


class StoreError(Exception):
    """A store failed in a way the caller should report, not crash on."""


class StoreUnavailable(StoreError, Unavailable):
    """Redis or PostgreSQL is down, overloaded or not configured to keep our promises (→ 503)."""


class StoreRejected(StoreError):
    """The server is up but refused this work (a constraint, a bad value): retrying the same work
    fails the same way, so a scorer parks the entry that caused it instead of retrying forever."""
