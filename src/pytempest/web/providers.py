"""Where the dashboard's data comes from: a Redis (``pytempest director``) or the
topology running in this process (``pytempest run --dashboard``).

Both answer the same three questions (the overview, one topology, its dead letter) with
the shapes of :mod:`pytempest.web.views`, so the web app and the pages do not know which
one they talk to. The Redis provider reads only what the runtime publishes: the
topology names (``pt:topologies``), heartbeats, members and task streams (through
:func:`~pytempest.runtimes.redis_bus.status.collect_status`) and the status snapshots
(``{pt:<topology>}:snapshot:<instance>``).
"""

from __future__ import annotations

import abc
import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pytempest.model.message import now_ms
from pytempest.redis import keyspace
from pytempest.redis.connection import check_url, connect, connection_error, connection_problem, mask_url
from pytempest.web.deadletters import DeadLetterView, view_for_object, view_for_snapshot
from pytempest.web.views import overview_row, topology_state

if TYPE_CHECKING:
    from pytempest.deadletters.base import DeadLetter
    from pytempest.runtimes.status_publisher import StatusPublisher

log = logging.getLogger("pytempest.web")


class NotFound(LookupError):
    """The topology is not known here."""


class Provider(abc.ABC):
    """The data behind the dashboard."""

    where: str
    """What the header says the data comes from (a masked URL, or ``in process``)."""

    @abc.abstractmethod
    async def overview(self) -> dict[str, Any]:
        """``{"where", "now_ms", "topologies": [overview rows]}``."""

    @abc.abstractmethod
    async def topology(self, name: str) -> dict[str, Any]:
        """The topology page's data; :class:`NotFound` when unknown."""

    @abc.abstractmethod
    async def dead_letter(self, name: str) -> DeadLetterView:
        """The dead letter of ``name``; :class:`NotFound` when the topology is unknown."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class RedisProvider(Provider):
    """Reads every topology that published to the Redis at ``url``.

    ``deadletter_urls`` are other Redis URLs (with credentials) the director may use to
    reach dead letters that live elsewhere than ``url``.
    """

    def __init__(self, url: str, deadletter_urls: Sequence[str] = ()) -> None:
        self.url = check_url(url, "pytempest director --redis")
        self.deadletter_urls = [self.url, *(check_url(u, "--deadletter-redis") for u in deadletter_urls)]
        self.where = mask_url(self.url)
        self._client: Any = None

    async def _status(self, name: str | None) -> dict[str, Any]:
        from pytempest.runtimes.redis_bus.status import collect_status

        return await collect_status(self.url, name)

    async def _snapshots(self, top: dict[str, Any]) -> list[dict[str, Any]]:
        names = list(
            dict.fromkeys([*(i["name"] for i in top.get("instances", [])), *top.get("snapshots", {})])
        )
        if not names:
            return []
        if self._client is None:
            self._client = connect(self.url)
        try:
            raw = await self._client.mget([keyspace.snapshot(top["name"], n) for n in names])
        except Exception as exc:
            if connection_problem(exc):
                raise connection_error(self.url, exc, "pytempest director") from exc
            raise
        out = []
        for value in raw:
            if value is None:
                continue
            try:
                snap = json.loads(value)
            except ValueError:
                continue
            if isinstance(snap, dict):
                out.append(snap)
        return out

    async def overview(self) -> dict[str, Any]:
        status = await self._status(None)
        rows = []
        for top in status["topologies"]:
            state = topology_state(top["name"], await self._snapshots(top), top)
            if state["status"] == "unknown":
                continue  # listed in pt:topologies, but nothing of it is left in Redis
            view = view_for_snapshot(state["dead_letter"], self.deadletter_urls)
            count = None
            if view.available:
                try:
                    count = await view.count()
                except Exception as exc:
                    log.debug("dead letter count of %s failed: %r", top["name"], exc)
            rows.append(overview_row(state, count))
        return {"where": self.where, "now_ms": now_ms(), "topologies": rows}

    async def _state(self, name: str) -> dict[str, Any]:
        status = await self._status(name)
        top = status["topologies"][0]
        snapshots = await self._snapshots(top)
        if not (snapshots or top["instances"] or top["workers"] or top["snapshots"]):
            raise NotFound(name)
        return topology_state(name, snapshots, top)

    async def topology(self, name: str) -> dict[str, Any]:
        state = await self._state(name)
        return {"where": self.where, "now_ms": now_ms(), **state}

    async def dead_letter(self, name: str) -> DeadLetterView:
        state = await self._state(name)
        return view_for_snapshot(state["dead_letter"], self.deadletter_urls)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


class MemoryProvider(Provider):
    """Serves the snapshot of the topology running in this process (from memory).

    ``running`` tells whether the engine still runs. The web server may run on another
    thread: it only reads :attr:`StatusPublisher.latest`, which the publisher replaces
    as a whole on the engine's loop.
    """

    where = "in process"

    def __init__(self, publisher: StatusPublisher, dead_letter: DeadLetter | None,
                 running: Callable[[], bool] = lambda: True) -> None:  # fmt: skip
        self.publisher = publisher
        self._dead_letter = dead_letter
        self._running = running

    @property
    def name(self) -> str:
        """The topology's name."""
        return self.publisher.topology.name

    def _state(self, name: str) -> dict[str, Any]:
        if name != self.name:
            raise NotFound(name)
        snap = self.publisher.latest
        return topology_state(name, [snap] if snap else [], None, running=self._running())

    async def overview(self) -> dict[str, Any]:
        state = self._state(self.name)
        count = None
        view = await self.dead_letter(self.name)
        if view.available:
            try:
                count = await view.count()
            except Exception as exc:
                log.debug("dead letter count failed: %r", exc)
        return {"where": self.where, "now_ms": now_ms(), "topologies": [overview_row(state, count)]}

    async def topology(self, name: str) -> dict[str, Any]:
        return {"where": self.where, "now_ms": now_ms(), **self._state(name)}

    async def dead_letter(self, name: str) -> DeadLetterView:
        if name != self.name:
            raise NotFound(name)
        snap = self.publisher.latest or {}
        return view_for_object(self._dead_letter, snap.get("dead_letter"))
