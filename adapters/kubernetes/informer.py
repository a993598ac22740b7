"""A list-and-watch cache of one kind of object, as client-go's informers keep them.

Why not poll: a reconciler must react to a changed PodAutoscaler or a pod turning Ready within
a second, and listing every object every second does not scale. Why a relist: watches end
(server timeouts, API server restarts, `410 Gone` after compaction); each time the cache is
rebuilt from a fresh list, and every object that changed meanwhile is reported, so nothing is
missed. Objects are kept as the plain values `transform` makes of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from kubernetes_asyncio import watch

log = logging.getLogger(__name__)
DEADLINE_MARGIN_S = 5.0
"""A list or a watch ends at the latest this long after the watch timeout: the server ends a
watch at its timeout, but a connection that goes silent (a black-holed network path) ends
nothing, and kubernetes_asyncio sets no client deadline of its own."""

Key = tuple[str, str]
V = TypeVar("V")


def metadata_of(obj: Any) -> tuple[str, str, str]:
    """(namespace, name, resourceVersion) of a typed model or a plain dict."""
    if isinstance(obj, dict):
        meta = obj.get("metadata") or {}
        return meta.get("namespace", ""), meta.get("name", ""), meta.get("resourceVersion", "")
    meta = obj.metadata
    return meta.namespace or "", meta.name, meta.resource_version or ""


class Informer(Generic[V]):
    """`start()` runs it; `objects` is the cache; `on_change(key, old, new)` is called for
    every addition, change and deletion (new is None), also those found by a relist."""

    def __init__(
        self,
        name: str,
        list_call: Callable[..., Awaitable[Any]],
        transform: Callable[[Any], V],
        on_change: Callable[[Key, V | None, V | None], None],
        *,
        watch_timeout_s: int = 300,
        retry_s: float = 1.0,
        **list_kwargs: Any,
    ) -> None:
        self.name = name
        self.list_call = list_call
        self.transform = transform
        self.on_change = on_change
        self.watch_timeout_s = watch_timeout_s
        self.retry_s = retry_s
        self.list_kwargs = list_kwargs
        self.objects: dict[Key, V] = {}
        self.synced = asyncio.Event()
        self.relists = 0
        """How many times the cache was rebuilt from a list (1 + recoveries)."""

    async def run(self) -> None:
        while True:
            try:
                version = await self._relist()
                await self._watch(version)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # dropped connection, 410 Gone, API server restarting
                log.info("%s watch ended (%s); relisting", self.name, error)
                await asyncio.sleep(self.retry_s)

    @property
    def deadline_s(self) -> float:
        return self.watch_timeout_s + DEADLINE_MARGIN_S

    async def _relist(self) -> str:
        async with asyncio.timeout(self.deadline_s):
            listing = await self.list_call(**self.list_kwargs)
        items = listing["items"] if isinstance(listing, dict) else listing.items
        fresh: dict[Key, V] = {}
        for obj in items:
            namespace, name, _ = metadata_of(obj)
            fresh[(namespace, name)] = self.transform(obj)
        old = self.objects
        self.objects = fresh
        for key in old.keys() - fresh.keys():
            self.on_change(key, old[key], None)
        for key, value in fresh.items():
            if old.get(key) != value:
                self.on_change(key, old.get(key), value)
        self.relists += 1
        self.synced.set()
        meta = listing["metadata"] if isinstance(listing, dict) else listing.metadata
        return meta["resourceVersion"] if isinstance(meta, dict) else meta.resource_version

    async def _watch(self, version: str) -> None:
        """Follow changes from `version` until the server ends the watch; then relist only if
        the resume point is gone (the caller relists on any error, a silent watch's deadline
        among them)."""
        watcher = watch.Watch()
        while True:
            stream = watcher.stream(
                self.list_call,
                resource_version=version,
                timeout_seconds=self.watch_timeout_s,
                **self.list_kwargs,
            )
            async with asyncio.timeout(self.deadline_s), stream as events:
                async for event in events:
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        raise RuntimeError(f"watch error: {obj}")
                    namespace, name, version = metadata_of(obj)
                    if kind == "BOOKMARK":
                        continue
                    key = (namespace, name)
                    old = self.objects.get(key)
                    if kind == "DELETED":
                        self.objects.pop(key, None)
                        self.on_change(key, old, None)
                    else:
                        new = self.transform(obj)
                        self.objects[key] = new
                        if new != old:
                            self.on_change(key, old, new)
