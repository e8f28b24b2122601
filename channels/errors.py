"""Typed errors every channel adapter raises; the delivery engine decides from the type alone.

    ChannelError                 the channel's own code and message, plus our explanation
    ├── Retryable                busy, 5xx, timeout before the request was sent, 429-like
    ├── RateLimited              the channel's rate window is spent: defer until `until`
    │   └── QuotaExhausted       the channel's daily quota is spent: defer until `until`
    ├── AuthExpired              token invalid or expired (`refreshable=False`: an operator
    │                            must re-authorise the channel; its deliveries wait)
    ├── Permanent                the content or request is wrong: fail, fixed by editing
    └── OutcomeUnknown           the request may have taken effect: look up before any resend

    ChannelDisabled              not a channel's answer: the adapter cannot be built (not
                                 configured, no token); the message says what to set

Adapters raise nothing else for a channel's answer; anything else escaping an adapter is a
bug in our code and is treated as retryable by the engine, with the traceback logged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class ChannelError(Exception):
    """A channel call did not succeed.

    `code` and `message` are the channel's own (kept verbatim for the operator); `explanation`
    is ours, in plain words; `http_status` is the HTTP status when there was one.
    """

    kind = "error"

    def __init__(
        self,
        explanation: str,
        *,
        code: str | int | None = None,
        message: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(explanation)
        self.explanation = explanation
        self.code = None if code is None else str(code)
        self.message = message
        self.http_status = http_status

    def __str__(self) -> str:
        parts = [self.explanation]
        if self.code is not None or self.message:
            said = " ".join(part for part in (self.code, self.message) if part)
            parts.append(f"[channel said: {said}]")
        return " ".join(parts)


class Retryable(ChannelError):
    kind = "retryable"

    def __init__(self, explanation: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(explanation, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class RateLimited(ChannelError):
    kind = "rate_limited"

    def __init__(self, explanation: str, *, until: datetime, **kw: object) -> None:
        super().__init__(explanation, **kw)  # type: ignore[arg-type]
        self.until = until


class QuotaExhausted(RateLimited):
    kind = "quota_exhausted"


class AuthExpired(ChannelError):
    kind = "auth_expired"

    def __init__(self, explanation: str, *, refreshable: bool = True, **kw: object) -> None:
        super().__init__(explanation, **kw)  # type: ignore[arg-type]
        self.refreshable = refreshable


class Permanent(ChannelError):
    kind = "permanent"


class OutcomeUnknown(ChannelError):
    """`state`: what the adapter needs to find the write later (kept with the delivery's
    remote state, which outlives the shared store: Redis may be flushed)."""

    kind = "outcome_unknown"

    def __init__(
        self, explanation: str, *, state: dict[str, Any] | None = None, **kw: object
    ) -> None:
        super().__init__(explanation, **kw)  # type: ignore[arg-type]
        self.state = dict(state or {})


class ChannelDisabled(Exception):
    """The channel is not configured; the message says what to set."""
