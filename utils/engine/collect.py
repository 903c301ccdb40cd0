"""Rollouts driven by a trained agent, for the iterative data collection of World
Models (random rollouts, train, collect with the controller, retrain):
`python data/generation_script.py --controller LOGDIR --action-noise 0.1`.

Each process of the script builds one RolloutGenerator of the agent's world
model (once) and plays rollout i on track seed + i with the agent's controller
(LOGDIR/ctrl/best.tar), plus Gaussian action noise drawn from the same seed,
recording what data/generation.py records for a random rollout. An agent that
holds each action for several env steps (trainimagination.py --action-repeat)
is recorded as it sees the world: one step per action, its rewards summed.
"""
from pathlib import Path


_generators = {}  # per process: (logdir, max_steps, renderer) -> (generator, controller parameters)


def agent(logdir):
    """(dynamics kind, controller checkpoint) of the agent in logdir; UserError if it has none."""
    from utils.checkpoint import load_checkpoint
    from utils.engine.models_io import find_dynamics
    from utils.errors import UserError

    dynamics = find_dynamics(logdir)
    if dynamics is None:
        raise UserError(f"--controller {logdir}: no trained dynamics model in it; give an experiment folder "
                        "with a trained controller (ctrl/best.tar)")
    state = load_checkpoint(Path(logdir) / "ctrl" / "best.tar", "controller",
                            hint="give an experiment folder with a trained controller (traincontroller.py)")
    return dynamics, state


def collect_rollout(index, rootdir, threads, max_steps, seed, renderer, logdir, action_noise):
    """Play rollout `index` with the agent of logdir and save it (data.generation.save_rollout).
    Returns its length."""
    from data.generation import rollout_path, save_rollout
    from utils.devices import one_thread_per_worker
    from utils.engine.pool import build_generator
    from utils.engine.rollout import Task, play, recorder

    key = (str(logdir), max_steps, renderer, action_noise)
    if key not in _generators:
        one_thread_per_worker()  # one core per process, as the pool's workers
        dynamics, state = agent(logdir)
        generator = build_generator(str(logdir), dynamics, "cpu", n_envs=1, time_limit=max_steps,
                                    env_kwargs={"renderer": renderer}, action_noise=action_noise,
                                    controller_inputs=state.get("controller_inputs", "zh"),
                                    untrained_dynamics=state.get("untrained_dynamics", False),
                                    action_repeat=state.get("action_repeat", 1))
        _generators[key] = (generator, state["params"].numpy())
    generator, params = _generators[key]
    (episode,), observe = recorder(1)
    play(generator, [Task(index, params, seed + index)], observe)
    save_rollout(rollout_path(rootdir, index, threads), episode["frames"], episode["actions"], episode["rewards"],
                 episode["ends"])
    return len(episode["frames"])


def collect_job(job):
    """collect_rollout(*job): what each process or Ray task of data/generation_script.py runs."""
    return collect_rollout(*job)
