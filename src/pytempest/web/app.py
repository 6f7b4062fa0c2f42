"""The dashboard's ASGI app (Starlette): two pages, a JSON API, static files.

Pages (static HTML, CSS and JavaScript, no build step; the browser polls the API every
second):

* ``/``: every topology (status, instances, workers, rates, in flight, source lag);
* ``/topology/<name>``: its graph, task table, live chart, instances and workers,
  recent failures with tracebacks, and its dead letter.

API (JSON):

=======  ============================================  =====================================
GET      ``/api/overview``                             the overview rows
GET      ``/api/topologies/<name>``                    one topology
GET      ``/api/topologies/<name>/deadletters``        its dead-letter entries (``?count=``)
POST     ``/api/topologies/<name>/deadletters/requeue``  ``{"ids": [...]}`` or ``{"all": true}``
POST     ``/api/topologies/<name>/deadletters/purge``    ``{"ids": [...]}`` or ``{"all": true}``
=======  ============================================  =====================================

Every request passes :class:`pytempest.web.security.Guard` (Host, token, CSRF).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pytempest.errors import ConfigError, DeadLetterError, PytempestError, SourceError
from pytempest.redis.connection import mask_url
from pytempest.web.providers import NotFound, Provider
from pytempest.web.security import Guard, Security

log = logging.getLogger("pytempest.web")

STATIC = Path(__file__).parent / "static"
MAX_BODY = 1 << 20
MAX_COUNT = 1000


def _page(name: str, security: Security) -> str:
    text = (STATIC / name).read_text(encoding="utf-8")
    return text.replace("{{csrf}}", security.csrf)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _guarded(call: Any) -> Response:
    """Run an API call and map errors to statuses with a message (passwords masked)."""
    try:
        return JSONResponse(await call)
    except NotFound as exc:
        return _error(404, f"no topology {exc.args[0]!r} is known here")
    except SourceError as exc:
        return _error(503, str(exc))
    except PermissionError as exc:
        return _error(409, str(exc))
    except ConfigError as exc:
        return _error(400, str(exc))
    except (DeadLetterError, PytempestError) as exc:
        return _error(502, str(exc))
    except Exception as exc:
        log.exception("dashboard request failed")
        return _error(500, f"{type(exc).__name__}: {mask_url(str(exc)) if '://' in str(exc) else exc}")


async def _selection(request: Request) -> tuple[list[str], bool]:
    """``(ids, all)`` from a POST body ``{"ids": [...]}`` or ``{"all": true}``."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ConfigError(f"request body is {len(body)} bytes; at most {MAX_BODY}")
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise ConfigError('request body must be JSON: {"ids": [...]} or {"all": true}') from None
    if not isinstance(data, dict):
        raise ConfigError('request body must be a JSON object: {"ids": [...]} or {"all": true}')
    ids = data.get("ids", [])
    every = data.get("all", False)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not isinstance(every, bool):
        raise ConfigError('"ids" must be a list of entry ids and "all" true or false')
    if every == bool(ids):
        raise ConfigError('give either "ids" or "all": true, not both or neither')
    return ids, every


def create_app(provider: Provider, security: Security | None = None) -> Guard:
    """The dashboard as an ASGI app, reading ``provider``, guarded by ``security``
    (default: loopback only, no token)."""
    security = security or Security()

    async def index(request: Request) -> Response:
        return HTMLResponse(_page("index.html", security))

    async def topology_page(request: Request) -> Response:
        return HTMLResponse(_page("topology.html", security))

    async def overview(request: Request) -> Response:
        return await _guarded(provider.overview())

    async def topology(request: Request) -> Response:
        return await _guarded(provider.topology(request.path_params["name"]))

    async def _entries(name: str, count: int) -> dict[str, Any]:
        view = await provider.dead_letter(name)
        out = view.describe()
        out["total"], out["entries"] = await view.entries(count) if view.available else (None, [])
        return out

    async def deadletters(request: Request) -> Response:
        try:
            count = int(request.query_params.get("count", "50"))
        except ValueError:
            return _error(400, "count must be a whole number")
        count = max(1, min(MAX_COUNT, count))
        return await _guarded(_entries(request.path_params["name"], count))

    async def _change(name: str, request: Request, action: str) -> dict[str, Any]:
        ids, every = await _selection(request)
        view = await provider.dead_letter(name)
        if not view.writable:
            raise PermissionError(view.reason or "this dead letter cannot be changed from the dashboard")
        result = await (view.requeue(ids, every) if action == "requeue" else view.purge(ids, every))
        log.info("dashboard: %s of topology %s's dead letter: %s", action, name,
                 "all entries" if every else f"{len(ids)} entries")  # fmt: skip
        return result

    async def requeue(request: Request) -> Response:
        return await _guarded(_change(request.path_params["name"], request, "requeue"))

    async def purge(request: Request) -> Response:
        return await _guarded(_change(request.path_params["name"], request, "purge"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await provider.close()

    routes = [
        Route("/", index),
        Route("/topology/{name}", topology_page),
        Route("/api/overview", overview),
        Route("/api/topologies/{name}", topology),
        Route("/api/topologies/{name}/deadletters", deadletters),
        Route("/api/topologies/{name}/deadletters/requeue", requeue, methods=["POST"]),
        Route("/api/topologies/{name}/deadletters/purge", purge, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Guard(Starlette(routes=routes, lifespan=lifespan), security)
