#!/usr/bin/env bash
# session 40 chain: box folds 2-3, point folds 0-3, box folds 0-1 again (reproduction), score both
set -euo pipefail
cd /work/realdata/runs
FOLDS="2 3" bash teacher.sh box
bash teacher.sh point
bash teacher.sh box
bash teacher.sh box point
echo CHAIN DONE
