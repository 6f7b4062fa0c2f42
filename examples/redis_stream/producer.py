"""Appends orders to the stream of the example topology (one in ``--broken-every`` is broken).

python examples/redis_stream/producer.py --count 1000 [--key orders] [--broken-every 100]
"""

from __future__ import annotations

import argparse
import json
import os
import random

from pytempest.sources.redis_stream import prime

URL = os.environ.get("PYTEMPEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def orders(count: int, broken_every: int, seed: int = 7) -> list[bytes]:
    """``count`` order bodies; every ``broken_every``-th lacks its amount (0: none broken)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        order = {
            "id": i,
            "amount": round(rng.uniform(1, 150), 2),
            "currency": rng.choice(["EUR", "USD", "GBP"]),
        }
        if broken_every and i % broken_every == broken_every - 1:
            del order["amount"]
        out.append(json.dumps(order).encode())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Append orders to a Redis stream.")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--key", default=os.environ.get("ORDERS_STREAM", "orders"))
    parser.add_argument("--broken-every", type=int, default=100)
    parser.add_argument("--url", default=URL)
    args = parser.parse_args()
    ids = prime(args.url, args.key, orders(args.count, args.broken_every))
    print(f"appended {len(ids)} orders to {args.key} (last id {ids[-1] if ids else '-'})")


if __name__ == "__main__":
    main()
