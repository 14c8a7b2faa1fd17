#!/usr/bin/env bash
# Regenerates the locks in requirements/ from pyproject.toml: `make lock` (keeps every pinned
# version that still fits, adds what pyproject.toml added, drops what it dropped) or
# `make lock-upgrade` (LOCK_UPGRADE=1: the newest versions the ranges allow).
#
# Per Python version VERSION in $LOCK_PYTHONS (default 3.11 3.12 3.13), two files:
#   requirements/dev-pyVERSION.txt      .[dev,embedded,bench] and the build backend: what `make run`,
#                                       `make test` and `make bench` install into .venv (.venv-VERSION)
#   requirements/runtime-pyVERSION.txt  the package's own dependencies and the build backend: what
#                                       the container image installs; the same versions as the
#                                       dev lock (compiled with it as a constraint)
# Each pin carries the sha256 of every file PyPI serves for it (every platform), so
# `pip install --require-hashes -r` installs exactly these files anywhere. Resolved for Linux
# (`--python-platform linux`): the platform the worker runs on.
#
# Uses uv (`uv pip compile`), which asks PyPI alone (no pip.conf extra index, no local wheels).
# `make lock` installs the uv pinned in requirements/tools.txt into .tools/ first.
set -euo pipefail
cd "$(dirname "$0")/.."

UV="${UV:-.tools/bin/uv}"
read -r -a versions <<<"${LOCK_PYTHONS:-3.11 3.12 3.13}"
upgrade=()
if [ "${LOCK_UPGRADE:-}" = 1 ]; then
    upgrade=(--upgrade)
fi

compile() {
    "$UV" pip compile --quiet --generate-hashes --python-platform linux \
        --custom-compile-command "make lock" "${upgrade[@]}" "$@"
}

for version in "${versions[@]}"; do
    dev="requirements/dev-py$version.txt"
    runtime="requirements/runtime-py$version.txt"
    echo "lock: Python $version: $dev, $runtime" >&2
    compile --python-version "$version" --output-file "$dev" \
        pyproject.toml requirements/build.in --extra dev --extra embedded --extra bench
    compile --python-version "$version" --output-file "$runtime" --constraint "$dev" \
        pyproject.toml requirements/build.in
done

# uv itself, for the next `make lock`.
compile --python-version "${versions[0]}" --output-file requirements/tools.txt requirements/tools.in
