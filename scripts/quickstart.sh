#!/usr/bin/env bash
# Install clipper-core with the embedded default manager into the project's
# virtual environment (.venv), start a cluster, deploy a model, query it, and
# stop the cluster.  Runs as root or as a user: sudo is used only when apt
# must install python3-venv and we are not root.
#   scripts/quickstart.sh
# Afterwards `. .venv/bin/activate` puts the `clipper` command on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
# shellcheck source=lib/env.sh
source scripts/lib/env.sh

use_venv
python3 -m pip install -q -e . -e plugins/local_process
python3 examples/quickstart.py "$@"
echo
echo "Installed into $VIRTUAL_ENV; '. .venv/bin/activate' puts 'clipper' on PATH."
