"""The recipe of docs/usage, walked as written at toy scale: its commands are read
from the page itself (scale flags appended), in a fresh copy of the code; and the
README's one command per stage is a command of that recipe."""
import re
import shutil
import sys

import pytest

from tests.conftest import ROOT

# Flags appended to each command: argparse keeps the last value of a flag.
SCALE = {
    "data/generation_script.py": ["--rollouts", 4, "--max-steps", 50, "--threads", 2],
    "trainvae.py": ["--epochs", 1],
    "trainmdrnn.py": ["--epochs", 1, "--seq-len", 8],
    "traintransformersde.py": ["--epochs", 1, "--seq-len", 8],
    "traincontroller.py": ["--n-samples", 1, "--pop-size", 2, "--max-generations", 1, "--eval-every", 1,
                           "--eval-rollouts", 1, "--time-limit", 20, "--max-workers", 1, "--envs-per-worker", 2],
    "trainimagination.py": ["--max-iterations", 1, "--envs", 2, "--time-limit", 20, "--pretrain", 2, "--train-ratio", 2,
                            "--batch-size", 4, "--seq-len", 8, "--past", 8, "--imag-batch", 8, "--horizon", 3,
                            "--eval-every", 0, "--critic-units", 16],
    "test_controller.py": ["--episodes", 2, "--time-limit", 20, "--max-workers", 1],
    "utils/stages/report.py": [],
}
CODE = ("data", "models", "utils", "world-models", "transformers-wm", "trade")


def section_commands(page, title):
    """The indented `python ...` and `tensorboard ...` lines of the section `title` of a markdown page (its
    comments after `#` left out)."""
    text = (ROOT / page).read_text()
    body = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0].replace("\\\n", " ")  # join continued lines
    return [line.split(" # ")[0].strip() for line in body.splitlines() if re.match(r"    (python|tensorboard) ", line)]


def scaled(command):
    words = command.split()
    if words[0] == "tensorboard":
        return [sys.executable, "-m", "tensorboard.main", *words[1:], "--inspect"]  # reads the logs, serves nothing
    script = words[1]
    flags = next(v for k, v in SCALE.items() if script.endswith(k))
    return [sys.executable, *words[1:], *map(str, flags)]


@pytest.fixture
def clone(tmp_path):
    """The code as a fresh clone has it, without data, runs or caches."""
    for folder in CODE:
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def walk(commands, cwd):
    import subprocess

    for command in commands:
        proc = subprocess.run(scaled(command), cwd=cwd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"command failed: {command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


RECIPE = ("docs/usage/README.md", "The full recipe, stage by stage")


def test_the_readme_stages_are_commands_of_the_recipe():
    """The README gives one command per stage; each is walked by the test below, as a command of the recipe
    (the same script and logdir, every flag and value of the README's among the recipe's)."""
    recipe = [command.split() for command in section_commands(*RECIPE)]
    stages = section_commands("README.md", "The stages, one command each")
    assert len(stages) >= 6
    for command in stages:
        words = command.split()
        assert any(r[:4] == words[:4] and set(words) <= set(r) for r in recipe), f"not in docs/usage's recipe: {command}"


def test_the_full_recipe_runs_as_written(clone):
    commands = section_commands(*RECIPE)
    scripts = [c.split()[1] for c in commands if c.startswith("python")]
    for folder in ("world-models", "transformers-wm", "trade"):  # every stage of every experiment is there
        assert f"{folder}/traincontroller.py" in scripts and f"{folder}/test_controller.py" in scripts
    walk(commands, clone)
    for folder in ("world-models", "transformers-wm", "trade"):
        assert (clone / "runs" / folder / "test_scores.json").is_file()
    assert (clone / "runs" / "report" / "report.md").read_text().count("| world-models |") == 1


def test_the_ray_section_runs_after_the_recipe(clone):
    pytest.importorskip("ray")
    recipe = [c for c in section_commands(*RECIPE)
              if c.split()[1] in ("data/generation_script.py", "world-models/trainvae.py", "world-models/trainmdrnn.py")]
    local = [c for c in section_commands("docs/machines/README.md", "Running on a Ray cluster (`--backend ray`)") if "--ray-address" not in c]
    assert local, "the Ray section has no single-machine command"
    walk(recipe + local, clone)
    assert (clone / "runs" / "world-models" / "ctrl" / "checkpoint.tar").is_file()


def test_the_readme_is_one_short_page_with_the_two_commands_first():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; its topics belong on docs/ pages"
    first = "\n".join(lines[:40])
    assert "    make quickstart" in first and "    make test" in first
