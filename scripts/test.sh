#!/usr/bin/env bash
# README's second command: install what is missing, build, and run the whole test suite under
# CTest. Ends with CTest's summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
ctest --test-dir build --output-on-failure -j2 --timeout 900
