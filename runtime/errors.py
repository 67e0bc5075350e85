"""The one error every tier may raise for "a server behind me is down" (answered 503 by the web layer)."""


class Unavailable(Exception):
    """A server this process needs is down, overloaded or not configured to keep our promises (→ 503)."""
