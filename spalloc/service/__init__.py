"""The server behind the tools, behind one interface: :class:`Service` (see :mod:`.base`).

``open_service(hostname, port, ...)`` picks the implementation: v1 today, threaded
(:class:`~spalloc.service.v1.V1Service`, for ``Job`` and the board map) or on the caller's
thread (``light=True``: :class:`~spalloc.service.v1light.V1LightService`, for the admin tools'
start-up time). Each is imported only when used, and so is :mod:`.base` (it needs ``typing``,
which the admin tools do not load).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: that import costs the admin tools start-up time
if TYPE_CHECKING:
    from typing import Any

    from spalloc.service.base import JobRequest, JobStatus, Pending, Service

__all__ = ["JobRequest", "JobStatus", "Pending", "Service", "open_service"]


def open_service(hostname: str, port: int, *, timeout: float | None = None,
                 check_version: bool = True, light: bool = False) -> Service:
    """A not yet connected :class:`Service` for the server at *hostname*.

    Args:
        hostname: the server's name or address.
        port: its v1 TCP port.
        timeout: the caller's default timeout, quoted in timeout errors.
        check_version: check the server's version on every (re)connection.
        light: a driver that keeps to the caller's thread (listeners run inside its waits).
    """
    if light:
        from spalloc.service.v1light import V1LightService

        return V1LightService(hostname, port, timeout=timeout, check_version=check_version)
    from spalloc.service.v1 import V1Service

    return V1Service(hostname, port, timeout=timeout, check_version=check_version)


def __getattr__(name: str) -> Any:
    if name in ("JobRequest", "JobStatus", "Pending", "Service"):
        from spalloc.service import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
