#!/usr/bin/env bash
# Install clipper-core with the embedded default manager, start a cluster,
# deploy a model, query it, and stop the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q -e . -e plugins/local_process
exec python3 examples/quickstart.py "$@"
