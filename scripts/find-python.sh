#!/usr/bin/env bash
# Prints the path of a working interpreter for Python VERSION (e.g. 3.12), or exits 1.
#
#   scripts/find-python.sh 3.12
#
# Looks, in order, at `pythonVERSION` on PATH, pyenv's versions ($PYENV_ROOT, default ~/.pyenv,
# newest patch release first) and /usr/local/bin, /usr/bin. Each candidate is run once to check
# that it is that version: a pyenv shim for a version that is not selected is on PATH but fails.
set -uo pipefail

version="${1:?usage: find-python.sh VERSION (e.g. 3.12)}"

works() {
    "$1" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$version' else 1)" \
        >/dev/null 2>&1
}

candidates=()
if on_path="$(command -v "python$version" 2>/dev/null)"; then
    candidates+=("$on_path")
fi
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
# `sort -V -r`: 3.12.10 before 3.12.9.
while IFS= read -r dir; do
    candidates+=("$dir/bin/python$version")
done < <(ls -d "$pyenv_root/versions/$version".* 2>/dev/null | sort -V -r)
candidates+=("/usr/local/bin/python$version" "/usr/bin/python$version")

for candidate in "${candidates[@]}"; do
    if [ -x "$candidate" ] && works "$candidate"; then
        echo "$candidate"
        exit 0
    fi
done
exit 1
