"""One module per system; each runs a :class:`~benchmarks.suite.spec.Job` in its child process."""
