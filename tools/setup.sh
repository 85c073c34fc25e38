#!/usr/bin/env bash
# Installs the Debian packages resnet needs to build and test (idempotent; uses sudo when not root).
set -euo pipefail
packages=(build-essential cmake pkg-config catch2 libstb-dev libopenblas-dev libopenblas-openmp-dev libdnnl-dev libcli11-dev ccache python3-torch python3-torchvision clang-14 clang-format-14 libclang-rt-14-dev zlib1g-dev libonnx-dev libprotobuf-dev python3-onnx python3-opencv libopenmpi-dev openmpi-bin iproute2 slurmctld slurmd slurm-client munge)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all packages present"
