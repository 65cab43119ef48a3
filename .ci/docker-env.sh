#!/usr/bin/env bash
# Give the docker tests a real engine, a Python base image and a registry.
#
#   source .ci/docker-env.sh        start (idempotent) and export the env below
#   .ci/docker-env.sh up            start; print the env as `export` lines
#   .ci/docker-env.sh down          stop what `up` started (also: clipper_ci_docker_down)
#
# Exports: DOCKER_HOST, CLIPPER_TEST_DOCKER=1, CLIPPER_TEST_BASE_IMAGE,
# CLIPPER_TEST_REDIS_IMAGE, CLIPPER_TEST_REGISTRY (host:port),
# CLIPPER_BUILD_CA_BUNDLE (the host's CA bundle, for pip inside image builds).
# Needs root, docker.io, debootstrap, docker-registry, curl.

_clipper_ci_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/docker.sh
source "$_clipper_ci_dir/lib/docker.sh"

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    clipper_ci_docker_up
else
    case "${1:-up}" in
        up)
            clipper_ci_docker_up || exit 1
            env | grep -E '^(DOCKER_HOST|CLIPPER_TEST_[A-Z_]+|CLIPPER_BUILD_CA_BUNDLE)=' \
                | sed 's/^/export /'
            ;;
        down) clipper_ci_docker_down ;;
        *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
    esac
fi
