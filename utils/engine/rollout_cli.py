"""What the rollout scripts share (traincontroller.py and test_controller.py):
their common flags, the track seeds, and the evaluation pool of --backend.
"""
from pathlib import Path

import numpy as np

from utils.constants import MAX_STEPS
from utils.devices import DEVICE_HELP, available_cpus
from utils.errors import UserError, check_flags

TRAIN_SEED_STREAM, EVAL_SEED_STREAM = 1, 2
TEST_SEED_STREAM = EVAL_SEED_STREAM + 1  # tracks unseen by training and by its evaluations (test_controller.py)
REAL_EVAL_SEED_STREAM = TEST_SEED_STREAM + 1  # a dream search's real evaluations, for its plot only
SIMULATOR_SEED_STREAM = REAL_EVAL_SEED_STREAM + 1  # utils/stages/simulators.py's tracks and dreams


def episode_seeds(seed, stream, index, count):
    """`count` env seeds, reproducible from (seed, stream, index), distinct across streams."""
    return np.random.SeedSequence([seed, stream, index]).generate_state(count).tolist()


PRECISION_HELP = ("number format of the VAE encoder and the transformers while acting (the MDN-RNN's cell and the "
                  "controllers stay fp32): bf16 is 1.3x (encoder) to 2.3x (transformer) faster on CPUs with "
                  "hardware bf16, latents within the bound of tests/test_rollout.py; auto = bf16 on such CPUs "
                  "when no GPU is used, else fp32")


def add_rollout_flags(parser, precision="auto"):
    """Flags shared by traincontroller.py and test_controller.py; `precision`: the --precision default."""
    parser.add_argument("--logdir", type=Path, required=True, help="experiment folder (holds vae/ and the dynamics model)")
    parser.add_argument("--time-limit", type=int, default=MAX_STEPS, help="steps per episode at most")
    parser.add_argument("--max-workers", type=int, default=None,
                        help="worker processes (default: one per CPU core)")
    parser.add_argument("--envs-per-worker", type=int, default=8,
                        help="environments each worker steps together (one batched forward pass for all)")
    parser.add_argument("--context", type=int, default=None,
                        help="transformers only: steps of history seen while acting (default: training length)")
    parser.add_argument("--vae", type=Path, default=None,
                        help="VAE checkpoint (default: the one the dynamics model was trained with)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (CMA-ES and episode tracks)")
    parser.add_argument("--renderer", choices=["exact", "approx", "reference"], default="exact",
                        help="how frames are drawn (data/render.py): exact = gymnasium's frames byte for byte, "
                             "faster; approx = OpenCV, an order of magnitude faster (docs/performance), within a documented bound; "
                             "reference = gymnasium's own code")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=precision,
                        help=PRECISION_HELP + (f"; default here {precision}: a test is measured in full precision, as "
                                               "every reported score" if precision == "fp32" else ""))
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="local: worker processes on this machine; ray: Ray actors across a cluster")
    parser.add_argument("--max-failures", type=int, default=3, help="stop after this many worker failures")
    parser.add_argument("--worker-timeout", type=float, default=900,
                        help="seconds of silence before a worker is replaced")
    parser.add_argument("--ray-address", default=None,
                        help="with --backend ray: the cluster to join (e.g. 10.0.0.1:6379; default: start a local Ray)")


def check_rollout_flags(parser, args):
    check_flags(parser, args, positive=("time_limit", "envs_per_worker", "max_workers", "context", "max_failures",
                                        "worker_timeout"))
    if args.logdir.exists() and not args.logdir.is_dir():
        parser.error(f"--logdir {args.logdir} is a file; give the experiment folder")
    from utils.devices import pick_device

    pick_device(args.device)  # a device that is not here: one line, before any work


def build_kwargs(args, dynamics):
    """(kwargs, lineage): what every worker needs to build its RolloutGenerator
    (utils.engine.pool.build_generator), and the lineage of the world model: {"vae_id", "dynamics_id"}
    (utils.checkpoint.weights_id).

    Refuses a VAE other than the one the dynamics model was trained on.
    """
    from utils.checkpoint import weights_id
    from utils.engine.models_io import dynamics_path, load_dynamics, load_vae, resolve_recorded_vae

    if dynamics == "mdrnn" and args.context is not None:
        raise UserError(f"--context {args.context}: the transformers' window of history; the MDN-RNN carries its "
                        "past in h and has none: drop the flag")
    # Load both models once here, so a wrong file is one clear line, not a failure in every worker.
    dyn_file = dynamics_path(args.logdir, dynamics)
    _, state = load_dynamics(dyn_file, dynamics)
    vae_file = Path(args.vae or resolve_recorded_vae(state, args.logdir)).resolve()
    if args.vae is None and not vae_file.is_file():
        raise UserError(f"{vae_file}: the VAE this dynamics model was trained with is gone; give one with --vae")
    _, vae_state = load_vae(vae_file)
    lineage = {"vae_id": weights_id(vae_state["model"]), "dynamics_id": weights_id(state["model"])}
    if state.get("vae_id", lineage["vae_id"]) != lineage["vae_id"]:
        script = "trainmdrnn.py" if dynamics == "mdrnn" else "traintransformersde.py"
        raise UserError(f"{dyn_file}: was trained on the latents of another VAE than {vae_file} (retrained since?); "
                        f"retrain it on this VAE with {script} --noreload")
    kwargs = {"logdir": str(args.logdir.resolve()), "dynamics": dynamics, "time_limit": args.time_limit,
              "context": (args.context or state.get("seq_len")) if dynamics != "mdrnn" else None,
              "vae": str(vae_file), "env_kwargs": {"renderer": args.renderer}, "precision": resolve_precision(args)}
    return kwargs, lineage


def resolve_precision(args):
    """--precision as the workers use it: "fp32" or "bf16" (auto: bf16 on a CPU with hardware bf16 and no GPU)."""
    if args.precision != "auto":
        return args.precision
    from utils.devices import native_bf16, use_gpus

    # Ray actors may run on other machines: auto means fp32 there, the safe choice everywhere.
    return "bf16" if args.backend == "local" and not use_gpus(args.device) and native_bf16() else "fp32"


def changed_model(state, lineage):
    """The name of the world model part ("VAE" or "dynamics model") whose weights differ
    from those a checkpoint recorded, or None (also for checkpoints that recorded none)."""
    for key, model in (("vae_id", "VAE"), ("dynamics_id", "dynamics model")):
        if state.get(key, lineage[key]) != lineage[key]:
            return model
    return None


def make_pool(args, kwargs, workers):
    """The evaluation pool of --backend: utils.engine.pool.WorkerPool or utils.engine.ray_pool.RayPool
    (same interface)."""
    if args.backend == "ray":
        from utils.engine.ray_pool import RayPool

        # workers=None: one actor per CPU of the whole cluster, not of this machine
        try:
            return RayPool(args.max_workers, args.envs_per_worker, kwargs, args.max_failures, args.worker_timeout,
                           address=args.ray_address)
        except ConnectionError as err:
            raise UserError(f"--ray-address {args.ray_address}: cannot join the Ray cluster ({err})") from None
    from utils.engine.pool import WorkerPool

    from utils.devices import use_gpus

    return WorkerPool(workers, args.envs_per_worker, kwargs, args.max_failures, args.worker_timeout,
                      device=use_gpus(args.device))


def n_workers(args):
    return args.max_workers or available_cpus()


def workers_for(args, n_tasks):
    """Workers for a one-off batch of n_tasks episodes: no more than their slots fill."""
    return min(n_workers(args), -(-n_tasks // args.envs_per_worker))
