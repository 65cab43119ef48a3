#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine and run it.
#   scripts/test.sh [pytest args...]
# Installs Debian packages (redis-server, docker.io, debootstrap, docker-registry,
# wrk, chromium), the project and its plugins into the project's virtual
# environment .venv (which also sees the system's packages), starts dockerd, a
# local registry and a Redis on their own ports, installs the ML frameworks,
# runs the static checks (.ci/lint.sh) and the tests, and
# stops what it started.  As root (CI's .ci/run) it does all of it; as a user
# it calls sudo for apt only, and the Docker tests run only if that user can
# reach a Docker engine already (else they skip: starting dockerd needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
# shellcheck source=lib/env.sh
source scripts/lib/env.sh

step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

step "Debian packages"
if ! command -v redis-server >/dev/null || ! command -v dockerd >/dev/null \
   || ! command -v debootstrap >/dev/null || ! command -v wrk >/dev/null \
   || ! command -v docker-registry >/dev/null || ! command -v openssl >/dev/null \
   || ! command -v curl >/dev/null || ! command -v chromium >/dev/null \
   || ! command -v prometheus >/dev/null; then
    apt_install redis-server docker.io debootstrap docker-registry wrk openssl curl \
        ca-certificates iproute2 chromium prometheus
fi

step "Python packages (into .venv)"
CLIPPER_VENV_SYSTEM_SITE=1 use_venv
python3 -m pip install -q -e ".[test,bench]" -e plugins/local_process -e plugins/docker \
    -e plugins/k8s -e plugins/nomad

step "ML frameworks (tests marked frameworks)"
bash scripts/install-frameworks.sh

cleanup() {
    set +e
    [[ -n "${REDIS_PID:-}" ]] && kill "$REDIS_PID" 2>/dev/null
    declare -F clipper_ci_docker_down >/dev/null && clipper_ci_docker_down
    rm -rf "${REDIS_DIR:-/nonexistent}"
}
trap cleanup EXIT

step "Redis"
REDIS_DIR=$(mktemp -d)
REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" --appendonly yes \
    --save "" --daemonize no >"$REDIS_DIR/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT" ping >/dev/null
export CLIPPER_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

step "Docker engine, base image, registry"
if [[ $(id -u) -eq 0 ]]; then
    # shellcheck source=../.ci/docker-env.sh
    source .ci/docker-env.sh
else
    echo "not root: dockerd is not started; the Docker tests run only against an engine" \
         "this user can already reach (else they skip)"
fi

step "Lint (ruff, mypy, import cycles)"
bash .ci/lint.sh

# The long schemathesis runs use this many examples per operation in CI.
export CLIPPER_FUZZ_EXAMPLES="${CLIPPER_FUZZ_EXAMPLES:-25}"

step "Tests"
set +e
python3 -m pytest "$@"
status=$?
set -e
exit $status
