# Shared by scripts/quickstart.sh and scripts/test.sh (sourced, not run).
#
#   as_root CMD...     run CMD as root: directly when we are root, else through
#                      sudo (used for apt only; everything else runs as the caller)
#   apt_install PKG... install Debian packages (apt-get update first, once)
#   use_venv           create the project's virtual environment .venv if missing
#                      (installing Debian's python3-venv when the interpreter
#                      lacks it) and put it first on PATH: python3 and pip are
#                      the venv's from then on
#
# CLIPPER_VENV (default .venv) names the environment; CLIPPER_VENV_SYSTEM_SITE=1
# lets it see the system's packages (the test script sets it, so heavy
# frameworks installed once system-wide are not installed again).

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo env DEBIAN_FRONTEND=noninteractive "$@"
    else
        echo "error: '$*' needs root: run this script as root or install sudo" >&2
        return 1
    fi
}

_clipper_apt_updated=""
apt_install() {
    if [[ -z "$_clipper_apt_updated" ]]; then
        as_root apt-get update -qq
        _clipper_apt_updated=1
    fi
    as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

use_venv() {
    local venv="${CLIPPER_VENV:-.venv}" args=()
    [[ "${CLIPPER_VENV_SYSTEM_SITE:-0}" == 1 ]] && args+=(--system-site-packages)
    if [[ ! -x "$venv/bin/python3" ]]; then
        if ! python3 -m venv "${args[@]}" "$venv" 2>/dev/null; then
            # Debian's python3 ships venv and ensurepip in python3-venv.
            rm -rf "$venv"
            apt_install python3-venv
            python3 -m venv "${args[@]}" "$venv"
        fi
    fi
    export VIRTUAL_ENV="$PWD/$venv" PATH="$PWD/$venv/bin:$PATH"
    hash -r
}
