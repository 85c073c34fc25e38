#!/usr/bin/env bash
# What the library costs to compile, on the machine this runs on: a user's file (examples/quickstart.cpp)
# built against the *installed* package in each mode the package offers (its compile time and the
# compiler's peak memory, at -O3 and -O0), the preprocessed size of <resnet/resnet.hpp>, and, unless
# --user-only, the full build of the tree from scratch and the test suite's wall time (tools/test.sh's
# commands in a fresh build folder). Prints one table in Markdown, for benchmarks/RESULTS.md.
#
#   tools/build_cost.sh [--user-only] [--jobs N] [--ctest-jobs N]
#
# Each user-file compile runs 3 times and reports the fastest (a busy machine only slows a compile down);
# the full build and the suite run once. Needs GNU time (/usr/bin/time, Debian's `time` package).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
USER_ONLY=0
JOBS=$(nproc)
CTEST_JOBS=${CTEST_JOBS:-$(nproc)}
while [ $# -gt 0 ]; do
  case $1 in
    --user-only) USER_ONLY=1 ;;
    --jobs) JOBS=$2; shift ;;
    --ctest-jobs) CTEST_JOBS=$2; shift ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_cost.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -x /usr/bin/time ] || { echo "build_cost.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 2; }
CXX=${CXX:-g++}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The installed package: a CPU-only configure is enough, the headers and CMake files are the same.
cmake -S . -B "$work/pkg-build" -DCMAKE_BUILD_TYPE=Release -DRESNET_BUILD_TESTS=OFF -DRESNET_BUILD_EXAMPLES=OFF \
  -DRESNET_BUILD_BENCHMARKS=OFF -DRESNET_CUDA=OFF >"$work/pkg.log" 2>&1 || { cat "$work/pkg.log"; exit 1; }
cmake --build "$work/pkg-build" -j "$JOBS" >>"$work/pkg.log" 2>&1 || { cat "$work/pkg.log"; exit 1; }
cmake --install "$work/pkg-build" --prefix "$work/prefix" >>"$work/pkg.log" 2>&1 || { cat "$work/pkg.log"; exit 1; }

# An outside project with quickstart.cpp, one target per mode the package offers: resnet::resnet (what a
# plain find_package user links), the same with resnet.hpp precompiled (CMake's target_precompile_headers)
# and, where the package has it, resnet::header_only.
mkdir -p "$work/user"
cp examples/quickstart.cpp "$work/user/quickstart.cpp"
cat >"$work/user/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(build_cost_user CXX)
find_package(resnet REQUIRED)
add_executable(quickstart_default quickstart.cpp)
target_link_libraries(quickstart_default PRIVATE resnet::resnet)
# A project of many files parses resnet.hpp once: the compiled mode plus a precompiled header.
add_executable(quickstart_precompiled quickstart.cpp)
target_link_libraries(quickstart_precompiled PRIVATE resnet::resnet)
target_precompile_headers(quickstart_precompiled PRIVATE <resnet/resnet.hpp>)
if(TARGET resnet::header_only)
  add_executable(quickstart_header_only quickstart.cpp)
  target_link_libraries(quickstart_header_only PRIVATE resnet::header_only)
endif()
EOF
# The compiler launcher records seconds and peak kB of each compile (not the link).
cat >"$work/measure.sh" <<EOF
#!/bin/sh
case " \$* " in *" -c "*) exec /usr/bin/time -a -o "$work/times.txt" -f "%e %M" "\$@" ;; esac
exec "\$@"
EOF
chmod +x "$work/measure.sh"

row() { printf '| %s | %s |\n' "$1" "$2"; }
echo "build_cost: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores, $($CXX --version | head -n 1), $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)"
echo
echo "| what | cost |"
echo "|---|---|"
for opt in -O3 -O0; do
  cmake -S "$work/user" -B "$work/user-build$opt" -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="$opt" \
    -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_CXX_COMPILER_LAUNCHER="$work/measure.sh" >"$work/user.log" 2>&1 ||
    { cat "$work/user.log"; exit 1; }
  targets=$(cmake --build "$work/user-build$opt" --target help | sed -n 's/^\.\.\. \(quickstart_[a-z_]*\)$/\1/p')
  for t in $targets; do
    best_s="" best_kb=""
    for _ in 1 2 3; do
      : >"$work/times.txt"
      touch "$work/user/quickstart.cpp"
      cmake --build "$work/user-build$opt" --target "$t" >"$work/user.log" 2>&1 || { cat "$work/user.log"; exit 1; }
      read -r s kb < <(tail -n 1 "$work/times.txt")  # the unit itself (a first build also makes the header)
      if [ -z "$best_s" ] || awk "BEGIN{exit !($s < $best_s)}"; then best_s=$s best_kb=$kb; fi
    done
    row "quickstart.cpp, ${t#quickstart_} mode, $opt: compile (best of 3), peak memory" \
      "${best_s} s, $((best_kb / 1024)) MB"
  done
done
# The preprocessed include in each mode (the compiled mode's macro hides the implementation's headers).
for mode in header-only compiled; do
  define=""
  [ "$mode" = compiled ] && define="-DRESNET_SEPARATE_COMPILATION=1"
  pp=$(echo '#include <resnet/resnet.hpp>' | $CXX -std=c++17 $define -E -x c++ - -I"$work/prefix/include" \
    $(pkg-config --cflags dnnl 2>/dev/null || true) 2>/dev/null | wc -lc)
  row "<resnet/resnet.hpp> preprocessed, $mode (lines, bytes)" "$(echo $pp | awk '{print $1 " lines, " $2 " bytes"}')"
done

if [ "$USER_ONLY" = 0 ]; then
  t0=$(date +%s.%N)
  # The CUDA library as tools/test.sh decides it: where a GPU answers, or when RESNET_CUDA=ON.
  cuda=${RESNET_CUDA:-$(nvidia-smi -L >/dev/null 2>&1 && echo "where nvcc is" || echo OFF)}
  cuda_arg=()
  if [ "$cuda" = ON ] || [ "$cuda" = OFF ]; then cuda_arg=(-DRESNET_CUDA="$cuda"); fi
  cmake -S . -B "$work/full" -DCMAKE_BUILD_TYPE=Release "${cuda_arg[@]}" >"$work/full.log" 2>&1
  cmake --build "$work/full" -j "$JOBS" >>"$work/full.log" 2>&1 || { tail -n 40 "$work/full.log"; exit 1; }
  t1=$(date +%s.%N)
  objects=$(find "$work/full" -name '*.o' | wc -l)
  row "full build from scratch (tools/test.sh's build, -j $JOBS, CUDA library $cuda)" "$(awk "BEGIN{printf \"%.0f\", $t1 - $t0}") s, $objects objects"
  ctest --test-dir "$work/full" -j "$CTEST_JOBS" >"$work/ctest.log" 2>&1 || true
  t2=$(date +%s.%N)
  row "test suite (ctest -j $CTEST_JOBS)" "$(awk "BEGIN{printf \"%.0f\", $t2 - $t1}") s, $(grep -E 'tests passed|tests failed' "$work/ctest.log" | tail -n 1)"
  quick_t0=$(date +%s.%N)
  ctest --test-dir "$work/full" -L quick -j "$CTEST_JOBS" >"$work/quick.log" 2>&1 || true
  quick_t1=$(date +%s.%N)
  row "quick tier (ctest -L quick -j $CTEST_JOBS)" "$(awk "BEGIN{printf \"%.0f\", $quick_t1 - $quick_t0}") s, $(grep -E 'tests passed|tests failed' "$work/quick.log" | tail -n 1)"
fi
