"""Orders from a Redis stream: parse them, total them per currency, flag the big ones.

    python examples/redis_stream/producer.py --count 1000
    pytempest run examples/redis_stream/topology.py:topology --config examples/redis_stream/Topology.toml --until-idle
    pytempest deadletter list --key orders:dead

The producer appends orders (JSON) to the stream ``orders``; one in a hundred is broken.
``parse`` decodes an order and sends it to ``total`` and ``flag``. A broken order makes
``parse`` raise: it is retried twice, then written to the dead-letter stream
``orders:dead`` with its error and attempts, and acked. An order is acked only once both
``total`` and ``flag`` handled it. Stop the topology with Ctrl-C at any time: what was not
finished stays pending in the consumer group and is read again on the next start.

``PYTEMPEST_REDIS_URL`` sets the Redis (default ``redis://127.0.0.1:6379/0``),
``ORDERS_STREAM`` and ``ORDERS_DEAD`` the two keys.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
from decimal import Decimal

from pytempest import FailurePolicy, Pipeline, Task, Topology, task
from pytempest.deadletters import RedisStreamDeadLetter
from pytempest.sources import RedisStreamSource

URL = os.environ.get("PYTEMPEST_REDIS_URL", "redis://127.0.0.1:6379/0")
log = logging.getLogger("orders")

TOTALS: collections.Counter[str] = collections.Counter()
_lock = threading.Lock()


class Parse(Task):
    """Decodes an order; a body that is not a complete order raises (retried, then dead-lettered)."""

    name = "parse"

    def handle(self, body: bytes) -> list[bytes]:
        order = json.loads(body)
        for field in ("id", "amount", "currency"):
            if field not in order:
                raise ValueError(f"order without {field!r}: {body[:80]!r}")
        return [json.dumps(order, sort_keys=True).encode()]


@task("total")
def total(body: bytes) -> None:
    """Adds the amount to its currency's total (in cents)."""
    order = json.loads(body)
    with _lock:
        TOTALS[order["currency"]] += int(Decimal(str(order["amount"])) * 100)


class Flag(Task):
    """Counts orders of 100 or more (``<topology>.flag.big``) and logs them."""

    name = "flag"

    def filter(self, body: bytes) -> bool:
        return float(json.loads(body)["amount"]) >= 100

    def handle(self, body: bytes) -> None:
        self.metrics.incr("big")
        log.info("big order: %s", body.decode())


def topology(key: str | None = None, dead_letter_key: str | None = None, url: str = URL) -> Topology:
    """The orders topology on stream ``key`` (group ``totals``)."""
    key = key or os.environ.get("ORDERS_STREAM", "orders")
    dead_letter_key = dead_letter_key or os.environ.get("ORDERS_DEAD", "orders:dead")
    pipeline = Pipeline().task(Parse()).task(total).task(Flag()).edge("parse", "total").edge("parse", "flag")
    source = RedisStreamSource(url, key, "totals", block_ms=1000)
    return Topology(
        "orders",
        pipeline,
        source,
        failure_policy=FailurePolicy.retry(2, delay_ms=200),
        dead_letter=RedisStreamDeadLetter(url, dead_letter_key),
    )
