"""The distributed runtime: a topology process and task worker processes that talk only
through Redis streams (see docs/distributed.md).

    from pytempest.runtimes.redis_bus import RedisBusExecutor, Worker, BusSettings
"""

from pytempest.runtimes.redis_bus.executor import RedisBusExecutor
from pytempest.runtimes.redis_bus.settings import BusSettings
from pytempest.runtimes.redis_bus.worker import Worker

__all__ = ["BusSettings", "RedisBusExecutor", "Worker"]
