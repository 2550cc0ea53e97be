"""Typed documents: every stored document kind is a pydantic model with its schema version, and
services read and write models through `Stored`, a typed view of one container: validated on
read, dumped on write (camelCase by alias, as stored), the store's ETag carried alongside
(`doc.etag`), so a conditional write cannot forget it (`replace` uses it unless told
`unconditional=True`). Serialisation happens here, at the store boundary; the document port and
the adapters move JSON.

A document written by an older release of the dev host may not validate: such data is recreated,
not migrated (README). `schemaVersion` says which shape a document has, for the day one is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.kernel.documents import DocumentStore, Item, Page, Query
from shared.kernel.errors import NotFound


class Document(BaseModel):
    """Base of every stored document: `id`, `schemaVersion`, fields camelCase as stored; unknown
    fields are refused (a field a model forgot would otherwise be dropped by the next write)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, extra="forbid"
    )

    SCHEMA_VERSION: ClassVar[int] = 1
    # An aggregate (shared/kernel/outbox.py) is written only through the outbox, never here.
    OUTBOX: ClassVar[bool] = False
    # Leave fields without a value out of the stored JSON (as the document was written before it
    # had a model) rather than store them as null.
    DROP_NONE: ClassVar[bool] = False

    id: str
    schema_version: int = Field(default=1, alias="schemaVersion")
    # The store's own fields come with a read and never go back (`body()` leaves them out). The
    # ETag is kept as a field rather than a private attribute: copies carry it for free.
    store_etag: str | None = Field(default=None, alias="_etag", exclude=True, repr=False)
    store_ts: Any = Field(default=None, alias="_ts", exclude=True, repr=False)
    store_rid: Any = Field(default=None, alias="_rid", exclude=True, repr=False)
    store_self: Any = Field(default=None, alias="_self", exclude=True, repr=False)
    store_attachments: Any = Field(default=None, alias="_attachments", exclude=True, repr=False)
    store_lsn: Any = Field(default=None, alias="_lsn", exclude=True, repr=False)

    @property
    def etag(self) -> str:
        """The store's ETag of the version read or written (a document built here has none)."""
        if self.store_etag is None:
            raise ValueError(f"{type(self).__name__} {self.id!r} was not read from the store")
        return self.store_etag

    @property
    def stored(self) -> bool:
        return self.store_etag is not None

    def over(self, current: Document) -> Self:
        """This document as the next version of `current` (a replace is conditional on its ETag)."""
        return self.model_copy(update={"store_etag": current.store_etag})

    def changed(self, **changes: Any) -> Self:
        """A copy with `changes` (field names, not aliases), keeping the ETag it was read with."""
        return self.model_copy(update=changes)

    def restated(self, **stored_fields: Any) -> Self:
        """A copy with fields given by their stored (camelCase) names, keeping the ETag; unlike
        `revised`, unvalidated: for rules whose values are already of the stored types."""
        names = _field_names(type(self))
        return self.model_copy(update={names.get(k, k): v for k, v in stored_fields.items()})

    def revised(self, **stored_fields: Any) -> Self:
        """A validated copy with fields given by their stored (camelCase) names, keeping the ETag."""
        fresh = type(self).model_validate({**self.body(), **stored_fields})
        fresh.store_etag = self.store_etag
        return fresh

    def __getitem__(self, stored_name: str) -> Any:
        """Read-only: a field by its stored (camelCase) name, as JSON (what a reader of the stored
        or served document sees). Services use the attributes."""
        return self.body()[stored_name]

    def body(self) -> Item:
        return self.model_dump(mode="json", by_alias=True, exclude_none=self.DROP_NONE)


D = TypeVar("D", bound=Document)

_NAMES: dict[type[BaseModel], dict[str, str]] = {}


def _field_names(model: type[BaseModel]) -> dict[str, str]:
    """Stored (alias) name → field name."""
    names = _NAMES.get(model)
    if names is None:
        names = _NAMES[model] = {(f.alias or n): n for n, f in model.model_fields.items()}
    return names


class Loaded(Sequence[D]):
    """A page's items, each validated when first used: a decision that stops at the first
    waiting entry behind its own, or only counts the page, validates no more than it reads."""

    def __init__(self, model: type[D], raw: list[Item]) -> None:
        self._model = model
        self._raw = raw
        self._loaded: list[D | None] = [None] * len(raw)

    def __len__(self) -> int:
        return len(self._raw)

    @overload
    def __getitem__(self, index: int) -> D: ...

    @overload
    def __getitem__(self, index: slice) -> list[D]: ...

    def __getitem__(self, index: int | slice) -> D | list[D]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._raw)))]
        found = self._loaded[index]
        if found is None:
            found = self._loaded[index] = load(self._model, self._raw[index])
        return found


@dataclass(frozen=True)
class TypedPage(Generic[D]):
    items: Sequence[D]
    continuation: str | None = None


def load(model: type[D], item: Item) -> D:
    """A stored item as its model, the store's system fields (the ETag among them) kept aside."""
    return model.model_validate(item)


def _written(doc: D, item: Item) -> D:
    """What a write returns: the model written (validated when it was built), now carrying the
    ETag the store gave it; validating the store's echo again would only cost time."""
    doc.store_etag = item.get("_etag")
    return doc


class Stored(Generic[D]):
    """The documents of kind `model` in one container."""

    def __init__(self, store: DocumentStore, container: str, model: type[D]) -> None:
        self._container = store.container(container)
        self._model = model
        self._pk = self._container.spec.partition_key_field

    def _load(self, item: Item) -> D:
        return load(self._model, item)

    async def read(self, id: str, partition_key: str | None = None) -> D:
        """`NotFound` if absent; `partition_key` defaults to the id (containers keyed by `/id`)."""
        return self._load(await self._container.read(id, id if partition_key is None else partition_key))

    async def read_or_none(self, id: str, partition_key: str | None = None) -> D | None:
        try:
            return await self.read(id, partition_key)
        except NotFound:
            return None

    async def create(self, doc: D) -> D:
        _not_an_aggregate(doc)
        return _written(doc, await self._container.create(doc.body()))

    async def replace(self, doc: D, *, unconditional: bool = False) -> D:
        """Replace the version `doc` was read as (`PreconditionFailed` if it changed since)."""
        _not_an_aggregate(doc)
        etag = None if unconditional else doc.etag
        return _written(doc, await self._container.replace(doc.body(), etag=etag))

    async def upsert(self, doc: D) -> D:
        _not_an_aggregate(doc)
        return _written(doc, await self._container.upsert(doc.body()))

    async def delete(self, id: str, partition_key: str | None = None, *, etag: str | None = None) -> None:
        await self._container.delete(id, id if partition_key is None else partition_key, etag=etag)

    async def query(
        self, query: Query, *, partition_key: str, max_items: int = 100, continuation: str | None = None
    ) -> TypedPage[D]:
        page = await self._container.query(
            query, partition_key=partition_key, max_items=max_items, continuation=continuation
        )
        return TypedPage(Loaded(self._model, page.items), page.continuation)

    async def query_stored(
        self, query: Query, *, partition_key: str, max_items: int = 100, continuation: str | None = None
    ) -> Page:
        """A page as stored JSON, for a hot path that maps every item to its own values at once
        (routing's seat and waiting pages, shared/routing/seats.py: validating each of the
        documents our own code wrote costs a decision a third of its time, measured)."""
        return await self._container.query(
            query, partition_key=partition_key, max_items=max_items, continuation=continuation
        )

    async def count(self, query: Query, *, partition_key: str) -> int:
        return await self._container.count(query, partition_key=partition_key)

    async def query_cross_partition(
        self, query: Query, *, max_items: int = 100, continuation: str | None = None
    ) -> TypedPage[D]:
        page = await self._container.query_cross_partition(
            query, max_items=max_items, continuation=continuation
        )
        return TypedPage([self._load(i) for i in page.items], page.continuation)


def _not_an_aggregate(doc: Document) -> None:
    if doc.OUTBOX:
        raise TypeError(
            f"{type(doc).__name__} is an aggregate: write it through shared.kernel.outbox.Aggregates"
        )


def bodies(docs: Sequence[Document]) -> list[Item]:
    return [d.body() for d in docs]
