"""utils/config.py: one configuration object per run, its flags, its record and the resume check."""
from dataclasses import dataclass

import pytest

from utils.config import Config, ConfigError, check_resume, flag, parse


@dataclass
class Toy(Config):
    steps: int = flag(10, "steps")
    rate: float = flag(0.5, "a rate")
    name: str = flag("a", "a name", choices=["a", "b"])
    fast: bool = flag(False, "a switch")
    workers: int = flag(1, "free to change on resume")
    RESUME = ("steps", "rate", "name", "fast")
    RECORDED_SINCE = {"fast": True}  # runs recorded before `fast` existed ran fast

    def validate(self):
        self.positive("steps")


def test_flags_parse_to_the_fields_and_validate_refuses_in_one_line():
    toy = parse(Toy, ["--steps", "3", "--rate", "0.25", "--name", "b", "--fast"])
    assert toy.record() == {"steps": 3, "rate": 0.25, "name": "b", "fast": True, "workers": 1}
    with pytest.raises(ConfigError, match=r"^--steps 0: must be > 0$"):
        parse(Toy, ["--steps", "0"])


def test_resume_checks_the_declared_fields_and_missing_ones_count_as_their_old_values():
    toy = parse(Toy, ["--workers", "4", "--fast"])
    check_resume(toy, {"steps": 10, "rate": 0.5, "name": "a", "fast": True, "workers": 2}, "run")  # workers free
    with pytest.raises(ConfigError, match=r"run: this run was made with --steps 20, not 10"):
        check_resume(toy, {"steps": 20, "rate": 0.5, "name": "a", "fast": True}, "run")
    # a record made before `rate` and `fast` existed: rate counts as its default, fast as RECORDED_SINCE says
    check_resume(toy, {"steps": 10, "name": "a"}, "run")
    with pytest.raises(ConfigError, match="made with --fast True, not False"):
        check_resume(parse(Toy, []), {"steps": 10, "name": "a"}, "run")


def test_a_script_reads_its_commit_before_it_runs():
    """run_main reads the commit as the script starts, so a record written hours later names the code that
    ran even if the checkout moved meanwhile."""
    from utils.errors import git_commit, run_main

    git_commit.cache_clear()
    read_before = []
    run_main(lambda argv: read_before.append(git_commit.cache_info().currsize))
    assert read_before == [1]
