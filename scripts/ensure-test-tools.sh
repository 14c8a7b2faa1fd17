#!/usr/bin/env bash
# Installs the programs the deployment and status-page tests drive, from Debian's packages:
#   chromium          headless browser that renders the status page (tests/integration/test_status_page.py)
#   systemd           systemd-analyze, to verify the unit and score its sandboxing
#                     (tests/integration/test_deployments.py)
#   zsh               the shell the zsh completion script is run in (tests/integration/test_cli.py;
#                     bash is on every Debian machine already)
# Those tests fail, never skip, when a tool is missing, so `make test` calls this first.
#
# Idempotent and quick: when every tool is already there it only runs `command -v` and exits.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v zsh >/dev/null 2>&1 || missing+=(zsh)

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

# Use sudo only when not root (CI containers and fresh machines usually run as root without sudo).
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "ensure-test-tools: ${missing[*]} missing and installing needs root or sudo" >&2
        exit 1
    fi
    SUDO=(sudo)
fi

echo "ensure-test-tools: installing ${missing[*]} (Debian packages) for the tests" >&2
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# fonts-dejavu-core: without any font the screenshot of the status page shows empty boxes.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" fonts-dejavu-core >/dev/null
echo "ensure-test-tools: installed ${missing[*]}" >&2
