"""Every score quoted as a link to its record, `[mean +- std](path/to/test_scores.json)`, in README.md and
docs/, is the record's: a stale number fails here. A record is test_controller.py's score file: its
returns, and the mean and std of them; those the README links to also say what was run, on which commit
and machine."""
import functools
import json
import re

import numpy as np
import pytest

from tests.conftest import ROOT

SCORE_LINK = re.compile(r"\[(-?[0-9.]+) \+- ([0-9.]+)\]\(([^)\s]+\.json)\)")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def quoted_scores():
    """(page, mean text, std text, record path) for every score link of the pages."""
    for page in PAGES:
        for mean, std, target in SCORE_LINK.findall(page.read_text()):
            yield page, mean, std, (page.parent / target).resolve()


def test_the_readme_quotes_every_shipped_agent_on_both_sets_of_tracks():
    linked = {path for page, _, _, path in quoted_scores() if page.name == "README.md" and page.parent == ROOT}
    for agent in sorted(p for p in (ROOT / "pretrained").iterdir() if p.is_dir()):
        for name in ("test_scores.json", "test_scores_seed1.json"):
            assert agent / name in linked, f"README.md does not quote {agent.name}/{name}"
    assert "SCORE" not in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("page,mean,std,path", list(quoted_scores()),
                         ids=lambda x: x.relative_to(ROOT).as_posix() if hasattr(x, "relative_to") else str(x))
def test_a_quoted_score_is_its_record(page, mean, std, path):
    assert path.is_file(), f"{page.relative_to(ROOT)} links to a missing record {path}"
    record = json.loads(path.read_text())
    returns = np.array(record["returns"])
    assert len(returns) == record["episodes"]
    assert (returns.mean(), returns.std()) == pytest.approx((record["mean"], record["std"]), abs=1e-6)
    assert (mean, std) == (f"{record['mean']:.1f}", f"{record['std']:.1f}"), \
        f"{page.relative_to(ROOT)} quotes {mean} +- {std}; {path.relative_to(ROOT)} holds " \
        f"{record['mean']:.1f} +- {record['std']:.1f}"
    if page == ROOT / "README.md":
        assert record["commit"] and record["machine"]["cpus"] and record["command"].startswith("python ")


def imagination_rows():
    """The rows utils/stages/imagination_report.py makes of docs/imagination's runs' records: two tables per
    group of runs (its results, its blocks of iterations), the runs of the page's folder (run*/, blocks of 10),
    the runs carried to their budget beside the first run (budget/*/, blocks of 20), the steer-gas runs beside
    the run they vary (steer-gas/*/, blocks of 10), the real-value runs beside the steer-gas seeds they vary
    (real-value/*/, blocks of 10), the mean-episodes runs beside the steer-gas seed 0 they vary
    (mean-episodes/*/, blocks of 10), the action-repeat runs beside the steer-gas seed 0 they vary
    (action-repeat/*/, blocks of 10), the action-repeat run carried to its budget beside the first budget run
    (budget-ar4/*/, blocks of 20) and those of the GPU machine (gpu/*/, blocks of 5)."""
    from utils.stages.imagination_report import blocks, load_run, table

    docs = ROOT / "docs" / "imagination"
    gpu = [docs / "gpu" / name for name in ("world-models", "transformers-wm", "trade")]  # the page's order
    assert sorted(gpu) == sorted(p.parent for p in docs.glob("gpu/*/record.json"))
    rows = []
    budget = [docs / "run", *sorted(p.parent for p in docs.glob("budget/*/record.json"))]
    steer_gas = [docs / "run-ent-action-rw10", *sorted(p.parent for p in docs.glob("steer-gas/*/record.json"))]
    real_value = [docs / "steer-gas" / "seed0", docs / "steer-gas" / "seed1",
                  *sorted(p.parent for p in docs.glob("real-value/*/record.json"))]
    mean_episodes = [docs / "steer-gas" / "seed0", *sorted(p.parent for p in docs.glob("mean-episodes/*/record.json"))]
    action_repeat = [docs / "steer-gas" / "seed0", *sorted(p.parent for p in docs.glob("action-repeat/*/record.json"))]
    budget_ar4 = [docs / "budget" / "ent-action-rw10", *sorted(p.parent for p in docs.glob("budget-ar4/*/record.json"))]
    for group, size in ((sorted(docs.glob("run*")), 10), (budget, 20), (steer_gas, 10), (real_value, 10),
                        (mean_episodes, 10), (action_repeat, 10), (budget_ar4, 20), (gpu, 5)):
        assert group, "a group of runs has no record"
        runs = [load_run(run) for run in group]
        rows += table(runs, docs).splitlines()[2:] + blocks(runs, size).splitlines()
    return rows


def test_the_imagination_table_is_made_from_its_records():
    """docs/imagination's results rows are what utils/stages/imagination_report.py makes of its runs' records."""
    page = (ROOT / "docs" / "imagination" / "README.md").read_text()
    for row in imagination_rows():
        assert row in page, f"docs/imagination/README.md lacks the row its records give:\n{row}"


TIME_LINK = re.compile(r"\[([0-9.]+) min\]\(([^)\s]+\.json)\)")


def test_a_quoted_time_is_its_record():
    """`[N min](record.json)`: a wall time quoted from a record (bench/time_command.py's, or a test's)."""
    for page in PAGES:
        assert not re.search(r"\[[^\]0-9]* min\]\(", page.read_text()), f"{page.relative_to(ROOT)}: a time without its number"
        for minutes, target in TIME_LINK.findall(page.read_text()):
            record = json.loads((page.parent / target).read_text())
            decimals = len(minutes.split(".")[1]) if "." in minutes else 0
            assert f"{record['seconds'] / 60:.{decimals}f}" == minutes, f"{page.relative_to(ROOT)}: {minutes} min"
            assert record["commit"] and record["machine"]["cpus"] and record.get("exit_status", 0) == 0


def test_every_relative_link_resolves():
    """A link of README.md or docs/ to a file of the repository (a record, a figure, a page) names one that exists."""
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address, or a heading of the same page
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links to nothing:\n" + "\n".join(broken)


DECIMAL = re.compile(r"(?<![\w.])-?\d[\d,]*\.\d+(?!\d|\.\d)")  # 878.1, -0.35, 1,234.5, 1.5x; not 12, 3.10.2
NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
SOURCE_LINK = re.compile(r"\]\(([^)#\s]+)[^)]*\)")


@functools.lru_cache(maxsize=None)
def record_numbers(path):
    """The numbers a record holds: those written in it (1,234 read as one number, 1,2 as two), and, of a
    json, test_controller.py's 95% interval of a score (mean -/+ 1.96 std / sqrt(episodes)) and a wall time
    in minutes and hours."""
    text = path.read_text()
    numbers = {float(n.replace(",", "")) for n in NUMBER.findall(text)}
    numbers |= {float(n) for n in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?", text)}
    if path.suffix == ".json":
        record = json.loads(text)
        if isinstance(record, dict) and {"mean", "std", "episodes"} <= set(record):
            half = 1.96 * record["std"] / record["episodes"] ** 0.5
            numbers |= {record["mean"] - half, record["mean"] + half}
        if isinstance(record, dict) and isinstance(record.get("seconds"), (int, float)):
            numbers |= {record["seconds"] / 60, record["seconds"] / 3600}
    return numbers


def tables(page):
    """(line number, line) of each table of a markdown page: its consecutive lines that start with `|` (or
    with spaces and `|`, a table in a list)."""
    table = []
    for number, line in enumerate(page.read_text().splitlines() + [""], 1):
        if line.lstrip().startswith("|"):
            table.append((number, line))
        elif table:
            yield table
            table = []


def sources(page, line):
    """The records a table line links to: files of the repository, a json, md or txt (a TensorBoard folder
    is not one to read a number from)."""
    targets = (page.parent / t for t in SOURCE_LINK.findall(line) if not re.match(r"[a-z]+:", t))
    return [t.resolve() for t in targets if t.is_file() and t.suffix in (".json", ".md", ".txt")]


def is_one_of(shown, numbers):
    """Whether a number as shown, 878.1, is one of `numbers` to its digits: within half a unit of its last."""
    value, half = float(shown.replace(",", "")), 0.5 * 10 ** -len(shown.split(".")[1])
    return any(abs(value - n) <= half + 1e-9 for n in numbers)


# The tables whose decimal numbers are settings, not results: (page, its header row), each with why. Every
# other table of README.md or docs/**/README.md with a decimal number links its records.
SETTINGS_TABLES = {
    # the differences from the original codes: the reward per step, the thresholds (0.5), the initial range
    # of a weight (+-0.059), CMA-ES's step size and --test-fraction (0.1) are what the code is set to
    ("README.md", "| what | here | originals | why, and what it does to comparability |"),
    # make agent's recipe: its decimals are the --action-noise it leaves out (0.1); the rows quoting a
    # result (a time, a loss) link report.md
    ("docs/agent/README.md", "| stage | choice | why |"),
    # make dream's recipe: the temperature (1.15) and the action noise (0.1) are flags of its rounds
    ("docs/dream/README.md", "| round | data added (real env steps) | MDN-RNN (with its reward head) | search in its dream |"),
}


def test_a_table_is_made_from_its_records():
    """A results table of README.md or docs/**/README.md is made from the records it links to, in its header
    (the table's) or in a row (the row's): every decimal number of a row with records is one of theirs to the
    digits shown, so a table left behind when its records change fails here; a row with a decimal number and
    no record fails too, unless its table is one of SETTINGS_TABLES. Integers (counts, seeds) are not read;
    docs/imagination's generated rows are checked whole by the test above."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/README.md"))]
    imagination = ROOT / "docs" / "imagination" / "README.md"
    generated = set(imagination_rows())
    headers = {(page.relative_to(ROOT).as_posix(), header.strip()) for page in pages for (_, header), *_ in tables(page)}
    assert SETTINGS_TABLES <= headers, f"settings tables not found: {sorted(SETTINGS_TABLES - headers)}"
    stale, unsourced = [], []
    for page in pages:
        for (_, header), *rows in tables(page):
            settings = (page.relative_to(ROOT).as_posix(), header.strip()) in SETTINGS_TABLES
            for number, line in rows:
                if page == imagination and line in generated:
                    continue
                records = sources(page, header) + sources(page, line)
                decimals = DECIMAL.findall(SOURCE_LINK.sub("]", line))
                if not records:
                    if decimals and not settings:
                        unsourced.append(f"{page.relative_to(ROOT)}:{number}: {', '.join(decimals)}")
                    continue
                held = set().union(*map(record_numbers, records))
                missing = [x for x in decimals if not is_one_of(x, held)]
                if missing:
                    stale.append(f"{page.relative_to(ROOT)}:{number}: {', '.join(missing)} in none of "
                                 f"{', '.join(r.relative_to(ROOT).as_posix() for r in records)}")
    assert not stale, "table numbers their records do not hold:\n" + "\n".join(stale)
    assert not unsourced, "table numbers without a record (link one in the header or the row):\n" + "\n".join(unsourced)


# Report pages read from logdirs that are not kept, so without the record report.py and dream_report.py now write
# beside a page (command, commit, machine, per-episode returns); each says so in its last line.
UNRECORDED_REPORTS = {
    "docs/agent/finetune/report.md", "docs/agent/r2/report.md", "docs/agent/report.md",
    "docs/comparison/ablation/report.md", "docs/comparison/models/report.md", "docs/comparison/report.md",
    "docs/dream/branch/dream_report.md", "docs/dream/ensemble/dream_report.md", "docs/dream/models/dream_report.md",
    "docs/dream/models/report.md", "docs/dream/rounds/dream_report.md", "docs/dream/temperatures/dream_report.md",
}


def test_a_report_page_has_its_record_beside_it():
    """A page made by report.py or dream_report.py has its json record beside it (report.json,
    dream_report.json), or is one of UNRECORDED_REPORTS and says so."""
    made = {p for p in (ROOT / "docs").rglob("*.md")
            if re.search(r"Made by `python utils/stages/(dream_)?report\.py ", p.read_text())}
    assert made, "no report page found"
    for page in made:
        name = page.relative_to(ROOT).as_posix()
        if name in UNRECORDED_REPORTS:
            assert "This page has no record" in page.read_text(), f"{name} does not say it has no record"
        else:
            assert page.with_suffix(".json").is_file(), f"{name} has no record beside it ({page.stem}.json)"
    assert UNRECORDED_REPORTS <= {p.relative_to(ROOT).as_posix() for p in made}
