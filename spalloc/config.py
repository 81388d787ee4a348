"""Client configuration: INI files on a search path, ``SPALLOC_*`` overrides, one frozen value.

Files are read lowest priority first: the site file (e.g. ``/etc/xdg/spalloc``), the user
file (e.g. ``~/.config/spalloc``) and ``./.spalloc``; then ``SPALLOC_<KEY>`` environment
variables override them, and explicit arguments to :class:`~spalloc.job.Job` override all.
Each file holds one ``[spalloc]`` section::

    [spalloc]
    hostname = spalloc.example.org
    owner = me@example.org

The literal ``None`` means "no value". Run ``python -m spalloc.config`` to see the search
path on this machine.

:func:`load_config` gives one typed, immutable :class:`SpallocConfig`;
:func:`read_config` is the original client's loader, a plain dict of the same settings.
Code that adds its own files to :data:`SEARCH_PATH` (as the original allowed) is honoured
by both.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping

from spalloc._namedtuple import NamedTuple
from spalloc.exceptions import ConfigError

TYPE_CHECKING = False  # not typing's: that import costs start-up time (mypy sees True)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "PROXY_MODES",
    "SEARCH_PATH",
    "SECTION",
    "SpallocConfig",
    "default_paths",
    "load_config",
    "main",
    "parse_boolean",
    "proxy_mode",
    "read_config",
    "search_path",
]

SECTION = "spalloc"
ENV_PREFIX = "SPALLOC_"


class SpallocConfig(NamedTuple):
    """Every client setting, with the documented defaults.

    ``tags`` is a tuple of tag names, or ``None`` when not set (as the original client
    reported it): whoever allocates then asks for the ``default`` tag unless a machine is
    named, as the server itself does. ``sources`` lists where values came from,
    ``explicit`` which keys were set there.
    A ``NamedTuple`` rather than a frozen dataclass: as immutable, and much cheaper to
    import, which every command-line tool pays at start-up.
    """

    hostname: str | None = None
    owner: str | None = None
    port: int = 22244
    keepalive: float | None = 60.0
    reconnect_delay: float = 5.0
    timeout: float | None = 5.0
    machine: str | None = None
    tags: tuple[str, ...] | None = None
    min_ratio: float = 0.333
    max_dead_boards: int | None = 0
    max_dead_links: int | None = None
    require_torus: bool = False
    ignore_version: bool = False
    proxy: str = "auto"
    user: str | None = None
    password: str | None = None
    token: str | None = None
    group: str | None = None
    collab: str | None = None
    sources: tuple[str, ...] = ()
    explicit: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        # The password and token never show (a repr ends up in logs and tracebacks).
        shown = ", ".join(
            f"{name}={'<hidden>' if name in SECRET_KEYS and value is not None else repr(value)}"
            for name, value in zip(self._fields, self, strict=True)
        )
        return f"SpallocConfig({shown})"


# --- value parsers: text -> value, ValueError on nonsense -----------------------------------


def _is_none(text: str) -> bool:
    return text.strip() == "None"


def _str(text: str) -> str:
    return text.strip()


def _int(text: str) -> int:
    return int(text.strip())


def _float(text: str) -> float:
    value = float(text.strip())
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return value


def parse_boolean(text: str) -> bool:
    """``true/yes/on/1`` or ``false/no/off/0``, case-insensitive (unlike ``bool("False")``)."""
    value = text.strip().lower()
    if value in ("1", "yes", "true", "on"):
        return True
    if value in ("0", "no", "false", "off"):
        return False
    raise ValueError("not a boolean (use true/false, yes/no, on/off or 1/0)")


def _tags(text: str) -> tuple[str, ...]:
    tags = tuple(t.strip() for t in text.split(",") if t.strip())
    if not tags:
        raise ValueError("no tags given (use None for the server's default)")
    return tags


def _non_negative(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def check(text: str) -> Any:
        value = parse(text)
        if value < 0:
            raise ValueError("must not be negative")
        return value

    return check


def _positive(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def check(text: str) -> Any:
        value = parse(text)
        if value <= 0:
            raise ValueError("must be greater than zero")
        return value

    return check


#: ``proxy``'s values: bridge a v2 job's boards through its websocket proxy when they
#: cannot be reached directly, always, or never (see :mod:`spalloc.service.bridge`).
PROXY_MODES = ("auto", "always", "never")


def proxy_mode(text: str) -> str:
    """One of :data:`PROXY_MODES` (any case)."""
    value = str(text).strip().lower()
    if value not in PROXY_MODES:
        raise ValueError(f"not one of {', '.join(PROXY_MODES)}")
    return value


def _port(text: str) -> int:
    from spalloc._protocol import checked_port

    return checked_port(_int(text))


# key -> (parser, may be None)
_KEYS: dict[str, tuple[Callable[[str], Any], bool]] = {
    "hostname": (_str, True),
    "owner": (_str, True),
    "port": (_port, False),
    "keepalive": (_positive(_float), True),
    "reconnect_delay": (_non_negative(_float), False),
    "timeout": (_non_negative(_float), True),
    "machine": (_str, True),
    "tags": (_tags, True),
    "min_ratio": (_non_negative(_float), False),
    "max_dead_boards": (_non_negative(_int), True),
    "max_dead_links": (_non_negative(_int), True),
    "require_torus": (parse_boolean, False),
    "ignore_version": (parse_boolean, False),
    "proxy": (proxy_mode, False),
    # spalloc v2 logins and accounting (used only with an https://…/spalloc/ hostname).
    "user": (_str, True),
    "password": (_str, True),
    "token": (_str, True),
    "group": (_str, True),
    "collab": (_str, True),
}
#: Keys whose values are secrets: never shown, and refused from a file others may read.
SECRET_KEYS = frozenset({"password", "token"})
#: What v2 needs besides the hostname: credentials and accounting.
V2_KEYS = ("user", "password", "token", "group", "collab")
# The original client's settings: what read_config reports.
_ORIGINAL_KEYS = tuple(key for key in _KEYS if key != "proxy" and key not in V2_KEYS)


def parse_value(key: str, text: str, source: str) -> Any:
    """Parse one setting's text.

    Raises:
        ConfigError: the key is unknown to us, or the text is not a valid value for it.
    """
    parser, nullable = _KEYS[key]
    if _is_none(text):
        if nullable:
            return None
        raise ConfigError(
            f"{source}: {key} = {text.strip()!r} is not allowed: {key} cannot be None",
            source=source,
            key=key,
            value=text,
        )
    try:
        return parser(text)
    except ValueError as exc:
        raise ConfigError(
            f"{source}: {key} = {text.strip()!r} is not valid: {exc}",
            source=source,
            key=key,
            value=text,
        ) from None


# --- the search path ------------------------------------------------------------------------


def search_path() -> list[str]:
    """The default config files, lowest priority first.

    The site and user files are in platformdirs' ``site_config_dir()`` and
    ``user_config_dir()``.
    """
    site, user = _xdg_config_dirs() or _platformdirs_config_dirs()
    return [
        os.path.join(site, SECTION),
        os.path.join(user, SECTION),
        os.path.join(os.curdir, "." + SECTION),
    ]


def _platformdirs_config_dirs() -> tuple[str, str]:
    import platformdirs  # imported here so that ``import spalloc`` stays light

    return platformdirs.site_config_dir(), platformdirs.user_config_dir()


def _xdg_config_dirs() -> tuple[str, str] | None:
    """platformdirs' ``(site_config_dir(), user_config_dir())`` on Linux, without importing it.

    platformdirs (with its imports of pathlib, tempfile, shutil, …) costs a command-line
    tool about a fifth of its start-up time. On Linux it follows the XDG base directory
    spec, which for the usual environments comes down to: the first entry of
    ``$XDG_CONFIG_DIRS``, else ``/etc/xdg``; ``$XDG_CONFIG_HOME``, else ``~/.config``. Where
    its releases differ or it would raise (relative paths in those variables, a relative
    ``$HOME``, no home at all) and on every other platform, this returns ``None`` so that
    platformdirs itself decides. A test compares the two over many environments.
    """
    env = os.environ
    if (
        sys.platform != "linux"
        or hasattr(sys, "getandroidapilevel")
        or (env.get("ANDROID_DATA") == "/data" and env.get("ANDROID_ROOT") == "/system")
    ):
        return None
    user = env.get("XDG_CONFIG_HOME", "")
    if not user:
        home = env.get("HOME")
        if home is not None and not home.startswith("/"):
            return None
        # As platformdirs: $HOME, or the password database when HOME is unset.
        user = os.path.expanduser("~/.config")
    sites = env.get("XDG_CONFIG_DIRS", "")
    site = sites.split(":")[0] if sites else "/etc/xdg"
    if not (user.startswith("/") and site.startswith("/")):
        return None
    return site, user


def _initial_search_path() -> list[str]:
    try:
        return search_path()
    except Exception:
        # platformdirs refusing an odd environment must not make this module unimportable:
        # load_config reports the trouble when the path is needed.
        return [os.path.join(os.curdir, "." + SECTION)]


#: The config files read by default, lowest priority first, as found when this module was
#: imported (as the original client computed it). Code may change it, in place or by
#: assigning a new list, and :func:`load_config` and :func:`read_config` then read exactly
#: those files. While it is left as it was, they follow the current environment instead
#: (a ``XDG_CONFIG_HOME`` changed since, say), which is what :func:`search_path` computes.
SEARCH_PATH: list[str] = _initial_search_path()
_SEARCH_PATH_AT_IMPORT = tuple(SEARCH_PATH)


def default_paths() -> list[str]:
    """The files read when no paths are given: :data:`SEARCH_PATH` if code changed it, else
    :func:`search_path` for the current environment."""
    paths = list(SEARCH_PATH)  # the module global as it is now, even if it was reassigned
    if tuple(paths) != _SEARCH_PATH_AT_IMPORT:
        return [os.fspath(path) for path in paths]
    return search_path()


# --- loading ------------------------------------------------------------------------------


def _read_file(path: str) -> dict[str, str] | None:
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed by the "with" below
    except (FileNotFoundError, IsADirectoryError):
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}", source=path) from None
    # Usually no config file exists at all: configparser (which compiles a handful of
    # regular expressions as it is imported) is loaded only when there is one to parse.
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        with handle:
            parser.read_file(handle, source=path)
    except (configparser.Error, UnicodeDecodeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: cannot read config file: {message}", source=path) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}", source=path) from None
    if not parser.has_section(SECTION):
        return {}
    return dict(parser.items(SECTION))


def _check_private(path: str, keys: list[str]) -> None:
    """Refuse a secret from a file that other users may read (as ssh does a key)."""
    if os.name != "posix":
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & 0o077:
        raise ConfigError(
            f"{path}: holds {' and '.join(keys)} but other users may read it "
            f"(mode {mode & 0o777:o}); run: chmod 600 {path}",
            source=path,
            key=keys[0],
        )


def load_config(
    paths: Iterable[str | os.PathLike[str]] | None = None, environ: Mapping[str, str] | None = None
) -> SpallocConfig:
    """Read the config files in *paths* (lowest priority first), then ``SPALLOC_*`` in *environ*.

    Missing files are skipped; unknown keys and other sections are ignored.

    Args:
        paths: files to read; ``None`` means :func:`default_paths`, ``[]`` reads none.
        environ: environment to take ``SPALLOC_<KEY>`` overrides from; ``None`` means
            ``os.environ``.

    Raises:
        ConfigError: a file is malformed or a value is invalid (the message names the file
            or variable, the key and the value).
    """
    if paths is None:
        paths = default_paths()
    if environ is None:
        environ = os.environ
    values: dict[str, Any] = {}
    sources: list[str] = []
    for path in paths:
        path = os.fspath(path)
        items = _read_file(path)
        if items is None:
            continue
        sources.append(path)
        if SECRET_KEYS & set(items):
            _check_private(path, sorted(SECRET_KEYS & set(items)))
        for key, text in items.items():
            if key in _KEYS:
                values[key] = parse_value(key, text, path)
    for key in _KEYS:
        name = ENV_PREFIX + key.upper()
        if name in environ:
            values[key] = parse_value(key, environ[name], f"environment variable {name}")
            if name not in sources:
                sources.append(name)
    return SpallocConfig(**values, sources=tuple(sources), explicit=frozenset(values))


def read_config(filenames: Iterable[str | os.PathLike[str]] | None = None) -> dict[str, Any]:
    """The original client's loader: the settings as a plain dict.

    The keys are the thirteen settings (``hostname``, ``owner``, ``port``, ``keepalive``,
    ``reconnect_delay``, ``timeout``, ``machine``, ``tags``, ``min_ratio``,
    ``max_dead_boards``, ``max_dead_links``, ``require_torus``, ``ignore_version``), with the
    documented defaults for those not set; ``tags`` is a list, or ``None`` when not set.
    As everywhere in this package, ``SPALLOC_*`` environment variables override the files.

    Args:
        filenames: files to read, later ones winning; ``None`` means :data:`SEARCH_PATH`
            (see :func:`default_paths`). Missing files are skipped.

    Raises:
        ConfigError: a file is malformed or a value is invalid (a ``ValueError``, as the
            original raised for a bad value).
    """
    config = load_config(filenames)
    values = {key: getattr(config, key) for key in _ORIGINAL_KEYS}
    if values["tags"] is not None:
        values["tags"] = list(values["tags"])
    return values


def describe_search_path(paths: Iterable[str] | None = None) -> list[str]:
    """Lines describing the search path and which files exist (for ``python -m``)."""
    paths = list(default_paths() if paths is None else paths)
    lines = ["Default search path (lowest-priority first):"]
    for path in paths:
        exists = os.path.isfile(path)
        lines.append(f"{path}{'   (exists)' if exists else ''}")
    names = ", ".join(ENV_PREFIX + name.upper() for name in SpallocConfig._fields if name in _KEYS)
    lines.append("")
    lines.append(f"Environment variables override the files: {names}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print the config search path (``python -m spalloc.config``)."""
    del argv
    print("\n".join(describe_search_path()))
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised via subprocess in the tests
    sys.exit(main())
