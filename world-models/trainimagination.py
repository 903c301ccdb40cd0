"""Learn to drive inside the dynamics model's imagination (world-models), on data the learner collects as it learns:
python trainimagination.py --logdir exp_dir

Thin entry point; the work is in utils/stages/imagination.py, shared by every experiment.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.stages.imagination import main  # noqa: E402
from utils.errors import run_main  # noqa: E402

if __name__ == "__main__":
    run_main(lambda argv: main("mdrnn", argv))
