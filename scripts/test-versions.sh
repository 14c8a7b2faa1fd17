#!/usr/bin/env bash
# The unit and contract suites on other Python versions: `make versions` (part of `make test`).
#
#   scripts/test-versions.sh 3.12 3.13
#
# For each VERSION, finds an interpreter (scripts/find-python.sh: PATH, then pyenv's versions),
# makes .venv-VERSION from requirements/dev-pyVERSION.txt (`make .venv-VERSION/.installed`) and
# runs `pytest tests/unit` there, which runs each async test on asyncio's loop and on uvloop.
# The integration suite stays on .venv's version (it starts PostgreSQL from the pgserver wheel,
# which has no build for 3.13).
#
# A version this machine does not have is reported, in a line of its own and in the summary,
# and does not fail the run: a fresh Debian machine has its own python3 (3.11) alone. Set
# REQUIRE_PYTHONS=1 to make a missing version fail. A version whose tests fail fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=()
failed=()
missing=()
for version in "$@"; do
    if ! python="$(scripts/find-python.sh "$version")"; then
        echo "versions: Python $version: MISSING: no python$version on PATH nor in" \
            "${PYENV_ROOT:-$HOME/.pyenv}/versions; its unit suite did not run" >&2
        missing+=("$version")
        continue
    fi
    echo "versions: Python $version ($python): unit and contract suites" >&2
    if make --no-print-directory ".venv-$version/.installed" \
        && ".venv-$version/bin/pytest" -q -p no:cacheprovider tests/unit; then
        passed+=("$version")
    else
        failed+=("$version")
    fi
done

summary="versions: passed: ${passed[*]:-none}; failed: ${failed[*]:-none}; missing: ${missing[*]:-none}"
echo "$summary" >&2
if [ "${#failed[@]}" -gt 0 ]; then
    exit 1
fi
if [ "${#missing[@]}" -gt 0 ] && [ "${REQUIRE_PYTHONS:-}" = 1 ]; then
    echo "versions: REQUIRE_PYTHONS=1 and ${missing[*]} missing" >&2
    exit 1
fi
