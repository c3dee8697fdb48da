"""Write an Airlock action node in a few lines of Python.

A node is one function decorated with `@node`: it gets the node's config (every template already
rendered by the host) as a dict and returns its output (anything JSON can hold). Raising an
exception fails the node run with the exception's message. The only way out of the sandbox is
`get`/`post`/`Request.send`, which go through the host's egress gate: the gate checks the
destination against the operator's policy and the node's manifest, puts secret values where the
node holds secret handles (the node never sees a secret), and audits the attempt.

    import airlock_node as airlock
    from airlock_node import WitWorld  # noqa: F401  (the component's export)

    @airlock.node
    def run(ctx, config):
        response = airlock.get(config["url"])
        return {"status": response.status}
"""

import json
from typing import Any, Callable, Dict, List, Optional, Tuple

from componentize_py_types import Err
from wit_world import Context
from wit_world.imports import egress
from wit_world.imports import log as _log

__all__ = [
    "Context", "EgressError", "NodeError", "Request", "Response", "WitWorld",
    "debug", "error", "get", "info", "node", "post", "warn",
]


class NodeError(Exception):
    """Raise it to fail the node run with this message."""


class EgressError(NodeError):
    """The gate did not deliver a response: denied, invalid, timed out, connection, too large."""

    def __init__(self, error: egress.Error):
        self.error = error
        super().__init__(_describe(error))


def _describe(error: egress.Error) -> str:
    if isinstance(error, egress.Error_Denied):
        return f"request denied by the egress policy: {error.value}"
    if isinstance(error, egress.Error_InvalidRequest):
        return f"invalid request: {error.value}"
    if isinstance(error, egress.Error_Timeout):
        return "request timed out"
    if isinstance(error, egress.Error_Connection):
        return f"connection failed: {error.value}"
    return f"response larger than the {error.value}-byte limit"


class Response:
    """An answer from the gate. Redirects are not followed: a 3xx arrives as it is."""

    def __init__(self, status: int, headers: List[Tuple[str, str]], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> Optional[str]:
        """The first header with this name (case-insensitive)."""
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def json_or_text(self) -> Any:
        """The body as JSON when it is JSON, else as text."""
        try:
            return self.json()
        except ValueError:
            return self.text()


class Request:
    """An HTTP request sent through the egress gate. Headers, URL and body may hold secret
    handles (from `{{ .secrets["name"] }}` in the config); the gate puts the values in."""

    def __init__(self, method: str, url: str, headers: Optional[Dict[str, str]] = None,
                 body: Optional[bytes] = None, json_body: Any = None,
                 timeout_ms: Optional[int] = None):
        self.method = method
        self.url = url
        self.headers = dict(headers or {})
        self.body = body
        self.timeout_ms = timeout_ms
        if json_body is not None:
            self.body = json.dumps(json_body).encode()
            if not any(n.lower() == "content-type" for n in self.headers):
                self.headers["Content-Type"] = "application/json"

    def send(self) -> Response:
        """Sends the request; raises `EgressError` when the gate delivers no response."""
        request = egress.Request(self.method, self.url, list(self.headers.items()),
                                 self.body, self.timeout_ms)
        try:
            r = egress.send(request)
        except Err as e:
            raise EgressError(e.value) from None
        return Response(r.status, r.headers, r.body)


def get(url: str, headers: Optional[Dict[str, str]] = None) -> Response:
    return Request("GET", url, headers).send()


def post(url: str, json_body: Any = None, headers: Optional[Dict[str, str]] = None) -> Response:
    return Request("POST", url, headers, json_body=json_body).send()


def debug(message: str) -> None:
    _log.log(_log.Level.DEBUG, message)


def info(message: str) -> None:
    _log.log(_log.Level.INFO, message)


def warn(message: str) -> None:
    _log.log(_log.Level.WARN, message)


def error(message: str) -> None:
    _log.log(_log.Level.ERROR, message)


_handler: Optional[Callable[[Context, Any], Any]] = None


def node(handler: Callable[[Context, Any], Any]) -> Callable[[Context, Any], Any]:
    """Marks `handler(ctx, config)` as this component's node."""
    global _handler
    _handler = handler
    return handler


class WitWorld:
    """The component's export: JSON in, the handler, JSON out; an exception fails the run."""

    def run(self, ctx: Context, config: str) -> str:
        if _handler is None:
            raise Err("no function is marked with @airlock_node.node")
        try:
            return json.dumps(_handler(ctx, json.loads(config)))
        except NodeError as e:
            raise Err(str(e)) from None
        except KeyError as e:
            raise Err(f"missing key {e}") from None
        except Exception as e:  # any other bug in the node fails its run, with its type
            raise Err(f"{type(e).__name__}: {e}") from None
