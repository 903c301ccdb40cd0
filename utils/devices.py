"""Where the work runs: CPU cores and CUDA devices, chosen in one place."""
import os

import torch

from utils.errors import UserError


def available_cpus():
    """CPU cores this process may use (its affinity where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)


def one_thread_per_worker():
    """Give this process's own thread pools one thread each: torch's and
    OpenCV's (the approx renderer's). The pools run one worker per core, where
    a second thread can only take time from the next worker: on the 2-core
    machine, the approx renderer's shrinking of 16 stacked frames costs
    260-330 us of CPU with OpenCV's default 2 threads, 210 us with one."""
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def native_bf16():
    """True when this CPU has bfloat16 arithmetic in hardware (AVX512-BF16 or AMX;
    Linux's /proc/cpuinfo tells). There oneDNN runs bf16 matmuls and convolutions
    faster than float32; elsewhere bf16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_device(name="auto"):
    """--device of the training scripts: 'auto' (first GPU, else CPU), 'cpu', 'cuda' or 'cuda:N'."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible; "
                            f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    elif device.type != "cpu":
        raise UserError(f"--device {name}: use auto, cpu, cuda or cuda:N")
    return device


DEVICE_HELP = ("where the models run: auto (every visible GPU, else the CPU), cpu, cuda (every visible GPU) or "
               "cuda:N (GPU N only)")


def use_gpus(device_flag):
    """--device of the rollout scripts (the same values as the training scripts', DEVICE_HELP): the device the
    workers use, "cuda" (spread over every visible GPU, also for 'auto' where one is) or "cuda:N" (GPU N
    alone), or None (the CPU: 'cpu' also hides the GPUs from this process and the workers it starts). A
    device that is not here is refused (pick_device's one line). Changes nothing but for 'cpu', so a second
    call answers as the first."""
    device = pick_device(device_flag)
    if device.type == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # inherited by spawned workers and Ray actors started here
        return None
    return str(device)


def worker_devices(n_workers, device="cuda"):
    """Device of each rollout worker: device "cuda:N" for all, or for "cuda" the visible GPUs in turn, else the CPU."""
    if device and device.startswith("cuda:"):
        return [device] * n_workers
    n_gpus = torch.cuda.device_count()
    return [f"cuda:{i % n_gpus}" if n_gpus else "cpu" for i in range(n_workers)]
