#!/usr/bin/env bash
# Installs the Debian packages sdgen needs to build and test. Idempotent: installs only what is
# missing, and runs apt-get update only when something is.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev                       # libtorch 1.13 (CPU)
  libopenblas0-openmp                # libtorch's BLAS: ~10x faster matmul than the reference
  libsentencepiece-dev               # tokenizer for sdgen's own default model
  libcli11-dev nlohmann-json3-dev libstb-dev
  libgtest-dev libgmock-dev googletest
  python3 python3-numpy python3-pil  # the conformance runner
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
echo "setup: all packages present" >&2
