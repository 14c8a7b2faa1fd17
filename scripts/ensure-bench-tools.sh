#!/usr/bin/env bash
# Installs hyperfine (Debian's package), which times the command line's start in `make bench`
# (benchmarks/cli.py). Best effort: without root or apt-get, or if the install fails, the
# benchmark times the commands with a loop in Python instead and says so in its table.
set -uo pipefail

if command -v hyperfine >/dev/null 2>&1; then
    exit 0
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "ensure-bench-tools: no hyperfine and no root: the cli benchmark times with Python" >&2
        exit 0
    fi
    SUDO=(sudo)
fi
if ! command -v apt-get >/dev/null 2>&1 \
    || ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine \
        >/dev/null 2>&1; then
    echo "ensure-bench-tools: hyperfine could not be installed: the cli benchmark times with" \
        "Python" >&2
fi
exit 0
