"""--device: one meaning in every stage (utils/devices.py), checked here without a GPU."""
import os

import pytest

from utils.devices import pick_device, use_gpus, worker_devices
from utils.errors import UserError


def test_cuda_n_puts_every_worker_on_gpu_n_and_cuda_spreads_them():
    assert worker_devices(3, "cuda:2") == ["cuda:2"] * 3
    assert worker_devices(2, None) == ["cpu", "cpu"]  # no GPU visible here (tests/conftest.py hides them)


def test_cpu_hides_the_gpus_and_a_device_that_is_not_here_is_one_line(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert use_gpus("cpu") is None and os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert use_gpus("auto") is None  # no GPU here: the CPU, asked twice, the same answer
    assert use_gpus("auto") is None
    with pytest.raises(UserError, match=r"^--device cuda:1: CUDA is not available here; use --device cpu$"):
        use_gpus("cuda:1")
    with pytest.raises(UserError, match="--device tpu: not a device"):
        pick_device("tpu")
