"""The errors every tier may raise: "a server behind me is down" (answered 503 by the web layer), and
the committee's service's refusals, one family that each door (HTTP, CLI, desk) maps once."""


class Unavailable(Exception):
    """A server this process needs is down, overloaded or not configured to keep our promises (→ 503)."""


class Refusal(Exception):
    """An action refused for a reason the caller can act on (never a server's fault). `code` is the stable
    error code of the API; the kind of refusal (the subclass below) decides the HTTP status."""

    code = "refused"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(Refusal):
    """What the action names does not exist (→ 404)."""


class Conflict(Refusal):
    """The action does not fit the state things are in (→ 409)."""


class Invalid(Refusal):
    """The action's arguments break a rule (→ 422)."""


class NotYet(Refusal):
    """The action may succeed shortly; retry after `retry_after` seconds (→ 503)."""
