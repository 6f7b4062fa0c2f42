"""Load a topology from a ``module:attribute`` or ``path/to/file.py:attribute`` target."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytempest.config import Configured, configure
from pytempest.config.kinds import did_you_mean
from pytempest.errors import PytempestError, TargetError
from pytempest.topology import Topology


def load_topology(target: str) -> Topology:
    """Import ``target`` and return the topology it names.

    The attribute may be a :class:`Topology` or a function with no arguments returning
    one. A bad target raises :class:`TargetError` with a one-line message saying what
    was looked for and what was found.
    """
    module_part, sep, attr = target.rpartition(":")
    if not sep or not module_part or not attr:
        raise TargetError(
            f"target {target!r} must be module:attribute or path/to/file.py:attribute "
            "(e.g. examples/wordcount.py:topology)"
        )
    module = _import(module_part, target)
    if not hasattr(module, attr):
        names = sorted(n for n in vars(module) if isinstance(getattr(module, n), Topology))
        hint = did_you_mean(attr, [n for n in vars(module) if not n.startswith("_")])
        hint += f"; topologies there: {', '.join(names)}" if names else ""
        raise TargetError(f"target {target!r}: {module_part} has no attribute {attr!r}{hint}")
    value = getattr(module, attr)
    if callable(value) and not isinstance(value, Topology):
        try:
            value = value()
        except PytempestError:
            raise
        except Exception as exc:
            raise TargetError(
                f"target {target!r}: calling {attr}() raised {type(exc).__name__}: {exc}"
            ) from exc
    if not isinstance(value, Topology):
        raise TargetError(
            f"target {target!r}: {attr} is a {type(value).__name__}, not a Topology "
            "(or a function returning one)"
        )
    return value


def _import(module_part: str, target: str) -> object:
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        path = Path(module_part)
        if not path.is_file():
            raise TargetError(f"target {target!r}: file {module_part} does not exist")
        name = f"pytempest_target_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise TargetError(f"target {target!r}: cannot load {module_part} as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        parent = str(path.resolve().parent)
        if parent not in sys.path:
            sys.path.insert(0, parent)
        try:
            spec.loader.exec_module(module)
        except PytempestError:
            raise
        except Exception as exc:
            raise TargetError(
                f"target {target!r}: importing {module_part} raised {type(exc).__name__}: {exc}"
            ) from exc
        return module
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        return importlib.import_module(module_part)
    except ModuleNotFoundError as exc:
        if exc.name and module_part.startswith(exc.name):
            raise TargetError(f"target {target!r}: no module named {exc.name!r}") from None
        raise TargetError(f"target {target!r}: importing {module_part} failed: {exc}") from exc
    except PytempestError:
        raise
    except Exception as exc:
        raise TargetError(
            f"target {target!r}: importing {module_part} raised {type(exc).__name__}: {exc}"
        ) from exc


def load_configured(
    target: str, config_path: str | None = None, flags: Mapping[str, Any] | None = None
) -> Configured:
    """Load ``target`` and apply the configuration: the code < ``config_path`` (or
    ``$PYTEMPEST_CONFIG``) < ``PYTEMPEST_*`` variables < ``flags`` (setting key -> value)."""
    return configure(load_topology(target), config_path, flags=flags)
