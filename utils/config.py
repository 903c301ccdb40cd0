"""One configuration object per run: its flags in one dataclass, parsed, checked, recorded and compared.

A stage declares its configuration as a dataclass whose fields are made with `flag()`: the default, the
help text and the argparse options sit beside the field, so the flag, its default and its record are one
thing. Then

    config = parse(MyConfig, argv, description)   # --help, types, choices; validate() refuses bad values
    record = config.record()                     # every field, plain values: saved in each checkpoint
    check_resume(config, state["config"], path)  # the RESUME fields must match the recorded run's

`validate()` is the one place a stage refuses a value: it raises ConfigError with one line naming the flag,
before anything is written. RESUME names the fields a resumed run must share with the run it continues (a
different seed or budget would silently make another run); the others (a worker count, a display switch)
may change between a run and its resume. A record made before a field existed counts as that field's
RECORDED_SINCE value, the one those runs ran with.
"""
import dataclasses
from pathlib import Path

from utils.errors import Parser, UserError, git_commit


class ConfigError(UserError):
    """A flag's value is refused: one line naming the flag and what to do."""


def flag(default, help, **argparse_options):
    """A configuration field: its default, its --help text, and extra argparse options (choices, type,
    action, metavar)."""
    return dataclasses.field(default=default, metadata={"help": help, **argparse_options})


def flag_name(field_name):
    return "--" + field_name.replace("_", "-")


class Config:
    """Base of a stage's configuration dataclass (see the module's docstring)."""

    RESUME = ()  # fields a resumed run must share with the recorded one
    RECORDED_SINCE = {}  # field -> the value of runs recorded before the field existed

    def validate(self):
        """Refuse impossible or meaningless values (ConfigError, one line); nothing written yet."""

    def record(self):
        """Every field as a plain value (paths as strings): what checkpoints and score files hold."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def refuse(self, name, why):
        raise ConfigError(f"{flag_name(name)} {plain(getattr(self, name))}: {why}")

    def positive(self, *names):
        for name in names:
            if not getattr(self, name) > 0:
                self.refuse(name, "must be > 0")

    def non_negative(self, *names):
        for name in names:
            if not getattr(self, name) >= 0:
                self.refuse(name, "must be >= 0")

    def within(self, name, low, high):
        """low <= value <= high."""
        if not low <= getattr(self, name) <= high:
            self.refuse(name, f"must be in [{low}, {high}]")


def plain(value):
    """A flag's value as checkpoints and json files hold it: numbers, strings, booleans, None and lists of
    these as they are, anything else (a path, a torch.device) as its string."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def parser_for(cls, description):
    """An argparse parser (utils.errors.Parser: one-line errors, defaults in --help) with one flag per field."""
    parser = Parser(description=description)
    for f in dataclasses.fields(cls):
        options = dict(f.metadata)
        help_text = options.pop("help")
        if f.type in (bool, "bool") and "action" not in options:
            options["action"] = "store_true"
        elif "action" not in options:
            options.setdefault("type", {"int": int, "float": float, "str": str, "Path": Path}.get(
                f.type if isinstance(f.type, str) else f.type.__name__, None) or type(f.default))
        parser.add_argument(flag_name(f.name), dest=f.name, default=f.default, help=help_text, **options)
    return parser


def parse(cls, argv=None, description=""):
    """The configuration of cls from the command line (argv; sys.argv when None), validated."""
    args = parser_for(cls, description).parse_args(argv)
    config = cls(**vars(args))
    config.validate()
    return config


def check_resume(config, recorded, path):
    """Refuse to continue the run recorded at `path` (its config dict `recorded`) with other values of
    config.RESUME: one line naming the first flag that differs and its recorded value."""
    defaults = {f.name: plain(f.default) for f in dataclasses.fields(config)}
    same_as_recorded(config.record(), recorded, config.RESUME, path, {**defaults, **config.RECORDED_SINCE})


def same_as_recorded(current, recorded, fields, path, defaults):
    """The resume check of every stage: current and recorded are configuration dicts (record(), record_args());
    each of `fields` must be equal in both. A record that lacks a field counts as defaults[field] (runs made
    before the field was recorded ran with its default). recorded None (a run made before configurations were
    recorded): nothing can be compared, and the caller is told so by the return value False."""
    if recorded is None:
        return False
    for name in fields:
        ran, now = recorded.get(name, defaults.get(name)), plain(current[name])
        if ran != now:
            raise ConfigError(f"{path}: this run was made with {flag_name(name)} {ran}, not {now}; rerun with "
                              f"{flag_name(name)} {ran} to continue it, or with --noreload to start afresh")
    return True


def record_args(args):
    """An argparse namespace as a configuration dict (for the stages whose flags are argparse's)."""
    return {name: plain(value) for name, value in sorted(vars(args).items())}


def log_config(writer, record, **start):
    """A configuration dict (record(), record_args()) as a table in TensorBoard's text tab, as CleanRL logs
    its arguments; beside it the provenance of this start (a resumed run logs one per start) with `start`,
    where the run stood (e.g. iteration=...), which utils/stages/report.py reads back. Returns that
    provenance."""
    import json

    rows = "\n".join(f"|{name}|{value}|" for name, value in record.items())
    writer.add_text("config", "|flag|value|\n|-|-|\n" + rows)
    this_start = {**provenance(), **start}
    writer.add_text("provenance", json.dumps(this_start))
    return this_start


def provenance():
    """What a record of a run holds beside its numbers: the command, the commit and the machine."""
    import os
    import platform
    import sys

    import torch

    from utils.devices import available_cpus

    return {"command": " ".join(["python", *sys.argv]), "commit": git_commit(),
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "cpus": available_cpus(), "torch": torch.__version__,
                        # the GPU this process uses, if any (asking a GPU's name would start CUDA here)
                        "cuda": torch.cuda.get_device_name() if torch.cuda.is_initialized() else None,
                        # what else ran: the 1, 5 and 15-minute load averages when the record is written
                        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}}
