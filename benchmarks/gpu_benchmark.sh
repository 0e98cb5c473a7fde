#!/usr/bin/env bash
# The students' benchmark on one GPU (prepared for a lent GPU machine; aimed at < 8 minutes): the scarce
# scenario (4 strong cases from one site, 20 weak from all three), one seed, the default phantom preset,
# nnU-Net's own 3d_fullres; box teacher, SO/DO students, the control (nnU-Net on strong + pseudo), the
# strong-only baseline, nnU-Net's ignore label and the upper bound. Prints the benchmark's table last.
# Usage: bash benchmarks/gpu_benchmark.sh [WORKDIR]
# On a CPU, as a smoke test (what the tests run):
#   DEVICE=cpu PRESET=tiny POOL=6 STRONG=2 TEST=2 EPOCHS=1 ITER=2 bash benchmarks/gpu_benchmark.sh /tmp/gpu_bench_smoke
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/nnts_gpu_benchmark}
DEVICE=${DEVICE:-cuda}
PRESET=${PRESET:-default}
POOL=${POOL:-24}
STRONG=${STRONG:-4}
TEST=${TEST:-10}
EPOCHS=${EPOCHS:-8}
ITER=${ITER:-50}
SEED=${SEED:-0}
MODELS=${MODELS:-"teacher so do so_nnunet baseline ignore upper"}
PY=${PYTHON:-python3}
if ! (cd / && "$PY" -c "import nnunet_teacher_student") 2>/dev/null; then
  "$PY" -m pip install -q -e . >/dev/null
fi
export nnUNet_def_n_proc=${nnUNet_def_n_proc:-4}
EXTRA=()
if [ "$DEVICE" = cpu ]; then
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  EXTRA=(--preset "$PRESET")
elif [ "$PRESET" != default ]; then
  EXTRA=(--preset "$PRESET")
fi
start=$(date +%s)
"$PY" -m nnunet_teacher_student.cli benchmark -o "$WORK" -device "$DEVICE" --scenarios "scarce=${STRONG}@msd" \
  --seeds "$SEED" --pool "$POOL" --test "$TEST" --epochs "$EPOCHS" --iterations "$ITER" --models $MODELS \
  "${EXTRA[@]}" > "$WORK.log" 2>&1 || { tail -n 40 "$WORK.log"; exit 1; }
echo "gpu_benchmark: $(( $(date +%s) - start )) s on $DEVICE (log: $WORK.log); report: $WORK/report/report.md"
"$PY" - "$WORK" <<'EOF'
import json, sys
from pathlib import Path
rows = json.loads((Path(sys.argv[1]) / "report" / "summary.json").read_text())["records"]
print(f"{'model':48s} {'on':9s} {'DSC':>6s} {'recall':>7s} {'prec.':>6s} {'train s':>8s}")
for r in rows:
    f = lambda v: "  -" if v is None else f"{100 * v:6.1f}"
    t = "-" if r.get("train_seconds") is None else f"{r['train_seconds']:.0f}"
    print(f"{r['name'][:48]:48s} {r['evaluated_on'][:9]:9s} {f(r['dsc'])} {f(r['recall']):>7s} "
          f"{f(r['precision']):>6s} {t:>8s}")
EOF
