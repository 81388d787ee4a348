#!/usr/bin/env bash
# Prepares the real-browser test stage (tests/browser): Debian's Chromium plus the Python packages of
# the `browser` extra (JupyterLab, Playwright) in the project's virtualenv. Playwright never downloads
# a browser here; the tests launch /usr/bin/chromium. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# The active virtualenv, else ./.venv; never the system interpreter.
if [[ -n "${VIRTUAL_ENV:-}" ]]; then
    py="$VIRTUAL_ENV/bin/python"
elif [[ -x .venv/bin/python ]]; then
    py=.venv/bin/python
else
    echo "browser-setup: no virtualenv (activate one or create .venv first)" >&2
    exit 2
fi

if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # Recommends would add printer, avahi and notification daemons (~480 MB) that a headless
    # browser never uses; fonts-liberation is the one recommended package pages need.
    apt-get install -y -q --no-install-recommends chromium fonts-liberation
fi
chromium --version

"$py" -m pip install -q -e '.[browser]'
"$py" -c 'import jupyterlab, playwright.sync_api; print("jupyterlab", jupyterlab.__version__)'
