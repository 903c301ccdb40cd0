"""pycma's CMA-ES, with its state saved as plain tensors so that a resumed run
continues the same search (mean, covariance, step size, evolution paths,
generation count, best so far) from a checkpoint that cannot run code.

A resumed search is the same distribution, not bit for bit the same samples:
the eigendecomposition of C is recomputed and the random stream is reseeded.
"""
import warnings

import numpy as np
import torch

from utils.errors import UserError

# pycma has no public way to set a search's state: restore_es uses these attributes of a new
# CMAEvolutionStrategy (and sets mean_old and timer, which its first tell() would make)
# (requirements.txt pins the pycma releases tests/test_cmaes.py passed with).
PYCMA_INTERNALS = ("sm.C", "sm.update_now", "_updateBDfromSM", "pc", "adapt_sigma.initialize", "countiter",
                   "countevals", "best")


def make_es(x0, sigma0, popsize, seed):
    """A CMAEvolutionStrategy that writes no files (pycma logs to ./outcmaes by default) and prints nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not import matplotlib": plotting is not used
        import cma
    # CSA (cumulative step-size adaptation, the textbook CMA-ES rule) rather than
    # pycma's default TPA in high dimension: its whole state is the path ps, so
    # it can be saved and restored as a tensor.
    opts = {"popsize": popsize, "seed": seed + 1, "verbose": -9, "verb_log": 0, "verb_disp": 0,
            "AdaptSigma": cma.sigma_adaptation.CMAAdaptSigmaCSA}
    return cma.CMAEvolutionStrategy(np.asarray(x0, np.float64), sigma0, opts)


def es_state(es):
    """The search state as tensors and numbers (for utils.checkpoint.save_checkpoint)."""
    t = lambda a: torch.from_numpy(np.array(a, np.float64))  # noqa: E731
    best_x = es.best.x if es.best.x is not None else es.mean
    best_f = es.best.f if es.best.f is not None else float("inf")
    return {"mean": t(es.mean), "sigma": float(es.sigma), "C": t(es.sm.C), "pc": t(es.pc),
            "ps": t(es.adapt_sigma.ps), "countiter": int(es.countiter), "countevals": int(es.countevals),
            "best_x": t(best_x), "best_f": float(best_f), "popsize": int(es.popsize)}


def restore_es(state, seed):
    """Rebuild a CMAEvolutionStrategy from es_state(...)."""
    from cma.utilities.utils import ElapsedWCTime

    import cma

    mean = state["mean"].numpy()
    es = make_es(mean, state["sigma"], state["popsize"], seed + state["countiter"])
    for name in PYCMA_INTERNALS:
        owner = es
        for part in name.split("."):
            if not hasattr(owner, part):
                raise UserError(f"pycma {cma.__version__} has no {name}, which resuming a search needs; "
                                "install a tested release: pip install -r requirements.txt")
            owner = getattr(owner, part)
    es.sm.C = state["C"].numpy().copy()
    es.sm.update_now(-1)  # eigendecomposition of the restored C (-1: now; 0 does nothing before a first tell)
    es._updateBDfromSM()
    es.pc = state["pc"].numpy().copy()
    es.adapt_sigma.initialize(es)  # its settings (cs, damps) as at the first generation; then the saved path
    es.adapt_sigma.ps = state["ps"].numpy().copy()
    es.countiter, es.countevals = state["countiter"], state["countevals"]
    es.mean_old = mean.copy()
    es.timer = ElapsedWCTime()
    if np.isfinite(state["best_f"]):
        es.best.x, es.best.f, es.best.evals = state["best_x"].numpy().copy(), state["best_f"], state["countevals"]
    return es
