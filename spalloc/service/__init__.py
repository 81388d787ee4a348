"""The server behind the tools, behind one interface: :class:`Service` (see :mod:`.base`).

``open_service(hostname, port, ...)`` picks the implementation; today that is v1
(:class:`~spalloc.service.v1.V1Service`), imported only when used.
"""

from __future__ import annotations

from spalloc.service.base import JobRequest, JobStatus, Pending, Service

__all__ = ["JobRequest", "JobStatus", "Pending", "Service", "open_service"]


def open_service(hostname: str, port: int, *, timeout: float | None = None,
                 check_version: bool = True) -> Service:
    """A not yet connected :class:`Service` for the server at *hostname*.

    Args:
        hostname: the server's name or address.
        port: its v1 TCP port.
        timeout: the caller's default timeout, quoted in timeout errors.
        check_version: check the server's version on every (re)connection.
    """
    from spalloc.service.v1 import V1Service

    return V1Service(hostname, port, timeout=timeout, check_version=check_version)
