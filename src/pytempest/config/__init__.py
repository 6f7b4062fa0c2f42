"""Configuration: ``Topology.toml``, ``PYTEMPEST_*`` environment variables and flags.

Precedence, lowest first: the code < ``Topology.toml`` < environment < command line::

    from pytempest.config import configure

    configured = configure(topology, "Topology.toml")   # env and flags optional
    configured.topology            # the topology to run
    configured.tasks["enrich"]     # TaskSettings(workers=4, batch=100, ...)

Every setting is declared once in :mod:`pytempest.config.settings`; the options of
sources, dead letters and metric targets are their constructors' keyword arguments, and
:mod:`pytempest.config.kinds` is the one place that maps kind strings to classes.
"""

from pytempest.config.apply import Configured, apply_config, configure
from pytempest.config.loader import ComponentSpec, Config, TaskSettings, Value, load_config
from pytempest.config.settings import SETTINGS, Setting

__all__ = [
    "SETTINGS",
    "ComponentSpec",
    "Config",
    "Configured",
    "Setting",
    "TaskSettings",
    "Value",
    "apply_config",
    "configure",
    "load_config",
]
