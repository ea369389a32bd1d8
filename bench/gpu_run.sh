#!/usr/bin/env bash
# Run bench/train_speed.py on a GPU machine that has PyTorch but not scvi-tools/anndata/mudata.
# Wheels for the missing packages travel in .whl/ (see bench/README.md); the package source is a
# clean export of the committed tree in .gpu_src/ so files being edited do not travel.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/.gpu_src/src PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=/tmp/numba
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c "import splicevi, torch, scvi; print('splicevi', splicevi.__version__, 'torch', torch.__version__, 'scvi', scvi.__version__, torch.cuda.get_device_name(0))"
out=${OUT:-bench/results}
python3 .gpu_src/bench/train_speed.py --device cuda --grid gpu --epochs 2 --batch-size 512 --inference --out "$out/train_speed_gpu.json"
