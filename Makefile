# Two commands do everything on a fresh machine with Python 3.10+:
#   make quickstart   virtual environment + the whole pipeline at toy scale on the CPU
#   make test         virtual environment + the test suite
# TORCH picks the torch wheel, e.g. make test TORCH="torch==2.5.1" or a CPU-only build.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch>=2.2
PY := $(VENV)/bin/python
QS := quickstart

.PHONY: install test quickstart clean-quickstart

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-ray.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

# The whole pipeline at toy scale: 8 short rollouts, one epoch of each model,
# two CMA-ES generations, a 3-episode test and its video. A few minutes on 2 cores.
quickstart: $(VENV)/.installed
	$(PY) data/generation_script.py --rollouts 8 --rootdir $(QS)/datasets --threads 2 --max-steps 200
	cd world-models && ../$(PY) trainvae.py --logdir ../$(QS)/exp --datadir ../$(QS)/datasets --epochs 1
	cd world-models && ../$(PY) trainmdrnn.py --logdir ../$(QS)/exp --datadir ../$(QS)/datasets --epochs 1
	cd world-models && ../$(PY) traincontroller.py --logdir ../$(QS)/exp --n-samples 2 --pop-size 4 \
		--max-generations 2 --eval-every 2 --eval-rollouts 4 --time-limit 200 --max-workers 2 --display
	cd world-models && ../$(PY) test_controller.py --logdir ../$(QS)/exp --episodes 3 --time-limit 200 --max-workers 2
	@echo "quickstart done: score in $(QS)/exp/test_scores.json, video $(QS)/exp/test_sample.mp4"

clean-quickstart:
	rm -rf $(QS)
