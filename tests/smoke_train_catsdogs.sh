#!/usr/bin/env bash
# smoke_train_catsdogs.sh TRAIN_CATSDOGS SMOKE_MAKE_IMAGES SOURCE_DIR
#
# A tiny end-to-end run of train_catsdogs (ResNet-18 at 32x32 on 120 training and 40 test images, 2 epochs)
# that checks what a user relies on: the seed's log formats, the checkpoint names, last.safetensors,
# metrics.csv, the plot, eval, predict, an unreadable file being skipped, reproducibility with --seed,
# --resume matching an uninterrupted run (after --stop-after-epoch and after Ctrl-C mid-epoch), the NaN stop,
# and clear error exits. Uses the first images of the real dataset when it sits beside the checkout
# (../shared/data/catsdogs-128), else a synthetic two-class set.
set -euo pipefail
abspath() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
BIN=$(abspath "$1")
MAKE_IMAGES=$(abspath "$2")
SRC=$3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/smoke_catsdogs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
ok() { echo "ok: $*"; }
# Lines in the seed's formats, in order: the per-20-batch losses and the per-epoch summaries.
log_lines() { grep -E '^(\[epoch [0-9]+, batch [0-9]+\] loss: |epoch [0-9]+ av_)' "$@" || true; }
expect_rc() {  # expect_rc WANT LOGFILE -- command...
  local want=$1 log=$2
  shift 3
  local rc=0
  "$@" >"$log" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || { cat "$log" >&2; fail "'$*' exited $rc, expected $want"; }
}
expect_in() { grep -qE -- "$2" "$1" || { cat "$1" >&2; fail "$1 lacks /$2/"; }; }

# ---- data: 60 + 60 training and 20 + 20 test images, and one corrupt file ----
DATA=$WORK/data
REAL=""
for d in "$SRC/../shared/data/catsdogs-128" "$SRC/../shared/data/catsdogs"; do
  if [ -d "$d/train/cat" ] && [ -d "$d/test/dog" ]; then
    REAL=$d
    break
  fi
done
if [ -n "$REAL" ]; then
  for split in train test; do
    n=60
    [ $split = test ] && n=20
    for cls in cat dog; do
      mkdir -p "$DATA/$split/$cls"
      for f in $(ls "$REAL/$split/$cls" | LC_ALL=C sort | head -n $n); do ln -s "$REAL/$split/$cls/$f" "$DATA/$split/$cls/$f"; done
    done
  done
  echo "smoke: the first images of $REAL"
else
  "$MAKE_IMAGES" "$DATA" 60 20
  echo "smoke: no dataset beside the checkout; synthetic images"
fi
printf 'this is not a JPEG at all' >"$DATA/train/cat/zzz_corrupt.jpg"

COMMON=(--data "$DATA" --arch resnet18 --size 32 --batch 8 --epochs 2 --seed 7 --threads 2 --workers 1 --log-every 5)

# ---- a full run: formats, files, skipped file ----
"$BIN" train "${COMMON[@]}" --out "$WORK/A" >"$WORK/A.log" 2>"$WORK/A.err" || { cat "$WORK/A.err" >&2; fail "run A exited $?"; }
cat "$WORK/A.log"
for e in 1 2; do
  for b in 5 10 15; do expect_in "$WORK/A.log" "^\[epoch $e, batch $b\] loss: [0-9]+\.[0-9]{3}$"; done
  expect_in "$WORK/A.log" "^epoch $e av_train_loss: [0-9]+\.[0-9]{3} lr: [0-9]+\.[0-9]{5}$"
  expect_in "$WORK/A.log" "^epoch $e av_test_acc: [01]\.[0-9]{3}$"
done
ok "log lines in the seed's formats"
[ "$(grep -c 'zzz_corrupt.jpg' "$WORK/A.err")" = 1 ] || fail "the corrupt file should be named in exactly one warning"
expect_in "$WORK/A.err" "1 unreadable image files were skipped"
ok "corrupt file skipped with one warning and a count"

[ -s "$WORK/A/last.safetensors" ] || fail "no last.safetensors"
best=$(ls "$WORK/A" | grep -E '^epoch[0-9]+\+loss[0-9]+\.[0-9]{3}\+acc[01]\.[0-9]{3}\+lr[0-9]+\.[0-9]{5}\.safetensors$' | sort -V | tail -n 1)
[ -n "$best" ] || fail "no epoch<E>+loss<L>+acc<A>+lr<R>.safetensors checkpoint in $(ls "$WORK/A")"
# The first checkpoint is epoch 1's, named by its logged loss, accuracy and lr.
l1=$(sed -n 's/^epoch 1 av_train_loss: \([0-9.]*\) lr: \([0-9.]*\)$/\1+acc/p' "$WORK/A.log")
a1=$(sed -n 's/^epoch 1 av_test_acc: \([0-9.]*\)$/\1/p' "$WORK/A.log")
r1=$(sed -n 's/^epoch 1 av_train_loss: [0-9.]* lr: \([0-9.]*\)$/\1/p' "$WORK/A.log")
[ -f "$WORK/A/epoch1+loss${l1}${a1}+lr${r1}.safetensors" ] || fail "expected epoch1+loss${l1}${a1}+lr${r1}.safetensors"
ok "checkpoints: $best, last.safetensors"

[ "$(head -n 1 "$WORK/A/metrics.csv")" = "epoch,train_loss,test_loss,test_acc,lr,seconds" ] || fail "metrics.csv header"
[ "$(wc -l <"$WORK/A/metrics.csv")" = 3 ] || fail "metrics.csv should have 2 rows"
grep -qE '^2,[0-9.]+,[0-9.]+,[01]\.[0-9]{6},[0-9.e+-]+,[0-9.]+$' "$WORK/A/metrics.csv" || fail "metrics.csv row format"
[ "$(awk -F, 'NR==2 {printf "%.3f", $4}' "$WORK/A/metrics.csv")" = "$a1" ] || fail "metrics.csv accuracy differs from the log"
ok "metrics.csv"
head -c 5 "$WORK/A/curves.svg" | grep -q '<svg' || fail "curves.svg is not an SVG"
[ "$(grep -c '<polyline' "$WORK/A/curves.svg")" = 3 ] || fail "curves.svg should draw 3 curves"
tail -n 1 "$WORK/A/curves.svg" | grep -q '</svg>' || fail "curves.svg is truncated"
ok "curves.svg"

# ---- reproducibility: the same command gives the same losses ----
"$BIN" train "${COMMON[@]}" --out "$WORK/A2" >"$WORK/A2.log" 2>/dev/null || fail "run A2 exited $?"
[ "$(log_lines "$WORK/A.log")" = "$(log_lines "$WORK/A2.log")" ] || {
  diff <(log_lines "$WORK/A.log") <(log_lines "$WORK/A2.log") >&2
  fail "two runs with --seed 7 differ"
}
ok "a second run with the same seed repeats every loss and accuracy"

# ---- resume after --stop-after-epoch: identical to the uninterrupted run ----
"$BIN" train "${COMMON[@]}" --out "$WORK/B" --stop-after-epoch 1 >"$WORK/B1.log" 2>/dev/null || fail "run B1 exited $?"
"$BIN" train --resume "$WORK/B/last.safetensors" --data "$DATA" --threads 2 >"$WORK/B2.log" 2>/dev/null ||
  fail "resumed run B2 exited $?"
[ "$(log_lines "$WORK/A.log")" = "$(cat "$WORK/B1.log" "$WORK/B2.log" | log_lines)" ] || {
  diff <(log_lines "$WORK/A.log") <(cat "$WORK/B1.log" "$WORK/B2.log" | log_lines) >&2
  fail "stop + resume differs from the uninterrupted run"
}
[ "$(cut -d, -f1-5 "$WORK/A/metrics.csv")" = "$(cut -d, -f1-5 "$WORK/B/metrics.csv")" ] || fail "resumed metrics.csv differs"
ok "--resume after --stop-after-epoch matches the uninterrupted run"
expect_rc 2 "$WORK/conflict.err" -- "$BIN" train --resume "$WORK/B/last.safetensors" --data "$DATA" --batch 16
expect_in "$WORK/conflict.err" "--batch 16 differs from the resumed run's 8"
ok "a flag that contradicts the resumed recipe is refused"

# ---- Ctrl-C mid-epoch: finishes the step, writes last, exits 130; resuming matches the uninterrupted run ----
"$BIN" train "${COMMON[@]}" --out "$WORK/C" >"$WORK/C1.log" 2>"$WORK/C1.err" &
pid=$!
for _ in $(seq 1 1200); do
  grep -q '^\[epoch 1, batch 5\]' "$WORK/C1.log" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
kill -INT $pid
rc=0
wait $pid || rc=$?
[ "$rc" = 130 ] || { cat "$WORK/C1.err" >&2; fail "interrupted run exited $rc, expected 130"; }
expect_in "$WORK/C1.err" "interrupted at step"
[ -s "$WORK/C/last.safetensors" ] || fail "no last.safetensors after Ctrl-C"
"$BIN" train --resume "$WORK/C/last.safetensors" --data "$DATA" --threads 2 >"$WORK/C2.log" 2>/dev/null ||
  fail "resume after Ctrl-C exited $?"
[ "$(log_lines "$WORK/A.log")" = "$(cat "$WORK/C1.log" "$WORK/C2.log" | log_lines)" ] || {
  diff <(log_lines "$WORK/A.log") <(cat "$WORK/C1.log" "$WORK/C2.log" | log_lines) >&2
  fail "Ctrl-C + resume differs from the uninterrupted run"
}
ok "Ctrl-C writes last and exits 130; resuming mid-epoch matches the uninterrupted run"

# ---- NaN: stops with a message, keeps the last good checkpoint ----
expect_rc 3 "$WORK/nan1.err" -- "$BIN" train "${COMMON[@]}" --epochs 1 --lr 1e30 --out "$WORK/N1"
expect_in "$WORK/nan1.err" "the loss is (NaN|infinite) at epoch 1"
expect_in "$WORK/nan1.err" "no checkpoint was written yet"
# A NaN in a later epoch (the last good checkpoint kept, its message, metrics.csv and the evaluation of
# last) needs a loss made NaN at a chosen step, which only a test can install: test_trainer_parts.
ok "a NaN loss stops the run (exit 3) before any checkpoint"

# ---- eval and predict ----
a2=$(sed -n 's/^epoch 2 av_test_acc: \([0-9.]*\)$/\1/p' "$WORK/A.log")
expect_rc 0 "$WORK/eval.log" -- "$BIN" eval --weights "$WORK/A/last.safetensors" --data "$DATA" --threads 2
expect_in "$WORK/eval.log" "^test images: 40 av_test_loss: [0-9]+\.[0-9]{3} av_test_acc: $a2\$"
expect_rc 0 "$WORK/eval10.log" -- "$BIN" eval --weights "$WORK/A/last.safetensors" --data "$DATA" --limit 10 --threads 2
expect_in "$WORK/eval10.log" "^test images: 10 "
ok "eval reproduces the run's test accuracy"
cat_img=$DATA/test/cat/$(ls "$DATA/test/cat" | LC_ALL=C sort | head -n 1)
dog_img=$DATA/test/dog/$(ls "$DATA/test/dog" | LC_ALL=C sort | head -n 1)
expect_rc 0 "$WORK/predict.log" -- "$BIN" predict --weights "$WORK/A/$best" --threads 2 "$cat_img" "$dog_img"
[ "$(grep -cE '^this picture might be: (cat|dog) , score: (0\.[5-9][0-9]{0,2}|1\.0)$' "$WORK/predict.log")" = 2 ] || {
  cat "$WORK/predict.log" >&2
  fail "predict should print two lines in the seed's format"
}
cat "$WORK/predict.log"
if [ "$(sed -n 's/^best av_test_acc: \([0-9.]*\) .*/\1/p' "$WORK/A.log")" = 1.000 ]; then  # a perfect model must be right
  [ "$(cut -d' ' -f5 "$WORK/predict.log" | tr '\n' ' ')" = "cat dog " ] || fail "a model with test accuracy 1.000 mislabels"
fi
expect_rc 1 "$WORK/predict_missing.err" -- "$BIN" predict --weights "$WORK/A/$best" "$WORK/no_such.jpg"
expect_in "$WORK/predict_missing.err" "no_such.jpg' does not exist"
ok "predict"
# A folder, a missing file and an empty folder: each problem named and skipped, the rest classified, a CSV.
mkdir -p "$WORK/no_images"
expect_rc 0 "$WORK/predict_dir.log" -- "$BIN" predict --weights "$WORK/A/$best" --threads 2 --top 2 --csv "$WORK/p.csv" \
  "$DATA/test/cat" "$WORK/no_such.jpg" "$WORK/no_images"
expect_in "$WORK/predict_dir.log" "no_such.jpg' does not exist; skipped"
expect_in "$WORK/predict_dir.log" "folder '.*no_images' has no .jpg, .jpeg or .png images"
expect_in "$WORK/predict_dir.log" "classified 20 of 22 images; 2 skipped"
[ "$(head -n 1 "$WORK/p.csv")" = "path,class,score,top_k,error" ] || fail "predict --csv header"
[ "$(grep -cE '^[^,]+/cat/[^,]+,(cat|dog),[01]\.[0-9]{6},(cat|dog):[0-9.]+ (cat|dog):[0-9.]+,$' "$WORK/p.csv")" = 20 ] ||
  { cat "$WORK/p.csv" >&2; fail "predict --csv should hold 20 classified rows with the top 2"; }
expect_in "$WORK/p.csv" "no_such.jpg,,,,image .* does not exist"
expect_rc 1 "$WORK/predict_none.err" -- "$BIN" predict --weights "$WORK/A/$best" "$WORK/no_images"
ok "predict: a folder, a missing file and an empty folder; --csv; exit 1 only when nothing was classified"

# ---- fine-tuning: --init (non-strict, a 1000-class torchvision head re-initialised), --freeze ----
INIT=$WORK/A/last.safetensors
if /usr/bin/python3 "$SRC/tools/torchvision_to_safetensors.py" --random resnet18 "$WORK/tv.pth" >/dev/null 2>&1; then
  /usr/bin/python3 "$SRC/tools/torchvision_to_safetensors.py" "$WORK/tv.pth" "$WORK/tv.safetensors" --arch resnet18 >/dev/null
  rm -f "$WORK/tv.pth"
  INIT=$WORK/tv.safetensors
fi
expect_rc 0 "$WORK/F.log" -- "$BIN" train "${COMMON[@]}" --epochs 1 --init "$INIT" --freeze backbone --out "$WORK/F"
if [ "$INIT" = "$WORK/tv.safetensors" ]; then
  expect_in "$WORK/F.log" "^--init: loaded 120 tensors from .*tv.safetensors', skipped 2, left 2 as initialised"
  expect_in "$WORK/F.log" "skipped fc.weight: shape \[1000, 512\], the model's is \[2, 512\]"
  ok "--init from converted torchvision weights: the 1000-class head is re-initialised"
else
  expect_in "$WORK/F.log" "^--init: loaded 122 tensors"
  echo "smoke: no torch here; --init from our own checkpoint only"
fi
expect_in "$WORK/F.log" "optimizer: skipping 60 frozen parameters"
expect_rc 2 "$WORK/freeze_bad.err" -- "$BIN" train "${COMMON[@]}" --freeze layer9
expect_in "$WORK/freeze_bad.err" "--freeze: 'layer9' is not none, backbone"
ok "--freeze backbone trains only fc"

# ---- a finished run made longer: --resume with a larger --epochs ----
cp -r "$WORK/A" "$WORK/L"
expect_rc 0 "$WORK/L.log" -- "$BIN" train --resume "$WORK/L/last.safetensors" --data "$DATA" --threads 2 --epochs 3
expect_in "$WORK/L.log" "--epochs 3 extends the run of 2 epochs: .* stretched over [0-9]+ from step"
expect_in "$WORK/L.log" "^epoch 3 av_test_acc: [01]\.[0-9]{3}$"
[ "$(wc -l <"$WORK/L/metrics.csv")" = 4 ] || fail "the longer run's metrics.csv should hold 3 epochs"
expect_rc 2 "$WORK/shorter.err" -- "$BIN" train --resume "$WORK/L/last.safetensors" --data "$DATA" --epochs 1
expect_in "$WORK/shorter.err" "--epochs 1 differs from the resumed run's 3"
ok "--resume raises --epochs of a finished run"

# ---- clear errors ----
expect_rc 2 "$WORK/e1.err" -- "$BIN" train --bogus 1
expect_in "$WORK/e1.err" "unknown flag '--bogus'"
expect_rc 2 "$WORK/e2.err" -- "$BIN" train --data "$DATA" --batch 0
expect_in "$WORK/e2.err" "--batch: expected an integer"
expect_rc 2 "$WORK/e3.err" -- "$BIN" train --data "$DATA" --arch resnet19
expect_in "$WORK/e3.err" "--arch: expected resnet18"
expect_rc 1 "$WORK/e4.err" -- "$BIN" train --data "$WORK/missing_dir"
expect_in "$WORK/e4.err" "missing_dir' does not exist"
mkdir -p "$WORK/nowhere/sub" "$WORK/empty/train/cat" "$WORK/empty/train/dog" "$WORK/empty/test/cat"
expect_rc 1 "$WORK/e5.err" -- bash -c "cd '$WORK/nowhere/sub' && env -u RESNET_DATA '$BIN' train"
expect_in "$WORK/e5.err" "no dataset found.*\./data/catsdogs"
expect_in "$WORK/e5.err" "Kaggle Dogs vs. Cats"
expect_rc 1 "$WORK/e6.err" -- "$BIN" train --data "$WORK/empty"
expect_in "$WORK/e6.err" "holds no images"
mkdir -p "$WORK/one/train/cat" "$WORK/one/test/cat"
for f in $(ls "$DATA/train/cat" | grep -v corrupt | head -n 4); do cp "$DATA/train/cat/$f" "$WORK/one/train/cat/"; done
for f in $(ls "$DATA/test/cat" | head -n 2); do cp "$DATA/test/cat/$f" "$WORK/one/test/cat/"; done
expect_rc 1 "$WORK/e8.err" -- "$BIN" train --data "$WORK/one" --size 32 --batch 2 --epochs 1 --out "$WORK/O"
expect_in "$WORK/e8.err" "1 class (folder\(s\)|sub-folder).*; a classifier needs at least two"
expect_rc 1 "$WORK/e9.err" -- "$BIN" train "${COMMON[@]}" --epochs 1 --out /proc/self
expect_in "$WORK/e9.err" "cannot write in folder '/proc/self'"
expect_rc 2 "$WORK/e7.err" -- "$BIN" predict "$cat_img"
expect_in "$WORK/e7.err" "needs --weights"
expect_rc 0 "$WORK/help.log" -- "$BIN" train --help
# Join wrapped help lines, then every flag of the issue must be listed with its default.
awk '/^   / { sub(/^ +/, " "); printf "%s", $0; next } { printf "\n%s", $0 } END { print "" }' "$WORK/help.log" >"$WORK/help1.log"
for f in --data --arch --epochs --batch --lr --optimizer --schedule --size --device --threads --limit --out --resume --seed; do
  grep -qE -- "^  $f .*\(default: [^)]+\)$" "$WORK/help1.log" || fail "train --help does not document $f with its default"
done
ok "errors exit non-zero with clear messages; --help documents every flag"
# ---- bfloat16 activations and channels-last on the CPU: one epoch trains, resumes as float32 ----
# No --memory-format: bfloat16 on the CPU defaults to nhwc, float32 to nchw (the measured faster ones).
"$BIN" train "${COMMON[@]}" --epochs 1 --dtype bfloat16 --out "$WORK/H" >"$WORK/H.log" 2>"$WORK/H.err" ||
  { cat "$WORK/H.err" >&2; fail "bfloat16 nhwc run exited $?"; }
expect_in "$WORK/H.log" "parameters, bfloat16 nhwc\) on cpu"
expect_in "$WORK/H.log" "^epoch 1 av_"
[ -f "$WORK/H/last.safetensors" ] || fail "bfloat16 run wrote no last.safetensors"
"$BIN" train --resume "$WORK/H/last.safetensors" --data "$DATA" --epochs 2 --threads 2 >"$WORK/H2.log" 2>/dev/null ||
  fail "resuming the bfloat16 run in float32 exited $?"
expect_in "$WORK/H2.log" "parameters, float32 nchw\) on cpu"
expect_in "$WORK/H2.log" "^epoch 2 av_"
expect_rc 1 "$WORK/e11.err" -- env RESNET_CPU_CONV_BF16=fast "$BIN" train "${COMMON[@]}" --dtype bfloat16 --epochs 1 --out "$WORK/e11"
expect_in "$WORK/e11.err" "RESNET_CPU_CONV_BF16='fast': expected 'native'"
expect_rc 2 "$WORK/e10.err" -- "$BIN" train "${COMMON[@]}" --dtype float16
expect_in "$WORK/e10.err" "--dtype"
ok "bfloat16 + channels-last trains on the CPU; its checkpoint resumes in float32"

echo "smoke_train_catsdogs: all checks passed in $((SECONDS - START)) s"
