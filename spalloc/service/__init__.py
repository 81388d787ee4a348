"""The server behind the tools, behind one interface: :class:`Service` (see :mod:`.base`).

``open_service(hostname, port, ...)`` picks the implementation, imported only when used: an
``http(s)://…/spalloc/`` URL is spalloc v2 (:class:`~spalloc.service.v2.V2Service`, over
httpx); anything else a v1 host, threaded (:class:`~spalloc.service.v1.V1Service`, for ``Job``
and the board map) or on the caller's thread (``light=True``:
:class:`~spalloc.service.v1light.V1LightService`, for the admin tools' start-up time).
:mod:`.base` too is imported only when needed (it needs ``typing``, which the admin tools do
not load).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: that import costs the admin tools start-up time
if TYPE_CHECKING:
    from typing import Any

    from spalloc.service.base import JobRequest, JobStatus, Pending, Service

__all__ = ["JobRequest", "JobStatus", "Pending", "Service", "is_v2_url", "open_service"]


def is_v2_url(hostname: object) -> bool:
    """True if *hostname* is an ``http(s)://`` URL, which selects spalloc v2."""
    return isinstance(hostname, str) and hostname.strip().lower().startswith(
        ("http://", "https://")
    )


def open_service(
    hostname: str,
    port: int | None,
    *,
    timeout: float | None = None,
    check_version: bool = True,
    light: bool = False,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    group: str | None = None,
    collab: str | None = None,
    config: Any = None,
) -> Service:
    """A not yet connected :class:`Service` for the server at *hostname*.

    Args:
        hostname: the server's name or address, or a v2 URL (``https://host/spalloc/``).
        port: its v1 TCP port (ignored for a URL).
        timeout: the caller's default timeout, quoted in timeout errors.
        check_version: check the server's version on every (re)connection.
        light: for v1, a driver that keeps to the caller's thread (listeners run inside its
            waits).
        user, password, token: v2 credentials; without them the URL's user info, then
            ``SPALLOC_USER``/``SPALLOC_PASSWORD``, then a JupyterHub's token service, then
            ``OIDC_BEARER_TOKEN``.
        group, collab: v2 accounting (see :class:`~spalloc.service.v2.V2Service`).
        config: a :class:`~spalloc.config.SpallocConfig` whose v2 keys (``user``, ``password``,
            ``token``; ``group``, ``collab``) are used last, when nothing else gives them.

    Raises:
        ValueError: credentials for a v1 server, a v2 URL without credentials, no port or
            one outside 1-65535.
    """
    if is_v2_url(hostname):
        from spalloc.service.v2 import V2Service

        if config is not None and group is None and collab is None:
            group, collab = config.group, config.collab
        return V2Service(
            hostname,
            user=user,
            password=password,
            token=token,
            group=group,
            collab=collab,
            timeout=timeout,
            check_version=check_version,
            config=config,
        )
    given = [
        name
        for name, value in [
            ("user", user),
            ("password", password),
            ("token", token),
            ("group", group),
            ("collab", collab),
        ]
        if value is not None
    ]
    if given:
        raise ValueError(
            f"{', '.join(given)}: only for spalloc v2 servers (hostname "
            "https://host/spalloc/); a v1 server takes owner= instead"
        )
    if port is None:
        raise ValueError("A port must be specified.")
    from spalloc._protocol import checked_port

    port = checked_port(port)
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
