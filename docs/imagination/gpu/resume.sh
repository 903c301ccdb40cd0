#!/usr/bin/env bash
# The second device call (the machine still warm, /tmp/r kept): the three runs of check.sh resumed for 320 s more,
# then each agent (ctrl/, its dynamics model, record.json; not the replay) sent back.
export PYTHONUNBUFFERED=1; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=$PWD:/tmp/site || exit 1; ls /tmp/r/*/imagination/record.json || exit 2; T=320
timeout $T taskset -c 0-3 python3 world-models/trainimagination.py --logdir /tmp/r/world-models --datadir .gpu/data --device cuda --max-iterations 60 > /tmp/r/mdrnn2.log 2>&1 &
timeout $T taskset -c 4-9 python3 transformers-wm/trainimagination.py --logdir /tmp/r/transformers-wm --datadir .gpu/data --device cuda --max-iterations 60 > /tmp/r/transformer2.log 2>&1 &
timeout $T taskset -c 10-15 python3 trade/trainimagination.py --logdir /tmp/r/trade --datadir .gpu/data --device cuda --max-iterations 60 > /tmp/r/trade2.log 2>&1 &
wait; for m in world-models transformers-wm trade; do cp /tmp/r/$m/imagination/record.json $OUT/record_$m.json; tar czf $OUT/agent_$m.tgz -C /tmp/r/$m/imagination --exclude replay --exclude vae --exclude tb --exclude checkpoint.tar . ; done
