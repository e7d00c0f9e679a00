#!/usr/bin/env bash
# README's second command (and CI's, through .ci/run): install what is missing, build, and run the
# whole test suite under CTest twice: the normal build (build/), then the same suite built with
# ASan+UBSan (build-sanitize/, CMAKE_BUILD_TYPE=Sanitize; docs/SANITIZERS.md). Exits non-zero if
# either run fails. The last line counts both runs: "N passed, N failed".
#   MS_SKIP_SANITIZE=1 bash scripts/test.sh   only the normal build's suite
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# The suite's generated checkpoints stay in build/models (shared with the Sanitize suite); the
# GGUF and quantize tests remove their work files when they pass. After a whole run from a fresh
# clone build*/ held 4.5 GB (2026-12-08; 24 GB before, which filled CI's disk), so ask for 10.
free_gb=$(df -Pk . | awk 'NR == 2 { print int($4 / 1048576) }')
if [ "${free_gb:-0}" -lt 10 ]; then
  echo "test.sh: warning: only ${free_gb} GB free here; the suite writes several GB of generated models"
fi
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
JOBS=2

passed=0
failed=0
status=0
# run_suite NAME BUILD_DIR: runs ctest there, adds its counts to passed/failed
run_suite() {
  local name=$1 dir=$2 log rc=0
  log=$(mktemp)
  ctest --test-dir "$dir" --output-on-failure -j"$JOBS" --timeout 900 2>&1 | tee "$log" || rc=$?
  # "97% tests passed, 2 tests failed out of 74" (skipped tests count as passed, as in CTest's line)
  local line total nfail
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1 || true)
  rm -f "$log"
  if [ -n "$line" ]; then
    nfail=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")
    total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
  else
    nfail=1 total=1 # ctest itself failed before summarising
  fi
  [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ] && nfail=1 total=$((total + 1)) # a failure ctest did not count
  passed=$((passed + total - nfail))
  failed=$((failed + nfail))
  [ "$rc" -ne 0 ] && status=1
  echo "test.sh: $name suite: $((total - nfail)) passed, $nfail failed"
}

run_suite normal build

if [ "${MS_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "test.sh: building the Sanitize (ASan+UBSan) configuration in build-sanitize/"
  if cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Sanitize -DMS_MODELS="$PWD/build/models" >/dev/null &&
     cmake --build build-sanitize -j"$(nproc)"; then
    run_suite "ASan+UBSan" build-sanitize
  else
    echo "test.sh: the Sanitize build failed"
    failed=$((failed + 1))
    status=1
  fi
fi

echo "$passed passed, $failed failed"
exit $status
