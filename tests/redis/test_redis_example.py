"""examples/redis_stream: the producer, the topology with its Topology.toml, the commands."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import redis

from pytempest import TestRun
from pytempest.config import configure
from pytempest.deadletters.redis import record_from_fields

EXAMPLE = Path(__file__).parents[2] / "examples" / "redis_stream"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"redis_example_{name}", EXAMPLE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_totals_every_good_order_and_dead_letters_the_broken_ones(
    redis_url: str, key_prefix: str, r: redis.Redis
) -> None:
    producer, example = load("producer"), load("topology")
    key, dead = f"{key_prefix}:orders", f"{key_prefix}:orders:dead"
    bodies = producer.orders(200, broken_every=50)
    producer.prime(redis_url, key, bodies)
    configured = configure(example.topology(key, dead, redis_url), EXAMPLE / "Topology.toml")
    metrics = TestRun(configured.topology).run(timeout_ms=30_000)

    good = [json.loads(b) for b in bodies if b"amount" in b]
    expected: dict[str, int] = {}
    for order in good:
        expected[order["currency"]] = expected.get(order["currency"], 0) + int(
            Decimal(str(order["amount"])) * 100
        )
    assert dict(example.TOTALS) == expected
    assert metrics.get_int("orders.flag.big") == sum(1 for o in good if o["amount"] >= 100)
    assert metrics.get_int("orders.source.msg.acked.success") == 200
    letters = [record_from_fields(f) for _, f in r.xrange(dead)]
    assert len(letters) == 4 and {letter.attempts for letter in letters} == {3}
    assert all(letter.task == "parse" and "without 'amount'" in letter.error for letter in letters)
    assert r.xpending(key, "totals")["pending"] == 0


def test_the_readme_commands_run(redis_url: str, key_prefix: str, r: redis.Redis) -> None:
    env = {
        **os.environ,
        "PYTEMPEST_REDIS_URL": redis_url,
        "ORDERS_STREAM": f"{key_prefix}:orders",
        "ORDERS_DEAD": f"{key_prefix}:orders:dead",
    }
    cli = [sys.executable, "-c", "from pytempest.cli.main import main; main()"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)

    produced = run(sys.executable, str(EXAMPLE / "producer.py"), "--count", "100", "--broken-every", "50")
    assert produced.returncode == 0, produced.stderr
    ran = run(
        *cli,
        "run",
        f"{EXAMPLE}/topology.py:topology",
        "--config",
        str(EXAMPLE / "Topology.toml"),
        "--until-idle",
    )
    assert ran.returncode == 0, ran.stderr
    listed = run(*cli, "deadletter", "list", "--key", f"{key_prefix}:orders:dead")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("attempts=3") == 2
