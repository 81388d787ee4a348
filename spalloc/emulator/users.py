"""Who may use the emulator's v2 service: users with passwords, bearer tokens and groups.

A users file is TOML, one ``[[user]]`` table per user::

    [[user]]
    name = "alice"
    password = "secret"        # form login and HTTP Basic (optional)
    tokens = ["alice-token"]   # accepted as "Authorization: Bearer alice-token" (optional)
    groups = ["g1"]            # accounting groups (default: one group named after the user)
    admin = false

Without a file the emulator has one user, :data:`DEFAULT_USER` with password
:data:`DEFAULT_PASSWORD` and no tokens, and serves v2 only on loopback addresses. Secrets
never appear in a repr or an error message.
"""

from __future__ import annotations

import hmac
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_USER",
    "User",
    "UserConfigError",
    "Users",
    "default_users",
    "load_users",
    "parse_users",
]

#: The one user of an emulator started without a users file (loopback only).
DEFAULT_USER = "spalloc"
#: Its password: documented, so fit only for a server nobody else can reach.
DEFAULT_PASSWORD = "spalloc"

_KEYS = frozenset({"name", "password", "tokens", "groups", "admin"})


class UserConfigError(ValueError):
    """A users file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class User:
    """One account. ``password`` and ``tokens`` are kept out of the repr."""

    name: str
    password: str | None = field(default=None, repr=False)
    tokens: tuple[str, ...] = field(default=(), repr=False)
    groups: tuple[str, ...] = ()
    admin: bool = False

    def password_matches(self, given: str) -> bool:
        """Constant-time check of a password (never true for a user without one)."""
        if self.password is None:
            return False
        return hmac.compare_digest(self.password.encode(), given.encode())


class Users:
    """The accounts, looked up by name or by bearer token."""

    def __init__(self, users: Iterable[User]) -> None:
        self._by_name: dict[str, User] = {}
        self._by_token: dict[str, User] = {}
        for user in users:
            if user.name in self._by_name:
                raise UserConfigError(f"duplicate user name {user.name!r}")
            self._by_name[user.name] = user
            for token in user.tokens:
                if token in self._by_token:
                    raise UserConfigError(f"user {user.name!r}: a token is given twice")
                self._by_token[token] = user

    def __repr__(self) -> str:
        return f"Users({sorted(self._by_name)!r})"

    def __len__(self) -> int:
        return len(self._by_name)

    def named(self, name: str) -> User | None:
        """The user called *name*, or None."""
        return self._by_name.get(name)

    def with_token(self, token: str) -> User | None:
        """The user whose bearer token is *token*, or None (compared in constant time)."""
        found = None
        for known, user in self._by_token.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = user
        return found


def default_users() -> Users:
    """The accounts of an emulator started without a users file."""
    return Users([User(DEFAULT_USER, DEFAULT_PASSWORD, groups=(DEFAULT_USER,))])


def _strings(source: str, where: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UserConfigError(f"{source}: {where}: {key} must be a list of non-empty strings")
    return tuple(value)


def parse_users(data: Mapping[str, Any], source: str) -> Users:
    """Build the accounts from a parsed TOML document.

    Raises:
        UserConfigError: naming *source*, the entry and the field at fault (never a secret).
    """
    unknown = sorted(set(data) - {"user"})
    if unknown:
        raise UserConfigError(f"{source}: unknown key {unknown[0]!r} (only [[user]] tables)")
    tables = data.get("user")
    if not isinstance(tables, list) or not tables:
        raise UserConfigError(f"{source}: expected at least one [[user]] table")
    users = []
    for index, table in enumerate(tables):
        where = f"user #{index + 1}"
        if not isinstance(table, Mapping):
            raise UserConfigError(f"{source}: {where}: expected a table")
        bad = sorted(set(table) - _KEYS)
        if bad:
            raise UserConfigError(f"{source}: {where}: unknown key {bad[0]!r}")
        name = table.get("name")
        if not isinstance(name, str) or not name.strip() or not name.isprintable():
            raise UserConfigError(f"{source}: {where}: name must be a non-empty string")
        where = f"user {name!r}"
        password = table.get("password")
        if password is not None and (not isinstance(password, str) or not password):
            raise UserConfigError(f"{source}: {where}: password must be a non-empty string")
        tokens = _strings(source, where, "tokens", table.get("tokens", []))
        groups = _strings(source, where, "groups", table.get("groups", [name]))
        admin = table.get("admin", False)
        if not isinstance(admin, bool):
            raise UserConfigError(f"{source}: {where}: admin must be true or false")
        if password is None and not tokens:
            raise UserConfigError(f"{source}: {where}: needs a password or a token")
        users.append(User(name, password, tokens, groups, admin))
    try:
        return Users(users)
    except UserConfigError as exc:
        raise UserConfigError(f"{source}: {exc}") from None


def load_users(path: str | os.PathLike[str]) -> Users:
    """Read a users file.

    Raises:
        UserConfigError: bad TOML or a bad entry.
        OSError: the file cannot be read.
    """
    source = os.fspath(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message quotes no values, only positions.
        raise UserConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_users(data, source)
