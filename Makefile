# Two commands do everything on a fresh machine with Python 3.10+:
#   make quickstart   virtual environment + the whole pipeline at toy scale on the CPU
#   make test         virtual environment + the test suite
# TORCH picks the torch wheel, e.g. make test TORCH="torch==2.5.1" or a CPU-only build.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch>=2.2
PY := $(VENV)/bin/python
QS := quickstart

.PHONY: install test quickstart clean-quickstart agent

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

# A driving agent on a CPU-only machine, from an empty disk to a score over 100
# test episodes (README, "A driving agent on two CPU cores"). Every stage resumes
# where it stopped: rerun the same command after a kill. The scale is chosen for
# the fastest climb per CPU hour; override any of it, e.g. make agent AGENT_GENERATIONS=200.
AGENT_DIR ?= runs/agent
AGENT_ROLLOUTS ?= 64
AGENT_VAE_EPOCHS ?= 3
AGENT_MDRNN_EPOCHS ?= 3
AGENT_POP ?= 16
AGENT_SAMPLES ?= 2
AGENT_GENERATIONS ?= 100
AGENT_EVAL_EVERY ?= 4
AGENT_EVAL_ROLLOUTS ?= 24
agent: $(VENV)/.installed
	$(PY) data/generation_script.py --rollouts $(AGENT_ROLLOUTS) --rootdir $(AGENT_DIR)/datasets
	$(PY) world-models/trainvae.py --logdir $(AGENT_DIR)/world-models --datadir $(AGENT_DIR)/datasets \
		--epochs $(AGENT_VAE_EPOCHS)
	$(PY) world-models/trainmdrnn.py --logdir $(AGENT_DIR)/world-models --datadir $(AGENT_DIR)/datasets \
		--epochs $(AGENT_MDRNN_EPOCHS)
	$(PY) world-models/traincontroller.py --logdir $(AGENT_DIR)/world-models --renderer approx \
		--pop-size $(AGENT_POP) --n-samples $(AGENT_SAMPLES) --max-generations $(AGENT_GENERATIONS) \
		--eval-every $(AGENT_EVAL_EVERY) --eval-rollouts $(AGENT_EVAL_ROLLOUTS) --target-return 1000
	$(PY) world-models/test_controller.py --logdir $(AGENT_DIR)/world-models --episodes 100
