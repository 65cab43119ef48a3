# shellcheck shell=bash
# Functions that give CI a real Docker engine, a Python base image and a local
# image registry.  Sourced by .ci/docker-env.sh; every function is idempotent
# and only stops what it started (pids are kept under $CLIPPER_CI_DOCKER_STATE).
#
# Tunables (environment):
#   CLIPPER_CI_DOCKER_STATE      state dir (pid files, logs, registry data)
#   CLIPPER_CI_BASE_IMAGE        tag of the locally built Python base image
#   CLIPPER_CI_DEBIAN_MIRROR     debootstrap mirror (default: first apt source)
#   CLIPPER_CI_DEBIAN_SUITE      Debian suite (default bookworm)
#   CLIPPER_CI_REGISTRY_PORT     loopback port of the local registry (default 5055)
#   CLIPPER_CI_DOCKERD_ARGS      extra dockerd arguments

: "${CLIPPER_CI_DOCKER_STATE:=/var/tmp/clipper-ci-docker}"
: "${CLIPPER_CI_DEBIAN_SUITE:=bookworm}"
: "${CLIPPER_CI_BASE_IMAGE:=clipper-ci/python-base:${CLIPPER_CI_DEBIAN_SUITE}}"
: "${CLIPPER_CI_REGISTRY_PORT:=5055}"

_cdk_log() { printf '[docker-env] %s\n' "$*" >&2; }

_cdk_pid_alive() {  # $1 = pid file
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

# Start dockerd unless an engine already answers.  Logs to $STATE/dockerd.log.
clipper_ci_start_dockerd() {
    mkdir -p "$CLIPPER_CI_DOCKER_STATE"
    if docker info >/dev/null 2>&1; then
        _cdk_log "docker engine already running"
        return 0
    fi
    if ! command -v dockerd >/dev/null; then
        _cdk_log "dockerd not found (apt-get install docker.io)"
        return 1
    fi
    _cdk_log "starting dockerd (log: $CLIPPER_CI_DOCKER_STATE/dockerd.log)"
    # shellcheck disable=SC2086
    setsid dockerd --iptables=false --ip6tables=false --bridge=none \
        --storage-driver=overlay2 ${CLIPPER_CI_DOCKERD_ARGS:-} \
        >"$CLIPPER_CI_DOCKER_STATE/dockerd.log" 2>&1 </dev/null &
    echo $! >"$CLIPPER_CI_DOCKER_STATE/dockerd.pid"
    local i
    for i in $(seq 1 120); do
        if docker info >/dev/null 2>&1; then
            _cdk_log "dockerd ready after ${i} polls"
            return 0
        fi
        if ! _cdk_pid_alive "$CLIPPER_CI_DOCKER_STATE/dockerd.pid"; then
            _cdk_log "dockerd exited; last log lines:"
            tail -n 30 "$CLIPPER_CI_DOCKER_STATE/dockerd.log" >&2
            return 1
        fi
        sleep 0.5
    done
    _cdk_log "dockerd did not answer within 60 s"
    tail -n 30 "$CLIPPER_CI_DOCKER_STATE/dockerd.log" >&2
    return 1
}

_cdk_mirror() {
    if [[ -n "${CLIPPER_CI_DEBIAN_MIRROR:-}" ]]; then
        echo "$CLIPPER_CI_DEBIAN_MIRROR"; return
    fi
    local m
    m=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' \
        /etc/apt/sources.list.d/* /etc/apt/sources.list 2>/dev/null \
        | awk '{print $2}' | head -n 1 || true)
    echo "${m:-http://deb.debian.org/debian}"
}

# Build a Debian base image with Python 3, venv, pip, CA certificates and
# redis-server by debootstrap (no registry pull needed).  Cached by tag.
clipper_ci_build_base_image() {
    if docker image inspect "$CLIPPER_CI_BASE_IMAGE" >/dev/null 2>&1; then
        _cdk_log "base image $CLIPPER_CI_BASE_IMAGE cached"
        return 0
    fi
    local root mirror
    root=$(mktemp -d "${TMPDIR:-/tmp}/clipper-rootfs.XXXXXX")
    mirror=$(_cdk_mirror)
    _cdk_log "debootstrap $CLIPPER_CI_DEBIAN_SUITE from $mirror (about 90 s)"
    if ! debootstrap --variant=minbase \
            --include=python3,python3-venv,python3-pip,ca-certificates,redis-server \
            "$CLIPPER_CI_DEBIAN_SUITE" "$root" "$mirror" \
            >"$CLIPPER_CI_DOCKER_STATE/debootstrap.log" 2>&1; then
        _cdk_log "debootstrap failed; last log lines:"
        tail -n 30 "$CLIPPER_CI_DOCKER_STATE/debootstrap.log" >&2
        rm -rf "$root"
        return 1
    fi
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$CLIPPER_CI_BASE_IMAGE" >/dev/null
    local rc=$?
    rm -rf "$root"
    [[ $rc -eq 0 ]] && _cdk_log "built $CLIPPER_CI_BASE_IMAGE"
    return $rc
}

_cdk_registry_up() {
    curl -fsS "http://127.0.0.1:${CLIPPER_CI_REGISTRY_PORT}/v2/" >/dev/null 2>&1
}

# Run Debian's docker-registry on 127.0.0.1:$CLIPPER_CI_REGISTRY_PORT.
clipper_ci_start_registry() {
    local dir="$CLIPPER_CI_DOCKER_STATE/registry"
    if _cdk_pid_alive "$dir.pid" && _cdk_registry_up; then
        _cdk_log "registry already running on 127.0.0.1:$CLIPPER_CI_REGISTRY_PORT"
        return 0
    fi
    if _cdk_registry_up; then
        _cdk_log "port $CLIPPER_CI_REGISTRY_PORT answers as a registry not started here; using it"
        return 0
    fi
    mkdir -p "$dir/data"
    cat >"$dir/config.yml" <<CONF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${CLIPPER_CI_REGISTRY_PORT}
CONF
    local bin
    bin=$(command -v docker-registry || echo /usr/bin/docker-registry)
    setsid "$bin" serve "$dir/config.yml" >"$dir.log" 2>&1 </dev/null &
    echo $! >"$dir.pid"
    local i
    for i in $(seq 1 50); do
        if _cdk_registry_up; then
            _cdk_log "registry ready on 127.0.0.1:$CLIPPER_CI_REGISTRY_PORT"
            return 0
        fi
        sleep 0.2
    done
    _cdk_log "registry did not answer; log:"
    tail -n 20 "$dir.log" >&2
    return 1
}

# Export what the docker tests read.
clipper_ci_export_docker_env() {
    export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
    export CLIPPER_TEST_DOCKER=1
    export CLIPPER_TEST_BASE_IMAGE="$CLIPPER_CI_BASE_IMAGE"
    export CLIPPER_TEST_REDIS_IMAGE="$CLIPPER_CI_BASE_IMAGE"
    export CLIPPER_TEST_REGISTRY="127.0.0.1:${CLIPPER_CI_REGISTRY_PORT}"
    # The network re-signs TLS: image builds must trust the host's CA bundle.
    if [[ -z "${CLIPPER_BUILD_CA_BUNDLE:-}" && -s /etc/ssl/certs/ca-certificates.crt ]]; then
        export CLIPPER_BUILD_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
    fi
}

clipper_ci_docker_up() {
    clipper_ci_start_dockerd &&
        clipper_ci_build_base_image &&
        clipper_ci_start_registry &&
        clipper_ci_export_docker_env
}

_cdk_stop_pidfile() {  # $1 = pid file, $2 = name
    if _cdk_pid_alive "$1"; then
        local pid
        pid=$(cat "$1")
        _cdk_log "stopping $2 (pid $pid)"
        kill "$pid" 2>/dev/null
        local i
        for i in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$1"
}

# Stop the registry and dockerd if (and only if) this library started them.
# Containers of clusters tests left behind are removed first.
clipper_ci_docker_down() {
    _cdk_stop_pidfile "$CLIPPER_CI_DOCKER_STATE/registry.pid" registry
    if _cdk_pid_alive "$CLIPPER_CI_DOCKER_STATE/dockerd.pid"; then
        local ids
        ids=$(docker ps -aq --filter label=clipper.cluster 2>/dev/null)
        [[ -n "$ids" ]] && docker rm -fv $ids >/dev/null 2>&1
        _cdk_stop_pidfile "$CLIPPER_CI_DOCKER_STATE/dockerd.pid" dockerd
    fi
}
