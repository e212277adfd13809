"""Web Push: keys, payloads, sending, and the durable delivery queue.

Push builds on `server/core/` and on the store's interface
(`server/store/__init__.py`) only; it reads its own settings
(push/settings.py) from the same `SUNBID_*` variables as the server. The web
server wires it in (server/app.py, server/cli.py) and otherwise sees it
through a Protocol (`server.state.Push`). tests/test_layers.py holds both
sides to this.

One import reaches past the interface's types: the worker process
(push/process.py) calls `open_store(url)` from the interface module. The
worker is a process of its own, started with the server's environment, so
an opened store or a factory object cannot be handed to it, only the URL;
`open_store` is the interface's one way from a URL to a store (it chooses
the backend by scheme), so calling it keeps push independent of any backend.
"""
