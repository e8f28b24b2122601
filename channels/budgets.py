"""Daily call budgets per endpoint, shared by every worker, reset at 00:00 Beijing time.

WeChat rations most of its endpoints per account per day (API_Call_Limits: e.g.
`freepublish/getarticle` 100, `freepublish/delete` 10) and answers 45009 once a day's calls
are spent, until midnight in Beijing; Weibo limits calls per user and per app. Spending a
budget we keep ourselves, before calling, means the channel never has to refuse us, and the
delivery engine defers the work (`QuotaExhausted`, until the reset) instead of failing it.

A purpose other than delivering (reconciliation) may spend only a share of each budget, so
that checking what is live never uses up what publishing needs: `spend(endpoint,
purpose="reconcile", share=0.2)` counts against both its own share and the whole budget. The
caller that knows the purpose (the reconciler) says so once, around the adapter calls it makes:
`with spending_for("reconcile", 0.2): channel.lookup(…)`; adapters just `spend(endpoint)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Protocol

from channels.errors import QuotaExhausted

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")  # no daylight saving in China
DELIVER = "deliver"
# (purpose, share of each budget) of the calls made now, in this thread or task.
_SPENDING: ContextVar[tuple[str, float]] = ContextVar("spending", default=(DELIVER, 1.0))


@contextmanager
def spending_for(purpose: str, share: float) -> Iterator[None]:
    """Count the budgeted calls made inside against `purpose`, which may use `share` of each
    budget (and counts in the whole)."""
    token = _SPENDING.set((purpose, share))
    try:
        yield
    finally:
        _SPENDING.reset(token)


def beijing_day(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(BEIJING).date()


def next_beijing_midnight(now: datetime | None = None) -> datetime:
    """The next 00:00 in Beijing, when the channels' daily quotas reset, as a UTC datetime."""
    day = beijing_day(now) + timedelta(days=1)
    return datetime.combine(day, datetime.min.time(), BEIJING).astimezone(UTC)


class Counters(Protocol):
    """What budgets need of the shared store (`channels.base.SharedStore` has it)."""

    def get(self, key: str) -> str | None: ...

    def count(self, key: str, ttl_seconds: float, by: int = 1) -> int: ...


@dataclass(frozen=True)
class BudgetUse:
    """One endpoint's budget today: `used` of `limit` calls, back to 0 at `resets_at`."""

    endpoint: str
    used: int
    limit: int
    resets_at: datetime

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used)


class DailyBudgets:
    """The daily budgets of one channel (`kind`): `limits` maps an endpoint to its calls a
    day; an endpoint not in it is not rationed."""

    def __init__(self, shared: Counters, kind: str, limits: Mapping[str, int]) -> None:
        self.shared = shared
        self.kind = kind
        self.limits = dict(limits)

    def spend(
        self,
        endpoint: str,
        *,
        purpose: str | None = None,
        share: float = 1.0,
        now: datetime | None = None,
    ) -> None:
        """Count one call to `endpoint` for `purpose` (unset: the `spending_for` around this
        call, else delivering), or raise `QuotaExhausted` (until the next midnight in Beijing;
        the refused call counts nowhere) when today's calls have reached its limit,
        or `share` of it for this purpose."""
        limit = self.limits.get(endpoint)
        if limit is None:
            return
        if purpose is None:
            purpose, share = _SPENDING.get()
        now = now or datetime.now(UTC)
        resets = next_beijing_midnight(now)
        ttl = (resets - now).total_seconds() + 3600  # a little past the reset: then unused
        counters = [(self._key(endpoint, now), limit, f"{limit} a day")]
        if purpose != DELIVER:
            allowed = math.floor(limit * share)
            counters.insert(
                0,
                (
                    self._key(endpoint, now, purpose),
                    allowed,
                    f"the {purpose} share ({allowed} a day)",
                ),
            )
        taken: list[str] = []
        for key, allowed, what in counters:
            taken.append(key)
            if self.shared.count(key, ttl) > allowed:
                for counted in taken:  # the call is not made: it counts nowhere
                    self.shared.count(counted, ttl, by=-1)
                raise self._spent(endpoint, resets, what)

    def used(self, endpoint: str, *, purpose: str = DELIVER, now: datetime | None = None) -> int:
        value = self.shared.get(self._key(endpoint, now or datetime.now(UTC), purpose))
        return int(value) if value and value.isdigit() else 0

    def usage(self, now: datetime | None = None) -> list[BudgetUse]:
        """Every rationed endpoint's use today, in the order of `limits`."""
        now = now or datetime.now(UTC)
        resets = next_beijing_midnight(now)
        return [
            BudgetUse(endpoint, min(self.used(endpoint, now=now), limit), limit, resets)
            for endpoint, limit in self.limits.items()
        ]

    def _key(self, endpoint: str, now: datetime, purpose: str = DELIVER) -> str:
        part = "" if purpose == DELIVER else f":{purpose}"
        return f"budget:{self.kind}:{endpoint}:{beijing_day(now).isoformat()}{part}"

    def _spent(self, endpoint: str, resets: datetime, what: str) -> QuotaExhausted:
        return QuotaExhausted(
            f"{self.kind}: today's budget for {endpoint} is spent ({what}); "
            "continuing after midnight, Beijing time",
            until=resets,
        )
