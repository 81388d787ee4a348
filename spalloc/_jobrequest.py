"""Turning ``Job``'s keywords and the config into a :class:`~spalloc.service.JobRequest`."""

from __future__ import annotations

from typing import Any

from spalloc._unset import UNSET as _UNSET
from spalloc.config import SpallocConfig, search_path
from spalloc.exceptions import ConfigError
from spalloc.service import JobRequest

__all__ = ["job_request", "no_hostname_message"]


def no_hostname_message(config: SpallocConfig, config_filenames: Any) -> str:
    """How to configure a server, where the user will look for it."""
    if config_filenames is None:
        try:
            where = search_path()[1]
        except Exception:  # platformdirs trouble must not hide the real message
            where = "~/.config/spalloc"
        place = f"in a config file such as {where} (see: python -m spalloc.config)"
    else:
        place = "in one of the config files given"
    return (
        "No spalloc server hostname is configured. Pass hostname=..., set the "
        f"SPALLOC_HOSTNAME environment variable, or put 'hostname = <server>' under "
        f"[spalloc] {place}. Use hostname 'local' to run against the built-in emulator."
    )


def job_request(
    args: tuple[int, ...],
    config: SpallocConfig,
    owner: Any,
    keepalive: Any,
    machine: Any,
    tags: Any,
    min_ratio: Any,
    max_dead_boards: Any,
    max_dead_links: Any,
    require_torus: Any,
    *,
    need_owner: bool = True,
) -> JobRequest:
    """What to ask the server for: the keywords given, the rest from *config*.

    Raises:
        ValueError: no owner (when *need_owner*), a bad keepalive, both machine and tags.
        ConfigError: the config sets both machine and tags.
    """
    if "tags" not in config.explicit:  # the config reports None; "default" applies here
        config = config._replace(tags=("default",))

    def pick(name: str, value: Any) -> Any:
        return getattr(config, name) if value is _UNSET else value

    owner = pick("owner", owner)
    if owner is None and not need_owner:
        owner = ""  # v2: the logged-in user owns the job; no owner is sent
    if owner is None:
        raise ValueError(
            "An owner must be specified: pass owner=..., set SPALLOC_OWNER "
            "or put 'owner = <your email>' in the config file."
        )
    keepalive = pick("keepalive", keepalive)
    if keepalive is not None and (isinstance(keepalive, bool) or keepalive <= 0):
        raise ValueError("keepalive must be None or a number of seconds > 0")
    if isinstance(tags, str):
        tags = [tags]
    if machine is not _UNSET and tags is not _UNSET:
        if machine is not None and tags is not None:
            raise ValueError("Only one of tags and machine may be specified.")
    elif machine is not _UNSET:
        tags = None if machine is not None else pick("tags", tags)
    elif tags is not _UNSET:
        machine = None if tags is not None else config.machine
    else:
        machine = config.machine
        # A machine named in the config wins over the default tag set.
        tags = None if machine is not None else config.tags
        if machine is not None and "tags" in config.explicit and config.tags is not None:
            raise ConfigError(
                "the config sets both machine and tags; only one of them may be specified",
                key="tags",
                value=config.tags,
            )
    return JobRequest(
        args=args,
        owner=str(owner),
        keepalive=None if keepalive is None else float(keepalive),
        machine=machine,
        tags=None if tags is None else tuple(str(t) for t in tags),
        min_ratio=float(pick("min_ratio", min_ratio)),
        max_dead_boards=pick("max_dead_boards", max_dead_boards),
        max_dead_links=pick("max_dead_links", max_dead_links),
        require_torus=bool(pick("require_torus", require_torus)),
    )
