#!/usr/bin/env bash
# Builds the GPU programs on this (GPU-less) machine and packs them for a GPU machine that lacks our build
# dependencies (Catch2, OpenBLAS, stb): device time is scarce, so nothing is compiled there.
#
#   tools/gpu_pack.sh [DATA_DIR]
#
# Writes .gpu/pack.tar.xz (test_cuda, test_ops, test_cuda_sync, test_cuda_graph, bench_block, bench_train,
# train_catsdogs, test_nccl_group and the shared libraries they need that a CUDA image does not have),
# .gpu/data/smoke (120 + 40 synthetic images, 1 MB: gpu_check.sh's default phase trains on them) and, with
# DATA_DIR, copies that dataset to .gpu/data/<name> (the long train phase). On the GPU machine:
# `PREBUILT=.gpu tools/gpu_check.sh` unpacks and runs it (`tools/gpu_check.sh --plan` lists the steps). Add `/.gpu/` to .git/info/exclude and name
# `.gpu` in the device tool's carry list.
#
# The build is portable: x86-64-v3 (AVX2) rather than -march=native, sm_90 machine code, and no oneDNN
# (40 MB; the CPU reference convolutions use im2col + OpenBLAS instead).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build-gpu}
ARCHS=${CUDA_ARCHS:-90-real}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRESNET_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$ARCHS" \
  -DRESNET_NATIVE=OFF -DRESNET_WITH_DNNL=OFF -DCMAKE_CXX_FLAGS="-march=x86-64-v3" >/dev/null
programs=(tests/cuda/test_cuda tests/test_ops tests/cuda/test_cuda_sync tests/test_cuda_graph benchmarks/bench_block
  benchmarks/bench_train examples/train_catsdogs)
targets=(test_cuda test_ops test_cuda_sync test_cuda_graph bench_block bench_train train_catsdogs smoke_make_images)
# The NCCL group's test, a world of one on the GPU machine, when MPI is here (resnet::dist).
if grep -q '^RESNET_DIST:BOOL=ON' "$BUILD/CMakeCache.txt"; then
  programs+=(tests/dist/test_nccl_group)
  targets+=(test_nccl_group)
fi
cmake --build "$BUILD" -j "$(nproc)" --target "${targets[@]}"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
for p in "${programs[@]}"; do cp "$BUILD/$p" "$stage/bin/"; done
# Libraries outside the CUDA stack and glibc/libstdc++ (which the GPU image has in newer versions): copied by
# the name the programs ask for. gpu_check.sh puts lib/ on LD_LIBRARY_PATH only for what is missing there.
for p in "${programs[@]}"; do ldd "$BUILD/$p"; done | awk '$2 == "=>" {print $1, $3}' | sort -u |
  while read -r name path; do
    case $name in
      libopenblas* | libgfortran* | libquadmath* | libstb* | libgomp* | libz.* | libmpi* | libopen-pal* | libopen-rte* | \
        libhwloc* | libevent* | libudev*) cp -L "$path" "$stage/lib/$name" ;;
    esac
  done
# OpenMPI's plugins and help files, in Debian's layout under a prefix that gpu_check.sh names in OPAL_PREFIX
# (OpenMPI relocates its install to it), for MPI's singleton start-up on a machine without OpenMPI.
if [ -d /usr/lib/x86_64-linux-gnu/openmpi ] && [[ " ${targets[*]} " == *" test_nccl_group "* ]]; then
  mkdir -p "$stage/ompi/lib/x86_64-linux-gnu" "$stage/ompi/share"
  cp -r /usr/lib/x86_64-linux-gnu/openmpi "$stage/ompi/lib/x86_64-linux-gnu/"
  [ -d /usr/share/openmpi ] && cp -r /usr/share/openmpi "$stage/ompi/share/"
fi
git rev-parse --short HEAD >"$stage/commit"
git diff --quiet || echo "(with local changes)" >>"$stage/commit"
mkdir -p .gpu
tar -C "$stage" -cJf .gpu/pack.tar.xz .
echo "packed: $(du -h .gpu/pack.tar.xz | cut -f1) .gpu/pack.tar.xz ($(ls "$stage/bin" | tr '\n' ' '); libs: $(ls "$stage/lib" | tr '\n' ' '))"

# The default phase's small image folder, made here (the GPU machine lacks stb).
rm -rf .gpu/data/smoke
mkdir -p .gpu/data
"$BUILD/tests/smoke_make_images" .gpu/data/smoke 60 20 >/dev/null
echo "data: $(du -sh .gpu/data/smoke | cut -f1) .gpu/data/smoke ($(find .gpu/data/smoke -type f | wc -l) images)"

if [ $# -ge 1 ]; then
  mkdir -p .gpu/data
  rm -rf ".gpu/data/$(basename "$1")"
  cp -r "$1" ".gpu/data/$(basename "$1")"
  echo "data: $(du -sh ".gpu/data/$(basename "$1")" | cut -f1) .gpu/data/$(basename "$1")"
fi
du -sh .gpu
