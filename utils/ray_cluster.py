"""Joining or starting Ray, for every `--backend ray` (controller training and
testing: utils/engine/ray_pool.py; data generation: data/generation_script.py).

Where Ray runs:
- address=None: join the Ray instance this process already started, or start
  a local one, bound to the loopback interface, without a dashboard; the
  caller shuts it down when done.
- address="HOST:6379" (or "auto" on a node of a cluster started with
  `ray start`): join that cluster. The workers import this repository through
  PYTHONPATH, so the repository must sit at the same path on every node, with
  the same Python packages; the experiment folder (--logdir, --vae) and the
  rollouts' --rootdir must be readable, resp. writable, at the same path on
  every node too (a shared filesystem). A cluster with token authentication
  (Ray >= 2.59) takes an explicit address only from a process that has
  RAY_AUTH_MODE=token and the cluster's token (~/.ray/auth_token or
  RAY_AUTH_TOKEN); "auto" finds the token by itself.

Importing this module does not import ray: it is an optional dependency
(requirements-ray.txt), imported inside the functions that use it.
"""
import os

from utils.constants import REPO_ROOT
from utils.errors import UserError

LOCAL_OBJECT_STORE = 128 * 2**20  # bytes: only Tasks and returns travel through it


def import_ray(local):
    """Import ray with usage statistics off; local: make a Ray started here bind to 127.0.0.1 only.

    Ray reads both variables when it is first imported. Ray turns an explicit
    node IP of 127.0.0.1 into the machine's network address; with its
    single-machine mode (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) every server of
    the local instance listens on the loopback interface.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install -r requirements-ray.txt") from None
    return ray


def init_ray(address=None, num_cpus=None):
    """Connect to Ray. Returns (ray, owned): owned is True when this call started
    or joined Ray and the caller should ray.shutdown() when done.

    address: None (reuse this process's Ray, else start a new local one with
    num_cpus CPUs) or a cluster address ("auto": the cluster `ray start` made
    on this machine). The workers get the repository on their PYTHONPATH.
    """
    ray = import_ray(local=address is None)
    if ray.is_initialized():
        return ray, False
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    runtime_env = {"env_vars": {"PYTHONPATH": path}}
    if address is None:  # "local": a new instance, even where `ray start` left one (or its traces) here
        ray.init(address="local", include_dashboard=False, num_cpus=num_cpus,
                 object_store_memory=LOCAL_OBJECT_STORE, runtime_env=runtime_env, logging_level="warning")
    else:
        ray.init(address=address, runtime_env=runtime_env, logging_level="warning")
    return ray, True
