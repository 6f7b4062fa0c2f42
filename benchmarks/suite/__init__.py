"""The side-by-side suite: W1 to W5 on pytempest, a bare redis-py loop and the peers.

``python -m benchmarks all`` runs it; :mod:`benchmarks.suite.runner` orchestrates, each
system runs in a fresh process (:mod:`benchmarks.suite.child`), and
:mod:`benchmarks.suite.report` writes ``docs/performance.md`` and its chart.
"""
