#!/usr/bin/env bash
# The first device call, as run from the project root at commit e2095e4 (an NVIDIA H200, 16 cores; wheels of
# gymnasium, box2d, pygame-ce, cma, tensorboardX in .whl/, the machine having no network; .gpu/data: the 16 rollouts of starting_data.txt): bench_imagination.py on
# cuda, then trainimagination.py on cuda for the three dynamics models side by side, one GPU, the cores split.
set -u
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=$PWD:/tmp/site || exit 1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; python3 -c "import torch,gymnasium,cv2;print('torch',torch.__version__,torch.cuda.get_device_name(),'gymnasium',gymnasium.__version__)"; git log -1 --format=%H 2>/dev/null; } 2>&1 | tee $OUT/machine.txt
echo "== bench (alone on the machine)"
timeout 110 python3 bench/bench_imagination.py --threads 16 --device cuda 2>&1 | tee $OUT/bench_cuda.txt
echo "== three runs side by side, one GPU, cores split"
mkdir -p /tmp/r/world-models /tmp/r/transformers-wm /tmp/r/trade
cp -r pretrained/transformers-wm/vae pretrained/world-models-r1/mdrnn /tmp/r/world-models/
cp -r pretrained/transformers-wm/vae pretrained/transformers-wm/transformers_de /tmp/r/transformers-wm/
cp -r pretrained/transformers-wm/vae /tmp/r/trade/ && cp -r pretrained/trade/transformers_de /tmp/r/trade/
T=${RUN_SECONDS:-300}
timeout $T taskset -c 0-3 python3 world-models/trainimagination.py --logdir /tmp/r/world-models --datadir .gpu/data --device cuda --max-iterations 12 > $OUT/run_mdrnn.log 2>&1 &
timeout $T taskset -c 4-9 python3 transformers-wm/trainimagination.py --logdir /tmp/r/transformers-wm --datadir .gpu/data --device cuda --max-iterations 12 > $OUT/run_transformer.log 2>&1 &
timeout $T taskset -c 10-15 python3 trade/trainimagination.py --logdir /tmp/r/trade --datadir .gpu/data --device cuda --max-iterations 12 > $OUT/run_trade.log 2>&1 &
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv | tee -a $OUT/machine.txt
wait
for m in world-models transformers-wm trade; do cp /tmp/r/$m/imagination/record.json $OUT/record_$m.json 2>/dev/null || echo "no record for $m"; done
python3 - <<'PY'
import json, os
print("| model | iterations | real steps | play s/it | model s/it | imagination s/it |")
for m in ("world-models", "transformers-wm", "trade"):
    p = os.path.join(os.environ["OUT"], f"record_{m}.json")
    if not os.path.exists(p):
        print(f"| {m} | none |"); continue
    r = json.load(open(p)); n = r["iterations"]; s = r["seconds"]
    print(f"| {m} | {n} | {r['real_steps']['total']} | {s['play']/n:.1f} | {s['model']/n:.1f} | {s['imagination']/n:.1f} |")
PY
