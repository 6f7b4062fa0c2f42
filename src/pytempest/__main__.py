"""``python -m pytempest``: the same as the ``pytempest`` command."""

from pytempest.cli.main import main

if __name__ == "__main__":
    main()
