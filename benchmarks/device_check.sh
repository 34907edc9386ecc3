#!/usr/bin/env bash
# The GPU check (issues 18 and 19): one script, a few minutes on one GPU, run from the source tree.
#
#   bash benchmarks/device_check.sh          # on a machine with a CUDA GPU
#   bash benchmarks/device_check.sh --cpu    # the same sections at small sizes on a CPU (a dry run)
#
# Needs torch, timm, scikit-learn, pandas, pyarrow, pytest, pytest-benchmark and scipy (the
# `datasets` and `astropy` packages are not imported by these sections). Each section runs under
# its own time limit, so one failure leaves the others' numbers; logs go to $OUT (default
# ./out/device_check). The exit code is the number of failed sections.
set -u
cd "$(dirname "$0")/.."
MODE=gpu
[ "${1:-}" = "--cpu" ] && MODE=cpu
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -d .whl ] && ! python3 -c "import datasets, astropy" 2>/dev/null; then
  # `datasets` and `astropy` travel as wheels to a machine that lacks them (benchmarks/README.md)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
LOGS="${OUT:-out}/device_check"
mkdir -p "$LOGS"
FAILED=0

section() {  # section NAME SECONDS COMMAND...
  local name=$1 limit=$2 start rc
  shift 2
  echo "=== $name (limit ${limit}s)"
  start=$(date +%s)
  timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
  rc=$?
  tail -n 40 "$LOGS/$name.log"
  echo "=== $name: exit $rc after $(( $(date +%s) - start ))s"
  [ "$rc" -eq 0 ] || FAILED=$((FAILED + 1))
}

if [ "$MODE" = gpu ]; then
  DEVICE=cuda PROFILE=paper BATCH=256 STEPS=60 WARMUP=20 IMAGES=8192
  SIM_N=20000 TOPK_N=1000000 TOPK_Q=1000 PROBE_N=200000 DIM=2048 CLI_N=2048 CLI_STEPS=60
else
  DEVICE=cpu PROFILE=smoke BATCH=32 STEPS=6 WARMUP=3 IMAGES=256
  SIM_N=256 TOPK_N=20000 TOPK_Q=100 PROBE_N=6000 DIM=256 CLI_N=512 CLI_STEPS=20
fi

section environment 60 python3 - <<EOF
import platform, torch, timm, sklearn
print("python", platform.python_version(), "torch", torch.__version__, "timm", timm.__version__, "sklearn", sklearn.__version__)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, f"{p.total_memory / 2**30:.0f} GiB", p.multi_processor_count, "SMs")
else:
    print("device cpu,", torch.get_num_threads(), "threads")
EOF

# the CUDA tests (skipped on a CPU) and every method's step under bf16 autocast
section tests 150 python3 -m pytest -q -p no:cacheprovider -x tests/test_cuda.py tests/methods/test_precision.py

# each method's pretraining pipeline against timm's raw step, FLOP-scaled (bench_pretrain.py)
section pretrain 300 bash -c "python3 benchmarks/bench_pretrain.py --device $DEVICE --profile $PROFILE \
  --batch $BATCH --steps $STEPS --warmup $WARMUP --images $IMAGES; \
  echo '--- mae with train.compile (torch.compile; whether it pays)'; \
  python3 benchmarks/bench_pretrain.py --device $DEVICE --profile $PROFILE --batch $BATCH --steps $STEPS \
  --warmup $WARMUP --images $IMAGES --methods mae --compile"

# the command line, end to end: the issue's failing command (simclr, bf16, paper sizes, 60 steps;
# on a CPU the smoke sizes, fewer galaxies and steps, so the section fits its limit on 2 cores)
CLI_DIR=$(mktemp -d)
section cli 150 python3 -m astrobench run --method simclr,mocov2 --task redshift --profile "$PROFILE" \
  --dataset-option n=$CLI_N --steps $CLI_STEPS --protocol knn --cache-dir "$CLI_DIR/cache" --results-dir "$CLI_DIR/results"

# the redshift task's linear probe (180 bins) on $PROBE_N x $DIM embeddings
section probe 90 python3 - <<EOF
import sys; sys.path.insert(0, "benchmarks")
from bench_tasks import probe_timing
result = probe_timing($PROBE_N, $DIM, 180, "$DEVICE")
print(f"redshift linear probe, $PROBE_N x $DIM, 180 bins, on $DEVICE: {result}")
EOF

# exact cosine top-k of $TOPK_Q queries over $TOPK_N x $DIM embeddings
section topk 60 python3 - <<EOF
import time, torch
from astrobench.tasks.search import cosine_topk
device = torch.device("$DEVICE")
g = torch.Generator(device=device).manual_seed(0)
gallery = torch.randn($TOPK_N, $DIM, device=device, generator=g)
queries = gallery[:$TOPK_Q] + 0.1 * torch.randn($TOPK_Q, $DIM, device=device, generator=g)
cosine_topk(queries[:10], gallery, 25, device=device)  # warm-up
if device.type == "cuda": torch.cuda.synchronize()
t0 = time.perf_counter()
values, indices = cosine_topk(queries, gallery, 25, device=device)
seconds = time.perf_counter() - t0
assert (indices[:, 0] == torch.arange($TOPK_Q).numpy()).mean() > 0.99
print(f"top-25 of $TOPK_Q queries over $TOPK_N x $DIM on $DEVICE: {seconds:.3f} s")
EOF

# augmentations: batched against a per-image loop, and against training (bench_augment.py)
section augment 120 env ASTROBENCH_BENCH_DEVICE="$DEVICE" python3 -m pytest benchmarks/bench_augment.py \
  --benchmark-enable -s -q -p no:cacheprovider

# the simulator's galaxies/s on the device
section simulator 150 python3 - <<EOF
import sys; sys.path.insert(0, "benchmarks")
from bench_synthetic import simulator_rate
import tempfile
rate = simulator_rate($SIM_N, "$DEVICE")
print(f"simulator on $DEVICE, in memory: {rate:,.0f} galaxies/s ($SIM_N galaxies; 200,000 would take {200_000 / rate / 60:.1f} min)")
with tempfile.TemporaryDirectory() as out:
    rate = simulator_rate($SIM_N, "$DEVICE", out=out + "/survey")
print(f"simulator on $DEVICE, streamed to disk: {rate:,.0f} galaxies/s ($SIM_N galaxies; 200,000 would take {200_000 / rate / 60:.1f} min)")
EOF

echo "=== device_check: $FAILED section(s) failed; logs in $LOGS"
exit "$FAILED"
