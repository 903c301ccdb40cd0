"""utils/devices.py: the thread pools of a worker process."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_one_thread_per_worker_sets_torch_and_opencv():
    """Both pools start with more threads on a multi-core machine (here forced
    to 2), and one_thread_per_worker leaves one each; in a fresh interpreter, so
    this test process keeps its own settings."""
    code = ("import cv2, torch\n"
            "torch.set_num_threads(2); cv2.setNumThreads(2)\n"
            "before = (torch.get_num_threads(), cv2.getNumThreads())\n"
            "from utils.devices import one_thread_per_worker\n"
            "one_thread_per_worker()\n"
            "print(before, (torch.get_num_threads(), cv2.getNumThreads()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    assert out.strip() == "(2, 2) (1, 1)"
