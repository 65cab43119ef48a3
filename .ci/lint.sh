#!/usr/bin/env bash
# Static checks, run by scripts/test.sh before the tests (also on their own:
# bash .ci/lint.sh).  Needs the test extra: pip install -e ".[test]".
#   1. ruff over every Python tree;
#   2. mypy as configured in pyproject.toml ([tool.mypy]): clipper_core
#      strictly, clipper_frontends with the defaults; zero errors allowed;
#   3. import-linter ([tool.importlinter]): no import cycle between the
#      modules of any package of clipper_core or clipper_frontends, and
#      clipper_core imports no frontend, compatibility package or plugin.
# Every check runs; the script fails if any of them failed.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
check() {
    local name=$1
    shift
    printf '\n== %s: %s\n' "$name" "$*"
    if "$@"; then
        printf -- '-- %s: ok\n' "$name"
    else
        printf -- '-- %s: FAILED\n' "$name"
        failed+=("$name")
    fi
}

check ruff python3 -m ruff check clipper_core frontends plugins tests bench
check mypy python3 -m mypy
# --no-cache: the graph is built in well under a second, and no cache
# directory is left in the tree.
check import-linter lint-imports --no-cache

if ((${#failed[@]})); then
    printf '\nlint failed: %s\n' "${failed[*]}"
    exit 1
fi
printf '\nlint passed\n'
