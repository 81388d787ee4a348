"""What a new ``Job`` starts from: its arguments checked and completed from the config.

:func:`job_setup` does every local step of :class:`~spalloc.job.Job`'s construction that needs no
server: it checks the arguments, loads the config, fills in each keyword not given, swaps
``hostname="local"`` for the built-in emulator, builds the :class:`~spalloc.service.JobRequest`
and makes the (not yet connected) :class:`~spalloc.service.Service`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from spalloc._jobrequest import job_request, no_hostname_message
from spalloc._unset import UNSET as _UNSET
from spalloc.config import load_config, proxy_mode
from spalloc.exceptions import ConfigError
from spalloc.service import JobRequest, Service, is_v2_url, open_service

__all__ = ["JobSetup", "job_setup"]


class JobSetup(NamedTuple):
    """A Job's settings, resolved, and the service it will talk through."""

    service: Service
    request: JobRequest | None  # None: resume a job
    timeout: float | None
    reconnect_delay: float
    proxy: str  # "auto", "always" or "never" ("never" for a v1 server)


def job_setup(
    args: tuple[int, ...],
    *,
    hostname: Any,
    port: Any,
    reconnect_delay: Any,
    timeout: Any,
    config_filenames: Iterable[str] | None,
    resume_job_id: int | None,
    owner: Any,
    keepalive: Any,
    machine: Any,
    tags: Any,
    min_ratio: Any,
    max_dead_boards: Any,
    max_dead_links: Any,
    require_torus: Any,
    ignore_version: Any,
    proxy: Any,
    user: str | None,
    password: str | None,
    token: str | None,
    group: str | None,
    collab: str | None,
) -> JobSetup:
    """Check and complete ``Job()``'s arguments (see :class:`~spalloc.job.Job`).

    Raises:
        TypeError: more than three positional arguments, or one that is not an int.
        ValueError: an invalid value or combination;
            :class:`~spalloc.exceptions.ConfigError` for no hostname.
    """
    if len(args) > 3:
        raise TypeError(f"Job() takes at most 3 positional arguments ({len(args)} given)")
    for arg in args:
        if isinstance(arg, bool) or not isinstance(arg, int):
            raise TypeError(f"Job() positional arguments must be ints, not {arg!r}")
    if resume_job_id is not None and (
        isinstance(resume_job_id, bool) or not isinstance(resume_job_id, int)
    ):
        raise TypeError(f"resume_job_id must be an int, not {resume_job_id!r}")

    config = load_config(None if config_filenames is None else list(config_filenames))

    def pick(name: str, value: Any) -> Any:
        return getattr(config, name) if value is _UNSET else value

    hostname = pick("hostname", hostname)
    port = pick("port", port)
    reconnect_delay = pick("reconnect_delay", reconnect_delay)
    timeout = pick("timeout", timeout)
    ignore_version = bool(pick("ignore_version", ignore_version))
    proxy = proxy_mode(pick("proxy", proxy))
    if not hostname:
        raise ConfigError(no_hostname_message(config, config_filenames), key="hostname")
    v2 = is_v2_url(hostname)
    if reconnect_delay is None or reconnect_delay < 0:
        raise ValueError("reconnect_delay must be a number of seconds >= 0")
    if timeout is not None and timeout < 0:
        raise ValueError("timeout must be None or a number of seconds >= 0")

    from spalloc._local import default_owner, is_local, local_emulator

    owner = default_owner(hostname, pick("owner", owner))
    if is_local(hostname):
        # Warn where Job() was called: above this function and Job.__init__.
        emulator = local_emulator(stacklevel=3)
        hostname, port = emulator.host, emulator.port

    request = None
    if resume_job_id is None:
        request = job_request(
            args,
            config,
            owner,
            keepalive,
            machine,
            tags,
            min_ratio,
            max_dead_boards,
            max_dead_links,
            require_torus,
            need_owner=not v2,
        )

    service = open_service(
        str(hostname),
        port,
        timeout=timeout,
        check_version=not ignore_version,
        user=user,
        password=password,
        token=token,
        group=group,
        collab=collab,
        config=config,
    )
    return JobSetup(
        service=service,
        request=request,
        timeout=timeout,
        reconnect_delay=float(reconnect_delay),
        proxy=proxy if v2 else "never",  # only v2 servers have a proxy
    )
