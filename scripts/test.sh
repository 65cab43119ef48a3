#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine and run it.
#   sudo scripts/test.sh [pytest args...]
# Installs Debian packages (redis-server, docker.io, debootstrap, docker-registry,
# wrk), the project and its plugins, starts dockerd, a local registry and a
# Redis on their own ports, runs ruff and the tests, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

step "Debian packages"
if ! command -v redis-server >/dev/null || ! command -v dockerd >/dev/null \
   || ! command -v debootstrap >/dev/null || ! command -v wrk >/dev/null \
   || ! command -v docker-registry >/dev/null || ! command -v openssl >/dev/null \
   || ! command -v curl >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends redis-server docker.io debootstrap \
        docker-registry wrk openssl curl ca-certificates iproute2 >/dev/null
fi

step "Python packages"
python3 -m pip install -q -e ".[test,bench]" -e plugins/local_process -e plugins/docker \
    -e plugins/k8s -e plugins/nomad

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
# shellcheck source=../.ci/docker-env.sh
source .ci/docker-env.sh

step "Lint"
python3 -m ruff check clipper_core frontends plugins tests bench

step "Tests"
set +e
python3 -m pytest "$@"
status=$?
set -e
exit $status
