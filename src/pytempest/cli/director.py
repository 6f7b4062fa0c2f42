"""``pytempest director`` and ``pytempest run --dashboard``: the web dashboard.

``director`` serves every topology that publishes to a Redis (the distributed
runtime's topology processes write a status snapshot every heartbeat); ``run
--dashboard`` serves the topology running in that process, from memory. Both need the
``dashboard`` extra (``pip install 'pytempest[dashboard]'``). See docs/dashboard.md.

Security: the server listens on 127.0.0.1 unless told otherwise; listening on any
other address needs a token (``--token`` / ``$PYTEMPEST_DASHBOARD_TOKEN``). Requests
with a foreign ``Host`` header are refused; requeue and purge are POST requests that
carry the page's CSRF token.

Exit codes: 0 stopped by SIGINT/SIGTERM; 2 bad usage, the extra is missing, or the
address cannot be used; 3 Redis cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import socket
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pytempest.cli.options import EXIT_SOURCE, EXIT_USAGE, fail, log_options, setup_logging

if TYPE_CHECKING:
    from pytempest.engine.events import EngineObserver
    from pytempest.metrics.registry import Registry
    from pytempest.topology import Topology
    from pytempest.web.server import DashboardServer

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

TOKEN_ENV = "PYTEMPEST_DASHBOARD_TOKEN"
DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = 8090


def _need_extra(what: str) -> None:
    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        fail(f"{what} needs {' and '.join(missing)}: pip install 'pytempest[dashboard]'", EXIT_USAGE)


def _check_exposure(bind: str, token: str | None, flag: str) -> None:
    from pytempest.web.security import is_loopback

    if not is_loopback(bind) and not token:
        fail(
            f"listening on {bind} exposes the dashboard (and its requeue and purge buttons) to the network: "
            f"give a token with {flag} TOKEN or ${TOKEN_ENV} (or keep the default --bind 127.0.0.1)",
            EXIT_USAGE,
        )


def _server(app: Any, bind: str, port: int) -> DashboardServer:
    from pytempest.web.server import DashboardError, DashboardServer

    try:
        return DashboardServer(app, bind, port)
    except DashboardError as exc:
        fail(str(exc), EXIT_USAGE)


def _announce(server: DashboardServer, what: str, token: str | None) -> None:
    hint = "  (open it once with ?token=YOUR_TOKEN)" if token else ""
    click.echo(f"pytempest dashboard for {what}: {server.url}{hint}", err=True)


@click.command()
@click.option(
    "--redis",
    "url",
    metavar="URL",
    default=None,
    help="Redis the topologies publish to (default $PYTEMPEST_REDIS_URL, else redis://127.0.0.1:6379/0).",
)
@click.option(
    "--bind",
    default=DEFAULT_BIND,
    show_default=True,
    metavar="ADDRESS",
    help="Address to listen on; any other than a loopback address needs --token.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    default=None,
    metavar="TOKEN",
    help=f"Every request must carry this token (cookie after ?token=, or Authorization: Bearer). [env {TOKEN_ENV}]",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="A host name the dashboard is reached by (besides IP addresses and localhost); repeatable.",
)
@click.option(
    "--deadletter-redis",
    "deadletter_urls",
    multiple=True,
    metavar="URL",
    help="Another Redis where dead letters live (with its credentials); repeatable.",
)
@log_options
def director(url: str | None, bind: str, port: int, token: str | None, allow_hosts: tuple[str, ...],
             deadletter_urls: tuple[str, ...], log_level: str | None, log_format: str | None) -> None:  # fmt: skip
    """Serve the web dashboard of every topology that publishes to a Redis: status,
    pipeline graph, rates, failures with tracebacks, and dead letters (requeue, purge).

    Stops on SIGINT/SIGTERM.
    """
    from pytempest.cli.options import exit_codes
    from pytempest.runtimes.redis_bus.settings import redis_url_from_env

    _need_extra("pytempest director")
    setup_logging(log_level, log_format)
    _check_exposure(bind, token, "--token")
    from pytempest.errors import SourceError
    from pytempest.redis.connection import check_url, mask_url
    from pytempest.web.app import create_app
    from pytempest.web.providers import RedisProvider
    from pytempest.web.security import Security

    with exit_codes():
        url = check_url(redis_url_from_env(url), "--redis")
        provider = RedisProvider(url, deadletter_urls)
    try:
        asyncio.run(_ping(url))
    except SourceError as exc:
        fail(str(exc), EXIT_SOURCE)
    server = _server(create_app(provider, Security(token, allow_hosts, bind)), bind, port)
    _announce(server, f"the topologies on {mask_url(url)}", token)
    server.serve()


async def _ping(url: str) -> None:
    from pytempest.redis.connection import connect, connection_error

    client = connect(url)
    try:
        await client.ping()
    except Exception as exc:
        raise connection_error(url, exc, "pytempest director") from exc
    finally:
        await client.aclose()


# -- run --dashboard ---------------------------------------------------------------------
def dashboard_options(func: F) -> F:
    """``--dashboard``, ``--dashboard-bind``, ``--dashboard-port``, ``--dashboard-token``
    (``pytempest run``); read them back with :func:`embedded_dashboard`."""
    options = [
        click.option("--dashboard", "dashboard", is_flag=True,
                     help="Serve the web dashboard of this topology while it runs (pytempest[dashboard])."),
        click.option("--dashboard-bind", "dashboard_bind", default=DEFAULT_BIND, show_default=True,
                     metavar="ADDRESS", help="Address of --dashboard; any but loopback needs --dashboard-token."),
        click.option("--dashboard-port", "dashboard_port", type=click.IntRange(0, 65535),
                     default=DEFAULT_PORT, show_default=True, help="Port of --dashboard."),
        click.option("--dashboard-token", "dashboard_token", envvar=TOKEN_ENV, default=None, metavar="TOKEN",
                     help=f"Token of --dashboard. [env {TOKEN_ENV}]"),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


class EmbeddedDashboard:
    """The dashboard of ``pytempest run --dashboard``: a status publisher observing the
    engine (give the engine :attr:`registry` and :attr:`observers`) and a web server on
    its own thread serving the publisher's latest snapshot."""

    def __init__(self, topology: Topology, bind: str, port: int, token: str | None) -> None:
        from pytempest.metrics.registry import Registry
        from pytempest.runtimes.status_publisher import StatusPublisher
        from pytempest.web.app import create_app
        from pytempest.web.providers import MemoryProvider
        from pytempest.web.security import Security

        self.topology = topology
        self.registry: Registry = Registry()
        instance = f"{socket.gethostname()}-{os.getpid()}"
        self.publisher = StatusPublisher(topology, self.registry, instance=instance, mode="in_process")
        self.running = True
        provider = MemoryProvider(self.publisher, topology.dead_letter, running=lambda: self.running)
        self.server = _server(create_app(provider, Security(token, (), bind)), bind, port)
        self.token = token

    @property
    def observers(self) -> Sequence[EngineObserver]:
        """What the engine must be given."""
        return (self.publisher,)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Serve while ``coro`` (the engine's run) runs; the page says ``stopped`` after."""
        self.server.start()
        _announce(self.server, f"topology {self.topology.name}", self.token)
        try:
            async with self.publisher.publishing():
                return await coro
        finally:
            self.running = False
            self.server.stop()


def embedded_dashboard(topology: Topology, options: dict[str, Any]) -> EmbeddedDashboard | None:
    """Take the options of :func:`dashboard_options` out of ``options``; the dashboard to
    run, or None without ``--dashboard``."""
    enabled = options.pop("dashboard", False)
    bind = options.pop("dashboard_bind", DEFAULT_BIND)
    port = options.pop("dashboard_port", DEFAULT_PORT)
    token = options.pop("dashboard_token", None)
    if not enabled:
        return None
    _need_extra("run --dashboard")
    _check_exposure(bind, token, "--dashboard-token")
    return EmbeddedDashboard(topology, bind, port, token)


@contextlib.contextmanager
def cluster_dashboard(redis_url: str, options: dict[str, Any]) -> Iterator[None]:
    """``run --processes N --dashboard``: serve the director's pages for the Redis the
    local cluster publishes to, on a thread, while the body runs."""
    enabled = options.pop("dashboard", False)
    bind = options.pop("dashboard_bind", DEFAULT_BIND)
    port = options.pop("dashboard_port", DEFAULT_PORT)
    token = options.pop("dashboard_token", None)
    if not enabled:
        yield
        return
    _need_extra("run --dashboard")
    _check_exposure(bind, token, "--dashboard-token")
    from pytempest.redis.connection import mask_url
    from pytempest.web.app import create_app
    from pytempest.web.providers import RedisProvider
    from pytempest.web.security import Security

    server = _server(create_app(RedisProvider(redis_url), Security(token, (), bind)), bind, port)
    server.start()
    _announce(server, f"the topologies on {mask_url(redis_url)}", token)
    try:
        yield
    finally:
        server.stop()
