"""Sans-I/O pieces of the spalloc v1 protocol, shared by the client and the emulator.

The protocol is newline-delimited JSON over TCP. A request is
``{"command": str, "args": [...], "kwargs": {...}}``; the server answers each request, in
order, with ``{"return": value}`` or ``{"exception": text}``, and may interleave
notifications such as ``{"jobs_changed": [1, 2]}`` or ``{"machines_changed": ["m"]}``.

Nothing here touches a socket: this module frames bytes into lines, encodes and decodes
messages, and classifies what arrives. Its message types are ``NamedTuple`` classes rather
than frozen dataclasses because every command-line tool imports this module at start-up.
"""

from __future__ import annotations

import json
from collections import deque

from spalloc._namedtuple import NamedTuple

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MAX_LINE_BYTES",
    "BadMessage",
    "ClientSession",
    "LineSplitter",
    "LineTooLong",
    "NonFiniteNumber",
    "Notification",
    "Reply",
    "Request",
    "ServerError",
    "UnexpectedReply",
    "check_server_version",
    "checked_port",
    "classify",
    "decode_line",
    "encode_exception",
    "encode_notification",
    "encode_reply",
    "encode_request",
    "parse_request",
    "parse_server_version",
]

#: Longest line either side accepts, newline excluded (the reference server has no limit).
MAX_LINE_BYTES = 1 << 20


def checked_port(port: int | str) -> int:
    """*port* as a TCP port number; ValueError unless 1-65535 (a larger one would not be
    refused: the resolver wraps it round to another port)."""
    value = int(port)
    if not 0 < value < 65536:
        raise ValueError(f"not a TCP port number (1-65535): {port!r}")
    return value


class BadMessage(ValueError):
    """A line that is not a well-formed protocol message."""


class LineTooLong(BadMessage):
    """More than :data:`MAX_LINE_BYTES` arrived without a newline."""


class NonFiniteNumber(BadMessage):
    """A message holds ``NaN`` or an infinity, which JSON does not allow."""


def _reject_constant(name: str) -> Any:
    raise NonFiniteNumber(f"non-finite number {name} is not allowed")


# Built once: constructing a decoder or encoder per line is measurable under load.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_LENIENT_DECODER = json.JSONDecoder()
_COMPACT_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
# The reference server writes Python's default json.dumps layout; so does the emulator.
_SERVER_ENCODER = json.JSONEncoder(allow_nan=False)


def decode_line(line: bytes | str) -> Any:
    """Parse one line of JSON, rejecting ``NaN`` and the infinities.

    Raises:
        NonFiniteNumber: the line is JSON apart from a non-finite number.
        BadMessage: the line is not UTF-8 or not JSON.
    """
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
    except UnicodeDecodeError as exc:
        raise BadMessage("line is not valid UTF-8") from exc
    try:
        return _DECODER.decode(text)
    except BadMessage:
        raise
    except (ValueError, RecursionError) as exc:
        raise BadMessage(f"line is not valid JSON: {exc}") from exc


def _decode_reply(line: bytes) -> Any:
    """:func:`decode_line` for what a server sent: a line that is no JSON is quoted, and
    one from an HTTP server (a web port, a proxy, a v2 server's host) is said to be that."""
    try:
        return decode_line(line)
    except NonFiniteNumber:
        raise
    except BadMessage as exc:
        start = line[:60].decode("utf-8", "replace").strip()
        if start.startswith("HTTP/"):
            raise BadMessage(
                f"an HTTP server answered ({start!r}), not a spalloc v1 server (a spalloc v2 "
                "server is named by its https://host/spalloc/ URL)"
            ) from exc
        raise BadMessage(f"{exc} (the line began {start!r})") from exc


def encode_request(
    command: str, args: tuple[Any, ...] | list[Any] = (), kwargs: dict[str, Any] | None = None
) -> bytes:
    """Encode one request line (compact JSON, ASCII, ending in LF).

    Raises:
        ValueError: an argument is a non-finite float.
        TypeError: an argument is not JSON-serialisable.
    """
    message = {"command": command, "args": list(args), "kwargs": dict(kwargs or {})}
    try:
        text = _COMPACT_ENCODER.encode(message)
    except ValueError:
        raise ValueError(
            f"cannot send {command}: non-finite numbers (NaN, Infinity) are not allowed"
        ) from None
    return text.encode("ascii") + b"\n"


def _server_dumps(message: dict[str, Any]) -> bytes:
    return _SERVER_ENCODER.encode(message).encode("ascii") + b"\n"


def encode_reply(value: Any) -> bytes:
    """Encode a ``{"return": value}`` line."""
    return _server_dumps({"return": value})


def encode_exception(text: str) -> bytes:
    """Encode an ``{"exception": text}`` line."""
    return _server_dumps({"exception": str(text)})


def encode_notification(kind: str, items: list[Any]) -> bytes:
    """Encode a notification line such as ``{"jobs_changed": [1, 2]}``."""
    return _server_dumps({kind: items})


class LineSplitter:
    """Split a byte stream into lines, with a length limit and linear cost.

    ``feed`` returns the complete lines (without the LF; a trailing CR is removed too);
    incomplete data stays buffered.
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._max_line = max_line
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add *data* and return every line it completes.

        Raises:
            LineTooLong: an incomplete line grew past the limit (the buffer is then cleared).
        """
        lines: list[bytes] = []
        start = 0
        newline = data.find(b"\n")
        while newline != -1:
            if self._pending:
                self._pending += data[start:newline]
                line = bytes(self._pending)
                self._pending.clear()
            else:
                line = data[start:newline]
            if len(line) > self._max_line:
                raise LineTooLong(f"line of {len(line)} bytes exceeds {self._max_line}")
            lines.append(line[:-1] if line.endswith(b"\r") else line)
            start = newline + 1
            newline = data.find(b"\n", start)
        self._pending += data[start:]
        if len(self._pending) > self._max_line:
            self._pending.clear()
            raise LineTooLong(f"no newline within {self._max_line} bytes")
        return lines

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for a newline."""
        return len(self._pending)


# --- server versions -----------------------------------------------------------------------

#: Oldest server release the client speaks to (the v1 command set settled in 0.1.0).
MIN_SERVER_VERSION = (0, 1, 0)
#: First major release we do not know: v1 servers end at 7.x (Python) and 5.0.0 (Java).
MAX_SERVER_MAJOR = 8


def parse_server_version(text: object) -> tuple[int, ...]:
    """Return the release numbers of a server version string, ignoring epoch and suffixes.

    ``"1!7.0.0"`` → ``(7, 0, 0)``; ``"4.0.0.post1"`` → ``(4, 0, 0)``; ``"6"`` → ``(6, 0, 0)``.
    (Plain string handling rather than a regex: the command-line tools call this at start-up.)

    Raises:
        ValueError: there is no release number at the start of the string.
    """
    rest = text.lstrip() if isinstance(text, str) else ""
    if rest.startswith("v"):
        rest = rest[1:]
    epoch, bang, after = rest.partition("!")
    if bang and epoch.isdecimal() and after[:1].isdecimal():
        rest = after
    release: list[int] = []
    start = 0
    while True:
        end = start
        while end < len(rest) and rest[end].isdecimal():
            end += 1
        if end == start:
            break
        release.append(int(rest[start:end]))
        if rest[end : end + 1] != "." or not rest[end + 1 : end + 2].isdecimal():
            break
        start = end + 1
    if not release:
        raise ValueError(f"not a version string: {text!r}")
    return (*release, 0, 0, 0)[: max(3, len(release))]


def check_server_version(text: object) -> tuple[int, ...]:
    """Check that a server version is one this client can talk to; returns its release.

    The rule: any PEP 440-style version (epoch and suffixes ignored) whose release lies in
    ``0.1.0 <= release < 8`` is accepted. Older servers predate the command set we use;
    8 and later are not v1 servers we know of. Pass ``ignore_version=True`` to
    :class:`~spalloc.job.Job` (or set ``ignore_version = True`` in the config) to skip this.

    Raises:
        IncompatibleServerError: the version is unparseable or outside that range.
    """
    from spalloc.exceptions import IncompatibleServerError

    try:
        release = parse_server_version(text)
    except ValueError:
        raise IncompatibleServerError(str(text), "it is not a version number") from None
    if release[:3] < MIN_SERVER_VERSION:
        raise IncompatibleServerError(str(text), "servers older than 0.1.0 are not supported")
    if release[0] >= MAX_SERVER_MAJOR:
        raise IncompatibleServerError(
            str(text),
            f"only spalloc v1 servers before {MAX_SERVER_MAJOR}.0.0 are known "
            "(use ignore_version=True to try anyway)",
        )
    return release


# --- what the server receives -------------------------------------------------------------


class Request(NamedTuple):
    """One parsed request."""

    command: str
    args: list[Any]
    kwargs: dict[str, Any]


def parse_request(line: bytes) -> Request | None:
    """Parse a request line; ``None`` for a blank, whitespace-only or CR-only line.

    Raises:
        NonFiniteNumber: a well-formed request apart from a NaN or infinity (answer it with an
            exception and keep the connection).
        BadMessage: not a request object (close the connection, as the reference does).
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadMessage("line is not valid UTF-8") from exc
    if not text.strip():
        return None
    try:
        obj = decode_line(text)
    except NonFiniteNumber:
        # Rare: only a request that is well formed apart from the number earns a reply.
        try:
            lenient = _LENIENT_DECODER.decode(text)
        except (ValueError, RecursionError):
            lenient = None
        if _is_request(lenient):
            raise
        raise BadMessage("not a request") from None
    if not _is_request(obj):
        raise BadMessage("not a request object with a string 'command'")
    kwargs = obj.get("kwargs", {})
    if "client" in kwargs:  # the reference silently drops it
        kwargs = {k: v for k, v in kwargs.items() if k != "client"}
    return Request(obj["command"], obj.get("args", []), kwargs)


def _is_request(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("command"), str)
        and isinstance(obj.get("args", []), list)
        and isinstance(obj.get("kwargs", {}), dict)
    )


# --- what the client receives -------------------------------------------------------------


class Reply(NamedTuple):
    """A ``{"return": value}`` message."""

    value: Any


class ServerError(NamedTuple):
    """An ``{"exception": text}`` message."""

    text: str


class Notification(NamedTuple):
    """Anything else the server sends unasked, e.g. ``{"jobs_changed": [1]}``."""

    payload: dict[str, Any]

    @property
    def jobs_changed(self) -> list[Any]:
        """Job IDs named by a ``jobs_changed`` notification (empty otherwise)."""
        value = self.payload.get("jobs_changed")
        return list(value) if isinstance(value, list) else []

    @property
    def machines_changed(self) -> list[Any]:
        """Machine names named by a ``machines_changed`` notification (empty otherwise)."""
        value = self.payload.get("machines_changed")
        return list(value) if isinstance(value, list) else []


def classify(obj: Any) -> Reply | ServerError | Notification:
    """Sort a decoded server message into reply, server error or notification.

    Raises:
        BadMessage: the message is not a JSON object.
    """
    if not isinstance(obj, dict):
        raise BadMessage(f"server sent a {type(obj).__name__}, not an object")
    if "return" in obj:
        return Reply(obj["return"])
    if "exception" in obj:
        return ServerError("" if obj["exception"] is None else str(obj["exception"]))
    return Notification(obj)


class UnexpectedReply(BadMessage):
    """The server answered when no request was waiting for an answer."""


class ClientSession:
    """The client's side of one v1 connection, without I/O: both of our clients (the threaded
    :class:`~spalloc.client.ProtocolClient` and the command-line tools' one-thread connection)
    keep their requests and notifications here.

    The server answers requests in order, so each reply belongs to the oldest request still
    waiting. The owner calls :meth:`expect` with a token of its choice as it sends each
    request, :meth:`messages` with each chunk of bytes it receives, and :meth:`owner` for each
    reply among them. Not thread-safe: a threaded owner serialises calls of :meth:`expect` and
    :meth:`owner` (framing and decoding in :meth:`messages` need no lock, as only the reading
    thread calls it).
    """

    def __init__(self) -> None:
        self._splitter = LineSplitter()
        self._waiting: deque[Any] = deque()

    @property
    def waiting(self) -> int:
        """How many requests still wait for their reply."""
        return len(self._waiting)

    def expect(self, token: Any) -> None:
        """A request is going out; its reply will be handed to *token*."""
        self._waiting.append(token)

    def messages(self, data: bytes) -> list[Reply | ServerError | Notification]:
        """Frame, decode and classify what arrived (blank lines, as Java may send, skipped).

        Raises:
            BadMessage: a line is too long, not JSON, or not a JSON object.
        """
        return [classify(_decode_reply(line)) for line in self._splitter.feed(data) if line.strip()]

    def owner(self, reply: Reply | ServerError) -> Any:
        """The token of the request *reply* answers.

        Raises:
            UnexpectedReply: no request is waiting.
        """
        if not self._waiting:
            raise UnexpectedReply(f"server sent a reply nobody asked for: {reply!r}")
        return self._waiting.popleft()

    def abandon(self) -> list[Any]:
        """Every waiting token, oldest first, forgotten (the connection is gone)."""
        tokens = list(self._waiting)
        self._waiting.clear()
        return tokens
