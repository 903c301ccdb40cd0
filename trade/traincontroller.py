"""Train the controller with CMA-ES (trade: TraDE): python traincontroller.py --logdir exp_dir

Thin entry point; the work is in utils/stages/controller.py, shared by every experiment.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.stages.controller import main  # noqa: E402
from utils.errors import run_main  # noqa: E402

if __name__ == "__main__":
    run_main(lambda argv: main("trade", argv))
