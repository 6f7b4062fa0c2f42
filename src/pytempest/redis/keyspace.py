"""Every Redis key pytempest builds itself, in one place.

Keys that belong to one topology share the hash tag ``{pt:<topology>}`` so that every
multi-key operation works on Redis Cluster. Keys that belong to a user's source key
(a list source's processing lists) take the source key as their hash tag instead, so
they live in the same slot as the key they serve.

| key | type | what |
|---|---|---|
| ``{pt:<topology>}:task:<task>`` | stream | task messages for ``<task>`` (distributed runtime) |
| ``{pt:<topology>}:results:<instance>`` | stream | results for one topology instance |
| ``{pt:<topology>}:hb:topology:<instance>`` | hash + TTL | heartbeat of a topology instance |
| ``{pt:<topology>}:hb:worker:<worker>`` | hash + TTL | heartbeat of a worker process |
| ``{pt:<topology>}:status`` | hash | latest status snapshot per instance (dashboard) |
| ``{pt:<topology>}:snapshot:<instance>`` | string (JSON) + TTL | an instance's dashboard snapshot (graph, rates, errors) |
| ``{pt:<topology>}:members`` | zset | ``topology:<instance>`` / ``worker:<worker>`` by last heartbeat (ms) |
| ``pt:topologies`` | set | names of topologies that ever sent a heartbeat |
| ``{<list key>}:processing:<consumer>`` | list | entries a list-source consumer holds |
| ``{<list key>}:deliveries`` | hash | delivery count per entry of a list source |
| ``{<list key>}:consumers`` | zset | list-source consumers by last-seen time (ms) |
| ``{<zset key>}:inflight`` | zset | sorted-set source members by lease expiry (ms) |
| ``{<zset key>}:deliveries`` | hash | delivery count per member of a sorted-set source |
| ``{<zset key>}:scores`` | hash | original score of each leased member (put back with it) |
"""

from __future__ import annotations

TOPOLOGIES = "pt:topologies"
TASK_GROUP = "workers"
"""The consumer group every worker of a task stream joins."""


def tag(topology: str) -> str:
    """The hash tag shared by every key of ``topology``."""
    return "{pt:" + topology + "}"


def task_stream(topology: str, task: str) -> str:
    """The stream of task messages for ``task``."""
    return f"{tag(topology)}:task:{task}"


def result_stream(topology: str, instance: str) -> str:
    """The stream of results for one topology instance."""
    return f"{tag(topology)}:results:{instance}"


def topology_heartbeat(topology: str, instance: str) -> str:
    """The heartbeat hash of one topology instance."""
    return f"{tag(topology)}:hb:topology:{instance}"


def worker_heartbeat(topology: str, worker: str) -> str:
    """The heartbeat hash of one worker process."""
    return f"{tag(topology)}:hb:worker:{worker}"


def heartbeat_pattern(topology: str) -> str:
    """A SCAN pattern matching every heartbeat of ``topology``."""
    return f"{tag(topology)}:hb:*"


def status(topology: str) -> str:
    """The hash of the latest status snapshot per instance."""
    return f"{tag(topology)}:status"


def snapshot(topology: str, instance: str) -> str:
    """The JSON status snapshot of one topology instance for dashboards
    (:mod:`pytempest.runtimes.status_publisher`), refreshed every interval, with a TTL."""
    return f"{tag(topology)}:snapshot:{instance}"


def members(topology: str) -> str:
    """The sorted set of every instance and worker of ``topology`` by last heartbeat (ms);
    a member whose heartbeat hash expired is stale (it died without saying goodbye)."""
    return f"{tag(topology)}:members"


def _source_tag(key: str) -> str:
    # A key that already carries a hash tag keeps it; otherwise the key itself is the tag.
    if "{" in key and "}" in key.split("{", 1)[1]:
        return key
    return "{" + key + "}"


def list_processing(key: str, consumer: str) -> str:
    """The processing list a list-source consumer moves entries into."""
    return f"{_source_tag(key)}:processing:{consumer}"


def list_deliveries(key: str) -> str:
    """The hash of delivery counts of a list source."""
    return f"{_source_tag(key)}:deliveries"


def list_consumers(key: str) -> str:
    """The sorted set of list-source consumers by last-seen time."""
    return f"{_source_tag(key)}:consumers"


def zset_inflight(key: str) -> str:
    """The sorted set of leased members of a sorted-set source."""
    return f"{_source_tag(key)}:inflight"


def zset_deliveries(key: str) -> str:
    """The hash of delivery counts of a sorted-set source."""
    return f"{_source_tag(key)}:deliveries"


def zset_scores(key: str) -> str:
    """The hash of original scores of a sorted-set source's leased members."""
    return f"{_source_tag(key)}:scores"
