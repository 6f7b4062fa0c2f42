"""The reliability harness of pytempest: real processes, real Redis, real faults.

* :mod:`.messages`: numbered messages with a checksum, and a producer that writes them;
* :mod:`.topology`: the topology every scenario runs (``decode -> work -> sink``);
* :mod:`.checker`: reads the outcome records (sink stream, dead letters, the source's
  pending list, handle logs) and says what became of every message;
* :mod:`.redis_server`, :mod:`.proxy`, :mod:`.procs`: a redis-server of our own (to stop,
  kill, pause, restart), a TCP proxy (to cut, delay, black-hole), processes to signal;
* :mod:`.lab`: one scenario's keys, processes and servers;
* :mod:`.scenarios`: the scenarios by id (``docs/guarantees.md`` has the table).

The CI subset runs from ``tests/faults/``; the whole suite and the soak run with
``python -m reliability`` (see ``docs/guarantees.md``).
"""
