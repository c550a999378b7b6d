"""The sandbox's request log: what it received and answered, for tests and benchmarks
(``GET /_sandbox/requests``, ``/_sandbox/stats``). Pure Python, no I/O; it runs on the server's
event-loop thread, as ``state.py`` does."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterable
from typing import Any


class RequestLog:
    """Bounded log of OMS requests, with counters per (method, status) and per second.

    Entries are dicts in the JSON shape of ``GET /_sandbox/requests``. ``seq`` never restarts,
    not even after ``clear``, so a ``since`` a client holds stays meaningful.
    """

    def __init__(self, limit: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=limit)
        self._seq = 0
        self.counters: dict[tuple[str, str], int] = {}
        self.per_second: dict[int, int] = {}

    @property
    def last_seq(self) -> int:
        """The seq of the latest entry ever recorded (0 if none)."""
        return self._seq

    def record(
        self,
        method: str,
        path: str,
        account: str,
        order_id: str | None,
        invoice_number: str | None,
        body: Any,
    ) -> dict[str, Any]:
        """Append an entry for a request just received; ``finish`` fills in its outcome."""
        self._seq += 1
        received = time.time()
        second = int(received)
        self.per_second[second] = self.per_second.get(second, 0) + 1
        entry = {
            "seq": self._seq,
            "method": method,
            "path": path,
            "account": account,
            "orderId": order_id,
            "invoiceNumber": invoice_number,
            "body": body,
            "status": None,
            "fault": None,
            "receivedAt": received,
            "appliedAt": None,
        }
        self._entries.append(entry)
        return entry

    def finish(self, entry: dict[str, Any], status: int | str) -> None:
        """Record what was answered (a status code, "dropped" or "stalled")."""
        entry["status"] = status
        key = (entry["method"], str(status))
        self.counters[key] = self.counters.get(key, 0) + 1

    def select(self, since: int = 0, **equal: str) -> list[dict[str, Any]]:
        """Entries with ``seq > since`` whose fields equal every given filter."""
        entries: Iterable[dict[str, Any]] = self._entries
        if self._entries and since >= self._entries[0]["seq"]:
            # seq is contiguous inside the deque, so skip straight to the first wanted entry.
            entries = itertools.islice(self._entries, since - self._entries[0]["seq"] + 1, None)
        return [e for e in entries if all(e[k] == v for k, v in equal.items())]

    def clear(self) -> None:
        """Drop every entry and counter (``seq`` continues)."""
        self._entries.clear()
        self.counters.clear()
        self.per_second.clear()

    def stats(self) -> dict[str, Any]:
        """Counters as ``{method: {status: n}}`` and OMS requests per wall-clock second."""
        counters: dict[str, dict[str, int]] = {}
        for (method, status), count in sorted(self.counters.items()):
            counters.setdefault(method, {})[status] = count
        per_second = [{"second": s, "count": c} for s, c in sorted(self.per_second.items())]
        return {
            "total": sum(self.per_second.values()),
            "counters": counters,
            "perSecond": per_second,
            "maxPerSecond": max(self.per_second.values(), default=0),
        }
