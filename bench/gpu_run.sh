#!/usr/bin/env bash
# Issue 21 on a GPU machine, run once: SPLICEVI (lean and reference API set-ups) and SCVI per epoch at
# 100,000 cells x 90,000 junctions and 1,000,000 cells x 100,000 junctions (3% of (cell, ATSE) pairs
# observed, 5,000 genes): s/epoch, GPU peak memory, cells/s, ratios; the card is named in the results
# (bench/results/train_speed_gpu_issue21_{100k,1m}.{json,md}, or under $OUT when set).
#
# The GPU image has PyTorch but not scvi-tools/anndata/mudata: wheels for those travel in .whl/ (see
# bench/README.md); the package source is a clean export of the committed tree in .gpu_src/
# (`git archive HEAD | tar -x -C .gpu_src`) so files being edited do not travel.
# The 1,000,000-cell point needs tens of GB of host memory to build its file; it runs second, so
# the 100,000-cell numbers are written even if it does not fit.
set -euo pipefail
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/.gpu_src/src
  src=.gpu_src
else
  src=.
fi
export PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=/tmp/numba
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c "import splicevi, torch, scvi; print('splicevi', splicevi.__version__, 'torch', torch.__version__, 'scvi', scvi.__version__, torch.cuda.get_device_name(0))"
out=${OUT:-bench/results}
mkdir -p "$out"
python3 "$src/bench/train_speed.py" --device cuda --grid gpu-issue21-100k --setups lean,reference --epochs 2 \
  --batch-size 512 --threads 4 --out "$out/train_speed_gpu_issue21_100k.json"
# The reference set-up's four layers at 1,000,000 cells (~3e9 observed entries each) do not fit in
# host memory: the lean set-up and SCVI only.
python3 "$src/bench/train_speed.py" --device cuda --grid gpu-issue21-1m --setups lean --epochs 2 \
  --batch-size 512 --threads 4 --out "$out/train_speed_gpu_issue21_1m.json"
