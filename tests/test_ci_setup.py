"""The CI set-up scripts install only what the tests need."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _apt_installs(script: Path) -> list[list[str]]:
    words = [shlex.split(line.split("#")[0]) for line in script.read_text().splitlines()]
    return [w for w in words if w[:2] == ["apt-get", "install"]]


def test_browser_setup_installs_no_recommended_packages() -> None:
    installs = _apt_installs(ROOT / ".ci" / "browser-setup.sh")
    assert installs, "browser-setup.sh no longer installs chromium with apt-get?"
    for words in installs:
        assert "--no-install-recommends" in words, words
        assert "-y" in words  # CI has no standard input


def test_every_ci_script_is_strict_bash() -> None:
    for script in (ROOT / ".ci").iterdir():
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), script
        assert re.search(r"^set -euo pipefail$", text, re.M), script
