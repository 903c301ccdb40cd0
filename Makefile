# Two commands do everything on a fresh machine with Python 3.10+:
#   make quickstart   virtual environment + the whole pipeline at toy scale on the CPU
#   make test         virtual environment + the test suite
# TORCH picks the torch release and TORCH_PIP passes pip options for it, e.g. the
# CPU-only build (no CUDA libraries, ~1.8 GB venv instead of ~7 GB):
#   make test TORCH_PIP="--index-url https://download.pytorch.org/whl/cpu"
#   make test TORCH="torch==2.13.0+cpu"      (a CPU build pip already finds, e.g. in a wheel folder)

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch>=2.2
TORCH_PIP ?=
PY := $(VENV)/bin/python
QS := quickstart

.PHONY: install test quickstart clean-quickstart agent agent-r1 agent-r2 compare compare-seed dream dream-compare simulators ablation imagination imagination-compare

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-ray.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIP) "$(TORCH)"
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

# The whole pipeline at toy scale: 8 short rollouts, one epoch of each model,
# two CMA-ES generations, a 3-episode test and its video. A few minutes on 2 cores.
quickstart: $(VENV)/.installed
	$(PY) data/generation_script.py --rollouts 8 --rootdir $(QS)/datasets --threads 2 --max-steps 200
	$(PY) world-models/trainvae.py --logdir $(QS)/exp --datadir $(QS)/datasets --epochs 1
	$(PY) world-models/trainmdrnn.py --logdir $(QS)/exp --datadir $(QS)/datasets --epochs 1
	$(PY) world-models/traincontroller.py --logdir $(QS)/exp --n-samples 2 --pop-size 4 \
		--max-generations 2 --eval-every 2 --eval-rollouts 4 --time-limit 200 --max-workers 2 --display
	$(PY) world-models/test_controller.py --logdir $(QS)/exp --episodes 3 --time-limit 200 --max-workers 2
	@echo "quickstart done: score in $(QS)/exp/test_scores.json, video $(QS)/exp/test_sample.mp4"

clean-quickstart:
	rm -rf $(QS)

# A driving agent on a CPU-only machine, from an empty disk to a score over 100
# test episodes (docs/agent). Every stage resumes
# where it stopped: rerun the same command after a kill. The scale is chosen for
# the fastest climb per CPU hour; override any of it, e.g. make agent AGENT_GENERATIONS=200
# (the second round's search; AGENT_R1_GENERATIONS is the first's).
AGENT_DIR ?= runs/agent
AGENT_ROLLOUTS ?= 64
AGENT_VAE_EPOCHS ?= 3
AGENT_MDRNN_EPOCHS ?= 3
AGENT_POP ?= 16
AGENT_SAMPLES ?= 2
AGENT_GENERATIONS ?= 100
# The first round's agent only drives the second round's data: its search stops at the generation
# whose controller was the best of 100 in docs/agent's run (generation 51, 881.8 on the evaluation
# tracks); make compare continues it to AGENT_GENERATIONS, the comparison's budget.
AGENT_R1_GENERATIONS ?= 52
AGENT_EVAL_EVERY ?= 4
AGENT_EVAL_ROLLOUTS ?= 24
AGENT_TEST_EPISODES ?= 100
# steps per rollout and per episode at most (the environment's 1000; shorter only for a dry run)
AGENT_STEPS ?= 1000
# fp32: as the reported runs; auto uses bf16 where the CPU has it (faster, docs/machines).
AGENT_PRECISION ?= fp32
# A shell function for recipes: copy folder $1 into folder $2 unless $2 has it already, beside and then
# moved in whole, so that a copy stopped halfway is redone, not used (make compare-seed, dream-compare,
# simulators, ablation copy world models this way)
COPY_ONCE = copy_once() { [ -d "$$2/$$(basename $$1)" ] || { rm -rf "$$2/.copy.tmp" && cp -r "$$1" "$$2/.copy.tmp" \
	&& mv "$$2/.copy.tmp" "$$2/$$(basename $$1)"; }; }
# the flags of every search at make agent's budget (make agent, compare, compare-seed, ablation)
AGENT_SEARCH = --renderer approx --pop-size $(AGENT_POP) --n-samples $(AGENT_SAMPLES) --eval-every $(AGENT_EVAL_EVERY) \
	--eval-rollouts $(AGENT_EVAL_ROLLOUTS) --target-return 1000 --precision $(AGENT_PRECISION) --time-limit $(AGENT_STEPS)
# score a controller over the test tracks, unless its last score is newer than it (a rerun replays nothing)
TEST_ONCE = [ $(1)/test_scores.json -nt $(1)/ctrl/best.tar ] || $(PY) world-models/test_controller.py --logdir $(1)
agent: agent-r2

# make agent's first round: Brownian rollouts, V and M trained on them, the search. Its agent is not
# tested here (2.5 min the agent does not need); make compare tests it, or test_controller.py does.
agent-r1: $(VENV)/.installed
	$(PY) data/generation_script.py --rollouts $(AGENT_ROLLOUTS) --rootdir $(AGENT_DIR)/datasets --max-steps $(AGENT_STEPS)
	$(PY) world-models/trainvae.py --logdir $(AGENT_DIR)/world-models --datadir $(AGENT_DIR)/datasets \
		--epochs $(AGENT_VAE_EPOCHS)
	$(PY) world-models/trainmdrnn.py --logdir $(AGENT_DIR)/world-models --datadir $(AGENT_DIR)/datasets \
		--epochs $(AGENT_MDRNN_EPOCHS)
	$(PY) world-models/traincontroller.py --logdir $(AGENT_DIR)/world-models --max-generations $(AGENT_R1_GENERATIONS) \
		$(AGENT_SEARCH)

# make agent's second round, the paper's iterative procedure once: AGENT_DRIVE_ROLLOUTS rollouts
# driven by the first round's agent (no action noise: it would slow the car, docs/agent), V and M
# retrained from scratch on them and the Brownian rollouts (AGENT_R2_EPOCHS each, on twice the data),
# then the same search and test. Its recipe made the agent shipped as pretrained/world-models (that
# run drove with the first round's shipped copy, pretrained/world-models-r1, which is also the world
# model of make compare, make dream and make ablation).
AGENT_DRIVE_ROLLOUTS ?= 64
AGENT_DRIVE_SEED ?= 200000
AGENT_R2_EPOCHS ?= 2
agent-r2: agent-r1
	$(PY) data/generation_script.py --rollouts $(AGENT_DRIVE_ROLLOUTS) --rootdir $(AGENT_DIR)/datasets-r2/driving \
		--controller $(AGENT_DIR)/world-models --action-noise 0 --seed $(AGENT_DRIVE_SEED) --max-steps $(AGENT_STEPS)
	@# the Brownian rollouts join as hard links (no second copy on disk; a plain copy where links fail),
	@# made beside and moved in whole, so that a stopped copy is redone, not trained on
	[ -d $(AGENT_DIR)/datasets-r2/brownian ] || { rm -rf $(AGENT_DIR)/.brownian.tmp; \
		{ cp -al $(AGENT_DIR)/datasets $(AGENT_DIR)/.brownian.tmp || \
			{ rm -rf $(AGENT_DIR)/.brownian.tmp && cp -r $(AGENT_DIR)/datasets $(AGENT_DIR)/.brownian.tmp; }; } && \
		mv $(AGENT_DIR)/.brownian.tmp $(AGENT_DIR)/datasets-r2/brownian; }
	$(PY) world-models/trainvae.py --logdir $(AGENT_DIR)/world-models-r2 --datadir $(AGENT_DIR)/datasets-r2 \
		--epochs $(AGENT_R2_EPOCHS)
	$(PY) world-models/trainmdrnn.py --logdir $(AGENT_DIR)/world-models-r2 --datadir $(AGENT_DIR)/datasets-r2 \
		--epochs $(AGENT_R2_EPOCHS)
	$(PY) world-models/traincontroller.py --logdir $(AGENT_DIR)/world-models-r2 --max-generations $(AGENT_GENERATIONS) \
		$(AGENT_SEARCH)
	$(call TEST_ONCE,$(AGENT_DIR)/world-models-r2) --episodes $(AGENT_TEST_EPISODES) --time-limit $(AGENT_STEPS)

# The three dynamics models at equal budget (docs/comparison), after `make agent`: its MDN-RNN agent and two more experiments that share
# its dataset and its VAE (the shipped half-precision copy, pretrained/world-models-r1),
# each dynamics model trained with its own recipe for the same number of epochs,
# each controller searched with the same CMA-ES budget on the same tracks.
# Resumes after a stop like every stage; then writes runs/compare/report.
COMPARE_DIR ?= runs/compare
COMPARE_EXPS ?= transformers-wm trade
# The MDN-RNN row: the first round of make agent, or its shipped copy (pretrained/world-models-r1, after a test).
COMPARE_BASE ?= $(AGENT_DIR)/world-models
COMPARE_VAE ?= pretrained/world-models-r1/vae/best.tar
compare: $(VENV)/.installed
	@test -f $(COMPARE_BASE)/ctrl/best.tar || \
		{ echo "error: make compare compares with the first agent of make agent: run make agent-r1 first"; exit 2; }
	@# the first round's search stopped at AGENT_R1_GENERATIONS: give it the comparison's budget (resumes it),
	@# then test its controller again if the extra generations found a better one
	[ ! -f $(COMPARE_BASE)/ctrl/checkpoint.tar ] || $(PY) world-models/traincontroller.py --logdir $(COMPARE_BASE) \
		--max-generations $(AGENT_GENERATIONS) $(AGENT_SEARCH)
	$(call TEST_ONCE,$(COMPARE_BASE)) --episodes 100
	$(PY) data/generation_script.py --rollouts $(AGENT_ROLLOUTS) --rootdir $(AGENT_DIR)/datasets
	for exp in $(COMPARE_EXPS); do \
		$(PY) $$exp/traintransformersde.py --logdir $(COMPARE_DIR)/$$exp --datadir $(AGENT_DIR)/datasets \
			--vae $(COMPARE_VAE) --epochs $(AGENT_MDRNN_EPOCHS) || exit 1; \
	done
	for exp in $(COMPARE_EXPS); do \
		$(PY) $$exp/traincontroller.py --logdir $(COMPARE_DIR)/$$exp --max-generations $(AGENT_GENERATIONS) \
			$(AGENT_SEARCH) || exit 1; \
		$(PY) $$exp/test_controller.py --logdir $(COMPARE_DIR)/$$exp --episodes 100 || exit 1; \
	done
	$(PY) utils/stages/report.py --logdirs $(COMPARE_BASE) $(COMPARE_DIR)/transformers-wm $(COMPARE_DIR)/trade \
		--out $(COMPARE_DIR)/report --animation

# Another CMA-ES seed for each of the three experiments of make compare, on the same
# world models (copied into $(COMPARE_DIR)/<experiment>-seed$(SEED)): the spread of the
# controller search, which the test scores of one seed cannot show. Resumes after a stop;
# then a report of all six runs, with the scores per dynamics model.
SEED ?= 1
compare-seed: $(VENV)/.installed
	@test -f $(COMPARE_DIR)/trade/ctrl/best.tar || { echo "error: run make compare first"; exit 2; }
	$(COPY_ONCE); for exp in transformers-wm trade world-models; do \
		src=$(COMPARE_DIR)/$$exp; models=transformers_de; \
		if [ $$exp = world-models ]; then src=$(COMPARE_BASE); models="vae mdrnn"; fi; \
		dst=$(COMPARE_DIR)/$$exp-seed$(SEED); mkdir -p $$dst; \
		for m in $$models; do copy_once $$src/$$m $$dst || exit 1; done; \
		$(PY) $$exp/traincontroller.py --logdir $$dst --max-generations $(AGENT_GENERATIONS) --seed $(SEED) \
			$(AGENT_SEARCH) || exit 1; \
		$(PY) $$exp/test_controller.py --logdir $$dst --episodes 100 || exit 1; \
	done
	$(PY) utils/stages/report.py --out $(COMPARE_DIR)/report-seeds --logdirs \
		$(COMPARE_BASE) $(COMPARE_DIR)/transformers-wm $(COMPARE_DIR)/trade \
		$(COMPARE_DIR)/world-models-seed$(SEED) $(COMPARE_DIR)/transformers-wm-seed$(SEED) $(COMPARE_DIR)/trade-seed$(SEED)

# A controller trained only inside the MDN-RNN's dream (docs/dream), the paper's iterative procedure: 64 Brownian rollouts (those of make agent, whose
# VAE, the shipped pretrained/world-models-r1/vae, was trained on exactly them), an MDN-RNN with
# its reward head, a CMA-ES search in its dream; then DREAM_ROUNDS rounds of: DREAM_COLLECT
# rollouts driven by the last dream controller with action noise, the MDN-RNN retrained from
# the last one on all the data so far, a new search in its dream. Selection is by dream score
# only; the real evaluations (8 episodes every 20 generations) are for the plot, and counted.
# Every stage resumes after a stop.
DREAM_DIR ?= runs/dream
DREAM_VAE ?= pretrained/world-models-r1/vae/best.tar
DREAM_ROUNDS ?= 2
DREAM_COLLECT ?= 100
DREAM_NOISE ?= 0.1
DREAM_EPOCHS0 ?= 6
DREAM_EPOCHS ?= 2
DREAM_TEMPERATURE ?= 1.15
DREAM_POP ?= 32
DREAM_SAMPLES ?= 8
DREAM_GENERATIONS ?= 60
# > 0: every round's MDN-RNN learns with variational dropout and dreams with a mask per episode
# (Dropout's Dream Land); 0, the recipe, trains and dreams without
DREAM_DROPOUT ?= 0
DREAM_SEARCH = --world dream --temperature $(DREAM_TEMPERATURE) --pop-size $(DREAM_POP) --n-samples $(DREAM_SAMPLES) \
	--max-generations $(DREAM_GENERATIONS) --eval-every 5 --eval-rollouts 32 --envs-per-worker 128 --target-return 2000 \
	--real-eval-every 20 --real-eval-rollouts 8
dream: $(VENV)/.installed
	$(PY) data/generation_script.py --rollouts $(AGENT_ROLLOUTS) --rootdir $(DREAM_DIR)/data/brown
	mkdir -p $(DREAM_DIR)/r0/vae && cp -n $(DREAM_VAE) $(DREAM_DIR)/r0/vae/best.tar
	$(PY) world-models/trainmdrnn.py --logdir $(DREAM_DIR)/r0 --datadir $(DREAM_DIR)/data --include-reward \
		--epochs $(DREAM_EPOCHS0) --dropout $(DREAM_DROPOUT)
	$(PY) world-models/traincontroller.py --logdir $(DREAM_DIR)/r0 $(DREAM_SEARCH)
	for r in $$(seq 1 $(DREAM_ROUNDS)); do \
		prev=$(DREAM_DIR)/r$$((r - 1)); cur=$(DREAM_DIR)/r$$r; \
		$(PY) data/generation_script.py --rollouts $(DREAM_COLLECT) --rootdir $(DREAM_DIR)/data/round$$r \
			--controller $$prev --action-noise $(DREAM_NOISE) --seed $$((100000 * r)) || exit 1; \
		mkdir -p $$cur/vae && cp -n $(DREAM_VAE) $$cur/vae/best.tar; \
		$(PY) world-models/trainmdrnn.py --logdir $$cur --datadir $(DREAM_DIR)/data --include-reward \
			--init $$prev/mdrnn/best.tar --epochs $(DREAM_EPOCHS) --dropout $(DREAM_DROPOUT) || exit 1; \
		$(PY) world-models/traincontroller.py --logdir $$cur $(DREAM_SEARCH) || exit 1; \
	done
	$(PY) world-models/test_controller.py --logdir $(DREAM_DIR)/r$(DREAM_ROUNDS) --episodes 100

# The three dynamics models in the dream, one protocol (docs/dream, "The three models in the dream"). Run
# after make dream's rounds 0 to 2: all three models learn the same 264 rollouts (hard links in
# $(DREAM_DIR)/data264, as the data of later rounds is left out), with the same VAE; the MDN-RNN is round 2's,
# the Transformer and TraDE one epoch on them from the shipped ones, with their reward heads. Each gets
# a CMA-ES search in its dream (smaller than make dream's: a transformer dreams ~50x slower than the
# LSTM on a CPU) for each seed, chosen by dream score alone, then a real test over 100 tracks.
# Every stage resumes after a stop; a test is rerun only when its controller changed.
DREAM_COMPARE_DIR ?= runs/dreamC
DREAM_COMPARE_SEEDS ?= 0
DREAM_COMPARE_SEARCH = --world dream --temperature $(DREAM_TEMPERATURE) --pop-size 16 --n-samples 4 \
	--max-generations 40 --eval-every 5 --eval-rollouts 16 --envs-per-worker 32 --target-return 2000 \
	--real-eval-every 20 --real-eval-rollouts 8 --dream-datadir $(DREAM_DIR)/data264
dream-compare: $(VENV)/.installed
	@[ -f $(DREAM_DIR)/r2/mdrnn/best.tar ] || { echo "error: $(DREAM_DIR)/r2/mdrnn: run make dream first"; exit 2; }
	mkdir -p $(DREAM_DIR)/data264
	for d in brown round1 round2; do [ -d $(DREAM_DIR)/data264/$$d ] || cp -al $(DREAM_DIR)/data/$$d $(DREAM_DIR)/data264/ || exit 1; done
	for m in transformers-wm:tf trade:trade; do exp=$${m%%:*}; dst=$(DREAM_DIR)/$${m##*:}; mkdir -p $$dst/vae; \
		cp -n $(DREAM_VAE) $$dst/vae/best.tar; \
		$(PY) $$exp/traintransformersde.py --logdir $$dst --datadir $(DREAM_DIR)/data264 --include-reward \
			--init pretrained/$$exp/transformers_de/best.tar --epochs 1 || exit 1; \
	done
	$(COPY_ONCE); for seed in $(DREAM_COMPARE_SEEDS); do \
		for m in world-models:r2:mdrnn:mdrnn transformers-wm:tf:transformers_de:transformer trade:trade:transformers_de:trade; do \
			set -- $$(echo $$m | tr : ' '); exp=$$1; src=$$2; dyn=$$3; name=$$4; dst=$(DREAM_COMPARE_DIR)/$$name-seed$$seed; mkdir -p $$dst; \
			for part in vae $$dyn; do copy_once $(DREAM_DIR)/$$src/$$part $$dst || exit 1; done; \
			$(PY) $$exp/traincontroller.py --logdir $$dst $(DREAM_COMPARE_SEARCH) --seed $$seed || exit 1; \
			[ $$dst/test_scores.json -nt $$dst/ctrl/best.tar ] || \
				$(PY) $$exp/test_controller.py --logdir $$dst --episodes 100 --no-video || exit 1; \
		done; \
	done
	$(PY) utils/stages/dream_report.py --logdirs $(DREAM_COMPARE_DIR)/*-seed*/ --out $(DREAM_COMPARE_DIR)/report

# The dynamics models as simulators (docs/comparison, "The three as simulators"): a CMA-ES search in reality
# whose controllers read z alone (so each means the same in every model's dream) keeps every
# evaluated generation's best; utils/stages/simulators.py replays these champions in reality and in
# the dreams of make dream-compare's three models, and ranks them. Resumes; the replay is redone.
SIM_DIR ?= runs/sim
simulators: $(VENV)/.installed
	mkdir -p $(SIM_DIR)/zsearch
	$(COPY_ONCE); for part in vae mdrnn; do copy_once $(DREAM_DIR)/r2/$$part $(SIM_DIR)/zsearch || exit 1; done
	$(PY) world-models/traincontroller.py --logdir $(SIM_DIR)/zsearch --controller-inputs z --renderer approx \
		--pop-size 16 --n-samples 2 --max-generations 30 --eval-every 2 --eval-rollouts 8 --target-return 2000
	$(PY) utils/stages/simulators.py --logdir $(SIM_DIR)/zsearch --dreams $(DREAM_DIR)/r2 $(DREAM_DIR)/tf \
		$(DREAM_DIR)/trade --episodes 16 --renderer approx --dream-datadir $(DREAM_DIR)/data264 --out $(SIM_DIR)/report

# The paper's ablation (its Table 1) on the comparison's world model (pretrained/world-models-r1: its VAE
# and MDN-RNN, copied into each run): the controller reading z alone (linear), [z, h] of the MDN-RNN at
# its initialisation, z through a hidden layer of 40 tanh units, and [z, h] of the trained MDN-RNN (the
# agent); then [z, h] of the comparison's Transformer and TraDE (pretrained/transformers-wm, pretrained/trade,
# on the same VAE): the three dynamics models as feature extractors. Each row gets ABLATION_SEEDS CMA-ES
# seeds and make agent's search budget, each run tested over the same 100 tracks; a row's seeds run one
# after the other, then the next row's. Every run resumes after a stop; a test is rerun only when its
# controller changed. Ends with runs/ablation/report/report.md: each row over its seeds, and every two rows'
# difference with its interval. A finished run (searched and tested) is kept in ABLATION_KEEP, which the
# repository holds: its controller, search logs and test scores (70 to 250 kB). A rerun restores a kept run
# instead of searching again (the world models are the shipped ones), so the ablation goes on across
# machines; empty ABLATION_KEEP to redo all.
ABLATION_DIR ?= runs/ablation
ABLATION_KEEP ?= docs/comparison/ablation/kept
ABLATION_ROWS ?= z zh-untrained z-hidden zh zh-transformer zh-trade
ABLATION_SEEDS ?= 0 1 2
ABLATION_TEST_EPISODES ?= 100
ablation: $(VENV)/.installed
	$(COPY_ONCE); for row in $(ABLATION_ROWS); do for seed in $(ABLATION_SEEDS); do \
		dst=$(ABLATION_DIR)/$$row-seed$$seed; kept=$(ABLATION_KEEP)/$$row-seed$$seed; mkdir -p $$dst; \
		exp=world-models; src=pretrained/world-models-r1; models="vae mdrnn"; reads="--controller-inputs $$row"; \
		case $$row in zh-untrained) reads="--untrained-dynamics";; \
			zh-transformer) exp=transformers-wm; src=pretrained/transformers-wm; models="vae transformers_de"; \
				reads="--controller-inputs zh";; \
			zh-trade) exp=trade; src=pretrained/trade; models="vae transformers_de"; reads="--controller-inputs zh";; \
		esac; \
		for m in $$models; do copy_once $$src/$$m $$dst || exit 1; done; \
		if [ -f $$kept/test_scores.json ]; then \
			echo "$$row-seed$$seed: kept in $$kept, not searched again"; cp -rp $$kept/. $$dst || exit 1; continue; fi; \
		$(PY) $$exp/traincontroller.py --logdir $$dst $$reads --max-generations $(AGENT_GENERATIONS) --seed $$seed \
			$(AGENT_SEARCH) || exit 1; \
		[ $$dst/test_scores.json -nt $$dst/ctrl/best.tar ] || $(PY) $$exp/test_controller.py --logdir $$dst \
			--episodes $(ABLATION_TEST_EPISODES) --no-video || exit 1; \
		rm -rf $$kept.tmp && mkdir -p $$kept.tmp/ctrl && cp -rp $$dst/ctrl/best.tar $$dst/ctrl/tb $$kept.tmp/ctrl \
			&& cp -p $$dst/test_scores.json $$kept.tmp && mv $$kept.tmp $$kept || exit 1; \
	done; done
	$(PY) utils/stages/report.py --out $(ABLATION_DIR)/report --logdirs $(ABLATION_DIR)/*-seed*/

# Learning in imagination (docs/imagination/): the MDN-RNN's actor-critic learner (trainimagination.py)
# from make agent's 64 Brownian rollouts and the first round's V and M (pretrained/world-models-r1), with
# IMAG_STEPS real env steps in all; then its test on the test tracks and on the second set (--seed 1), as its
# mean and as the policy it learned (--sampled: docs/imagination, "The mean and the policy").
# Resumes where it stopped: rerun the same command after a kill. IMAG_FLAGS adds flags (e.g. --device cuda).
IMAG_DIR ?= runs/imagination
IMAG_STEPS ?= 1000000
IMAG_FLAGS ?=
imagination: $(VENV)/.installed
	$(PY) data/generation_script.py --rollouts $(AGENT_ROLLOUTS) --rootdir $(AGENT_DIR)/datasets --max-steps $(AGENT_STEPS)
	$(COPY_ONCE); mkdir -p $(IMAG_DIR)/world-models && copy_once pretrained/world-models-r1/vae $(IMAG_DIR)/world-models \
		&& copy_once pretrained/world-models-r1/mdrnn $(IMAG_DIR)/world-models
	$(PY) world-models/trainimagination.py --logdir $(IMAG_DIR)/world-models --datadir $(AGENT_DIR)/datasets \
		--max-real-steps $(IMAG_STEPS) $(IMAG_FLAGS)
	$(call TEST_ONCE,$(IMAG_DIR)/world-models/imagination) --episodes $(AGENT_TEST_EPISODES)
	$(PY) world-models/test_controller.py --logdir $(IMAG_DIR)/world-models/imagination --episodes $(AGENT_TEST_EPISODES) \
		--seed 1 --no-video
	for seed in 0 1; do $(PY) world-models/test_controller.py --logdir $(IMAG_DIR)/world-models/imagination \
		--episodes $(AGENT_TEST_EPISODES) --seed $$seed --sampled --no-video || exit 1; done
	$(PY) utils/stages/imagination_report.py --runs $(IMAG_DIR)/world-models/imagination \
		--cmaes pretrained/world-models/ctrl/tb --out $(IMAG_DIR)/report

# The Transformer and TraDE under the same protocol, each from its experiment's first-round world model (the
# comparison's pretrained/transformers-wm and pretrained/trade: the same VAE and the same 64 rollouts), each
# tested on both sets; then one report over every run of IMAG_DIR (make imagination's too, if run). An
# iteration of theirs takes ~20 min on one CPU core and ~50 s on a GPU (docs/imagination): --device auto
# takes the first GPU. IMAG_STEPS and IMAG_FLAGS as for make imagination.
imagination-compare: $(VENV)/.installed
	$(PY) data/generation_script.py --rollouts $(AGENT_ROLLOUTS) --rootdir $(AGENT_DIR)/datasets --max-steps $(AGENT_STEPS)
	$(COPY_ONCE); for exp in transformers-wm trade; do run=$(IMAG_DIR)/$$exp; mkdir -p $$run \
		&& copy_once pretrained/$$exp/vae $$run && copy_once pretrained/$$exp/transformers_de $$run \
		&& $(PY) $$exp/trainimagination.py --logdir $$run --datadir $(AGENT_DIR)/datasets \
			--max-real-steps $(IMAG_STEPS) $(IMAG_FLAGS) \
		&& { [ $$run/imagination/test_scores.json -nt $$run/imagination/ctrl/best.tar ] \
			|| $(PY) $$exp/test_controller.py --logdir $$run/imagination --episodes $(AGENT_TEST_EPISODES) --no-video \
				--time-limit $(AGENT_STEPS); } \
		&& { [ $$run/imagination/test_scores_seed1.json -nt $$run/imagination/ctrl/best.tar ] \
			|| $(PY) $$exp/test_controller.py --logdir $$run/imagination --episodes $(AGENT_TEST_EPISODES) --seed 1 \
				--no-video --time-limit $(AGENT_STEPS); } || exit 1; done
	$(PY) utils/stages/imagination_report.py --runs $$(dirname $$(ls $(IMAG_DIR)/*/imagination/record.json)) \
		--cmaes pretrained/world-models/ctrl/tb --out $(IMAG_DIR)/report-compare
