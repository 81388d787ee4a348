"""Config: search path, INI parsing, "None", SPALLOC_* overrides, errors naming the culprit."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spalloc import ConfigError
from spalloc.config import SpallocConfig, load_config, search_path


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults_match_the_seed() -> None:
    config = load_config([], {})
    assert config == SpallocConfig()
    assert (config.hostname, config.owner, config.port) == (None, None, 22244)
    assert (config.keepalive, config.reconnect_delay, config.timeout) == (60.0, 5.0, 5.0)
    assert (config.machine, config.tags, config.min_ratio) == (None, None, 0.333)
    assert (config.max_dead_boards, config.max_dead_links, config.require_torus) == (0, None, False)
    assert config.ignore_version is False


def test_every_key_parses(tmp_path: Path) -> None:
    path = write(
        tmp_path / "spalloc",
        """\
[spalloc]
hostname = server.example
owner = me@example.org
port = 1234
keepalive = None
reconnect_delay = 0.5
timeout = None
machine = None
tags = a, b ,c
min_ratio = 0.5
max_dead_boards = None
max_dead_links = 3
require_torus = yes
ignore_version = true
unknown_key = whatever

[other]
hostname = ignored
""",
    )
    config = load_config([path], {})
    assert config.hostname == "server.example" and config.owner == "me@example.org"
    assert config.port == 1234 and config.keepalive is None and config.timeout is None
    assert config.reconnect_delay == 0.5 and config.machine is None
    assert config.tags == ("a", "b", "c") and config.min_ratio == 0.5
    assert config.max_dead_boards is None and config.max_dead_links == 3
    assert config.require_torus is True and config.ignore_version is True
    assert config.sources == (path,)


def test_precedence_files_then_environment(tmp_path: Path) -> None:
    site = write(tmp_path / "site", "[spalloc]\nhostname = site\nport = 1\nowner = site\n")
    user = write(tmp_path / "user", "[spalloc]\nhostname = user\nport = 2\n")
    local = write(tmp_path / ".spalloc", "[spalloc]\nhostname = local-file\n")
    missing = str(tmp_path / "missing")
    config = load_config([site, user, missing, local], {"SPALLOC_PORT": "3"})
    assert config.hostname == "local-file"  # ./.spalloc beats the user file
    assert config.port == 3  # the environment beats every file
    assert config.owner == "site"  # untouched keys fall through
    assert config.sources == (site, user, local, "SPALLOC_PORT")
    env = {"SPALLOC_HOSTNAME": "None", "SPALLOC_TAGS": "x,y"}
    config = load_config([site], env)
    assert config.hostname is None and config.tags == ("x", "y")


@pytest.mark.parametrize(
    "key,value",
    [
        ("port", "abc"),
        ("port", "70000"),
        ("port", "None"),
        ("keepalive", "-1"),
        ("timeout", "soon"),
        ("require_torus", "maybe"),
        ("min_ratio", "nan"),
        ("max_dead_boards", "1.5"),
        ("reconnect_delay", "None"),
        ("tags", " , "),
    ],
)
def test_bad_values_name_file_key_and_value(tmp_path: Path, key: str, value: str) -> None:
    path = write(tmp_path / "spalloc", f"[spalloc]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config([path], {})
    error = info.value
    assert isinstance(error, ValueError)
    assert path in str(error) and key in str(error) and value.strip() in str(error)
    assert (error.source, error.key) == (path, key)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"SPALLOC_PORT.*port.*'eighty'"):
        load_config([], {"SPALLOC_PORT": "eighty"})


def test_malformed_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "spalloc", "hostname = no section header\n")
    with pytest.raises(ConfigError) as info:
        load_config([path], {})
    assert path in str(info.value) and info.value.source == path


def test_search_path_uses_platformdirs_and_cwd(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "site"))
    if sys.platform.startswith("linux"):
        assert search_path() == [
            str(tmp_path / "site" / "spalloc"),
            str(tmp_path / "user" / "spalloc"),
            os.path.join(".", ".spalloc"),
        ]
    else:
        assert search_path()[-1] == os.path.join(".", ".spalloc")


def test_load_config_reads_the_search_path_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "site"))
    (tmp_path / "user").mkdir()
    write(tmp_path / "user" / "spalloc", "[spalloc]\nowner = from-user\nhostname = u\n")
    write(tmp_path / ".spalloc", "[spalloc]\nhostname = from-cwd\n")
    config = load_config(environ={})
    assert (config.hostname, config.owner) == ("from-cwd", "from-user")


def test_python_m_spalloc_config_prints_the_search_path(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "user"),
        "XDG_CONFIG_DIRS": str(tmp_path / "site"),
    }
    (tmp_path / "user").mkdir()
    write(tmp_path / "user" / "spalloc", "[spalloc]\n")
    out = subprocess.run(
        [sys.executable, "-W", "error", "-m", "spalloc.config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Default search path (lowest-priority first):"
    assert lines[1] == str(tmp_path / "site" / "spalloc")
    assert lines[2] == f"{tmp_path / 'user' / 'spalloc'}   (exists)"
    assert lines[3] == os.path.join(".", ".spalloc")
    assert "SPALLOC_HOSTNAME" in out.stdout


def test_import_spalloc_stays_light() -> None:
    code = (
        "import sys, spalloc\n"
        "heavy = {'platformdirs', 'configparser', 'IPython', 'ipywidgets', 'rich'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
    # Job pulls in the client and config, but platformdirs only when the path is needed.
    code = (
        "import sys\nfrom spalloc import Job\n"
        "print('platformdirs' in sys.modules, 'spalloc.emulator' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["False", "False"]


_HOME = object()  # "leave HOME as the test runs with it"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG shortcut is Linux's")
@pytest.mark.parametrize(
    "config_home,config_dirs,home,ordinary",
    [
        (None, None, _HOME, True),
        ("", "", _HOME, True),
        ("/x/conf", None, _HOME, True),
        ("/x/conf/", "/a:/b", _HOME, True),
        (None, "/a/", "/home/someone", True),
        (None, None, "/", True),
        (None, None, "/home/someone/", True),
        (None, None, None, True),  # no HOME: the password database
        ("relative/conf", None, _HOME, False),
        ("~/conf", None, _HOME, False),
        (" ", None, _HOME, False),
        (None, "relative:/b", _HOME, False),
        (None, ":/b", _HOME, False),
        (None, " ", _HOME, False),
        (None, None, "", False),
        (None, None, "relative/home", False),
    ],
)
def test_linux_search_path_is_what_platformdirs_says(
    monkeypatch: pytest.MonkeyPatch,
    config_home: str | None,
    config_dirs: str | None,
    home: object,
    ordinary: bool,
) -> None:
    import platformdirs

    from spalloc.config import _xdg_config_dirs

    for name, value in (
        ("XDG_CONFIG_HOME", config_home),
        ("XDG_CONFIG_DIRS", config_dirs),
        ("HOME", home),
    ):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        elif value is not _HOME:
            monkeypatch.setenv(name, str(value))
    try:
        expected = (platformdirs.site_config_dir(), platformdirs.user_config_dir())
    except RuntimeError:  # recent platformdirs refuse a home they cannot make absolute
        expected = None
    ours = _xdg_config_dirs()
    # Computed without platformdirs exactly when the case is ordinary, and then the same.
    assert (ours is not None) == ordinary
    if ours is not None:
        assert ours == expected
    if expected is not None:
        assert search_path()[:2] == [os.path.join(path, "spalloc") for path in expected]


def test_only_existing_config_files_load_configparser(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    code = (
        "import sys; from spalloc.config import load_config\n"
        f"config = load_config([{str(missing)!r}, {str(tmp_path)!r}], {{}})\n"
        "print('configparser' in sys.modules, config.sources)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["False", "()"]  # a directory is skipped like a missing file
    path = write(tmp_path / "spalloc", "[spalloc]\nhostname = h\n")
    code = code.replace(repr(str(missing)), repr(path))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["True", f"({path!r},)"]


# --- the original client's public loader and search path (issue 17) -------------------------

#: (key, text in the file or None for "not in the file", what read_config reports): the
#: original 1!6.0.0 read_config's documented results, which ours must give too.
ORIGINAL_RESULTS = [
    ("hostname", None, None),
    ("hostname", "foo", "foo"),
    ("owner", None, None),
    ("owner", "me@example.org", "me@example.org"),
    ("port", None, 22244),
    ("port", "1234", 1234),
    ("keepalive", None, 60.0),
    ("keepalive", "None", None),
    ("keepalive", "3", 3.0),
    ("reconnect_delay", None, 5.0),
    ("reconnect_delay", "3.0", 3.0),
    ("timeout", None, 5.0),
    ("timeout", "None", None),
    ("timeout", "3.0", 3.0),
    ("machine", None, None),
    ("machine", "None", None),
    ("machine", "foo", "foo"),
    ("tags", None, None),
    ("tags", "None", None),
    ("tags", "foo", ["foo"]),
    ("tags", "one, two , three", ["one", "two", "three"]),
    ("min_ratio", None, 0.333),
    ("min_ratio", "1.0", 1.0),
    ("max_dead_boards", None, 0),
    ("max_dead_boards", "None", None),
    ("max_dead_boards", "3", 3),
    ("max_dead_links", None, None),
    ("max_dead_links", "None", None),
    ("max_dead_links", "3", 3),
    ("require_torus", None, False),
    ("require_torus", "False", False),
    ("require_torus", "yes", True),
    ("ignore_version", None, False),
    ("ignore_version", "on", True),
]


@pytest.mark.usefixtures("isolated_config")
@pytest.mark.parametrize("key,text,expected", ORIGINAL_RESULTS)
def test_read_config_reports_what_the_original_did(
    tmp_path: Path, key: str, text: str | None, expected: object
) -> None:
    from spalloc.config import read_config

    body = "[spalloc]\n" + ("" if text is None else f"{key} = {text}\n")
    config = read_config([write(tmp_path / "f", body)])
    assert sorted(config) == sorted(
        [
            "hostname",
            "owner",
            "port",
            "keepalive",
            "reconnect_delay",
            "timeout",
            "machine",
            "tags",
            "min_ratio",
            "max_dead_boards",
            "max_dead_links",
            "require_torus",
            "ignore_version",
        ]
    )
    assert config[key] == expected
    assert type(config[key]) is type(expected)  # a list of tags, not a tuple; 3.0 not 3


@pytest.mark.usefixtures("isolated_config")
def test_read_config_later_files_win_and_bad_values_are_value_errors(tmp_path: Path) -> None:
    from spalloc.config import read_config

    first = write(tmp_path / "f1", "[spalloc]\nport=123\nhostname=bar\n")
    second = write(tmp_path / "f2", "[spalloc]\nport=321\ntags=qux\n")
    config = read_config([first, str(tmp_path / "missing"), Path(second)])
    assert (config["port"], config["hostname"], config["tags"]) == (321, "bar", ["qux"])
    assert config["reconnect_delay"] == 5.0
    config["tags"].append("mine")  # a fresh dict and list each time, as the original's
    assert read_config([second])["tags"] == ["qux"]
    with pytest.raises(ValueError, match="port"):
        read_config([write(tmp_path / "bad", "[spalloc]\nport = eighty\n")])


@pytest.mark.usefixtures("isolated_config")
def test_read_config_defaults_to_the_search_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from spalloc.config import read_config

    write(tmp_path / ".spalloc", "[spalloc]\nhostname = from-cwd\ntags = a,b\n")
    assert read_config()["hostname"] == "from-cwd"
    assert read_config()["tags"] == ["a", "b"]
    # What the rest of the package reads, so SPALLOC_* variables override the files here too.
    monkeypatch.setenv("SPALLOC_TAGS", "c")
    assert read_config()["tags"] == ["c"] and read_config([])["tags"] == ["c"]


@pytest.mark.usefixtures("isolated_config")
def test_changes_to_search_path_are_honoured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import spalloc.config
    from spalloc.config import SEARCH_PATH, read_config

    assert type(spalloc.config.SEARCH_PATH) is list
    assert spalloc.config.SEARCH_PATH is SEARCH_PATH  # the same list at every access
    extra = write(tmp_path / "extra", "[spalloc]\nhostname = extra\nowner = x\n")
    write(tmp_path / ".spalloc", "[spalloc]\nhostname = from-cwd\n")
    # In place, as user code written for the original client does it: last file wins.
    monkeypatch.setattr(spalloc.config, "SEARCH_PATH", SEARCH_PATH)  # restored afterwards
    saved = list(SEARCH_PATH)
    try:
        SEARCH_PATH.append(extra)
        assert load_config(environ={}).hostname == "extra"
        assert read_config()["hostname"] == "extra"
        assert load_config(environ={}).sources[-1] == extra
        SEARCH_PATH.remove(extra)
        assert load_config(environ={}).hostname == "from-cwd"
    finally:
        SEARCH_PATH[:] = saved
    # Or by assigning a new list: only those files are read.
    monkeypatch.setattr(spalloc.config, "SEARCH_PATH", [Path(extra)])
    assert load_config(environ={}).sources == (extra,)
    assert read_config()["owner"] == "x"
    monkeypatch.setattr(spalloc.config, "SEARCH_PATH", [])
    assert load_config(environ={}).sources == ()


def test_search_path_is_computed_at_import_without_platformdirs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "user"),
        "XDG_CONFIG_DIRS": str(tmp_path / "site"),
    }
    code = (
        "import sys, spalloc.config as c\n"
        "print(repr((c.SEARCH_PATH, c.search_path(), 'platformdirs' in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    path, fresh, platformdirs_loaded = ast.literal_eval(out.stdout.strip())
    assert path == fresh
    if sys.platform.startswith("linux"):
        assert path == [
            str(tmp_path / "site" / "spalloc"),
            str(tmp_path / "user" / "spalloc"),
            os.path.join(".", ".spalloc"),
        ]
        assert platformdirs_loaded is False


def test_search_path_survives_an_environment_platformdirs_refuses(tmp_path: Path) -> None:
    # Some platformdirs releases raise for a home they cannot make absolute (a relative
    # HOME sends us to platformdirs): importing must still work, and only the loader that
    # needs the path reports the trouble.
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("XDG_", "SPALLOC_"))
    }
    env["HOME"] = "relative/home"
    code = (
        "import platformdirs\n"
        "def refuse(*args, **kwargs): raise RuntimeError('no absolute home')\n"
        "platformdirs.user_config_dir = refuse\n"
        "import spalloc.config as c\n"
        "print(c.read_config([])['port'], c.SEARCH_PATH)\n"
        "try:\n    c.load_config()\nexcept RuntimeError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"22244 [{os.path.join('.', '.spalloc')!r}]",
        "no absolute home",
    ]
