"""The command line: one entry point, ``pytempest``, thin over library functions."""
