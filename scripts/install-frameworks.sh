#!/usr/bin/env bash
# Install the ML frameworks the framework deployers and their tests use
# (pytest marker `frameworks`), CPU builds only:
#   scripts/install-frameworks.sh
# PyTorch is pinned to its CPU wheel: an unpinned `torch` pulls several GB of
# CUDA libraries.  XGBoost is the `xgboost-cpu` build for the same reason.
# The versions are the `frameworks` extra of pyproject.toml; keep both in step.
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

PACKAGES=(
    "torch==2.13.0"
    "onnx==1.23.1"
    "onnxscript==0.7.2"
    "onnxruntime==1.30.0"
    "keras==3.15.1"
    "tensorflow-cpu==2.21.0"
    "pyspark==4.3.0"
    "xgboost-cpu==3.2.0"
    "scikit-learn"
)

if ! command -v java >/dev/null; then
    echo "install-frameworks: PySpark needs a Java runtime (17 or newer); installing one" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        default-jre-headless >/dev/null
fi

start=$(date +%s)
python3 -m pip install -q --progress-bar off "${PACKAGES[@]}"
echo "install-frameworks: ${PACKAGES[*]} installed in $(( $(date +%s) - start )) s"
