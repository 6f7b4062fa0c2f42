"""The dashboard ("Director"): a small web app over what topologies publish.

Needs the optional dependencies of ``pytempest[dashboard]`` (Starlette, uvicorn).
``pytempest director --redis URL`` serves every topology of a Redis;
``pytempest run --dashboard`` serves the topology running in that process. See
docs/dashboard.md.

* :func:`pytempest.web.app.create_app`: the ASGI app over a provider;
* :class:`pytempest.web.providers.RedisProvider` / :class:`~pytempest.web.providers.MemoryProvider`:
  where the data comes from;
* :class:`pytempest.web.security.Security`: Host check, token, CSRF;
* :class:`pytempest.web.server.DashboardServer`: uvicorn, in the foreground or on a thread.

Nothing is imported here, so ``import pytempest.web`` works without the extra.
"""
