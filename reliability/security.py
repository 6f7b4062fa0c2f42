"""Least-privilege ACL users for a topology, its workers and ``pytempest status``, and the
scenario that runs everything under them (``docs/security.md`` shows the same rules; a
test checks that the two agree).

The rules name commands one by one (no categories) and keys by pattern:

* **topology** (``pytempest run`` / ``pytempest topology``): the source stream, the dead
  letter, the topology's bus keys ``{pt:<name>}:*`` and the registry set ``pt:topologies``;
* **worker** (``pytempest task``): the bus keys only;
* **status** (``pytempest status``): reads the bus keys.

Commands inside the source's Lua scripts are checked by Redis too, so they are listed.
"""

from __future__ import annotations

CONNECTION = "+ping +hello +multi +exec +discard"
TOPOLOGY = (
    f"{CONNECTION} "
    "+xreadgroup +xack +xgroup|create +xinfo|consumers +xinfo|groups +xpending +xclaim +xrange +xdel "
    "+xtrim +xlen +evalsha +script|load "
    "+xadd +xread +hset +hgetall +del +pexpire +sadd +set +zadd +zrem +zremrangebyscore"
)
WORKER = (
    f"{CONNECTION} "
    "+xreadgroup +xack +xdel +xadd +xautoclaim +xclaim +xpending +xgroup|create +xgroup|delconsumer "
    "+hset +del +pexpire +exists +zadd +zrange +zrem +zremrangebyscore"
)
STATUS = f"{CONNECTION} +scan +smembers +exists +type +hget +hgetall +xinfo|groups +xlen +xpending +zrange"


def topology_keys(name: str, source_key: str, dead_letter_key: str) -> list[str]:
    return [f"~{source_key}", f"~{dead_letter_key}", "~{pt:" + name + "}:*", "~pt:topologies"]


def worker_keys(name: str) -> list[str]:
    return ["~{pt:" + name + "}:*"]


def status_keys() -> list[str]:
    return ["~{pt:*}:*", "~pt:topologies"]


def setuser(name: str, password: str, keys: list[str], commands: str) -> list[str]:
    """The ``ACL SETUSER`` arguments of one user."""
    return ["ACL", "SETUSER", name, "reset", "on", f">{password}", *keys, *commands.split()]
