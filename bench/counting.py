"""The one document store wrapper that counts what the code asks of the store port, by kind: point
operations (create/read/replace/upsert/delete), in-partition queries (counts included),
cross-partition queries and batches; each also per container (`<container>:<kind>`). Benchmarks
and every op-count test use it to show what a path costs in Cosmos DB terms."""

from __future__ import annotations

from collections import Counter
from typing import Any

from shared.kernel.documents import Container, DocumentStore

POINT = ("create", "read", "replace", "upsert", "delete")


class CountingContainer:
    def __init__(self, inner: Container, counts: Counter[str]) -> None:
        self._inner = inner
        self._counts = counts
        self.spec = inner.spec

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in POINT:
            kind = f"point.{name}"
        elif name in ("query", "count"):  # a count is a query in one partition (SELECT VALUE COUNT(1))
            kind = "query.in-partition"
        elif name == "query_cross_partition":
            kind = "query.cross-partition"
        elif name == "batch":
            kind = "batch"
        else:
            return attr
        container = self.spec.name

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self._counts[kind] += 1
            self._counts[f"{container}:{kind}"] += 1
            return await attr(*args, **kwargs)

        return counted


class CountingStore:
    def __init__(self, inner: DocumentStore) -> None:
        self._inner = inner
        self.counts: Counter[str] = Counter()
        self._containers: dict[str, CountingContainer] = {}

    def container(self, name: str) -> Any:
        if name not in self._containers:
            self._containers[name] = CountingContainer(self._inner.container(name), self.counts)
        return self._containers[name]

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()

    def take(self) -> Counter[str]:
        """The counts so far, and start again from zero."""
        taken = Counter(self.counts)
        self.counts.clear()
        return taken


def summary(counts: Counter[str], per: int = 1) -> dict[str, float]:
    kinds = ("point", "query.in-partition", "query.cross-partition", "batch")
    out: dict[str, float] = {}
    for kind in kinds:
        total = sum(v for k, v in counts.items() if ":" not in k and k.startswith(kind))
        out[kind] = round(total / per, 2)
    return out
