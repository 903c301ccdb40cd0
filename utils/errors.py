"""User-facing errors: one clear line, a non-zero exit, nothing overwritten."""
import argparse
import functools
import sys
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input (a flag, a file, a folder).

    The message names the flag or file and says what to do; `run_main` prints it
    as one line and exits with status 2.
    """


class WorkerError(RuntimeError):
    """Workers (processes, Ray actors or Ray tasks) failed repeatedly; the
    message holds the last worker's error."""


class _DefaultsOnce(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to a flag's help unless the help already says its
    default, the flag is required, or there is nothing to say (None, or False
    for a plain on/off switch)."""

    def _get_help_string(self, action):
        if (action.required or action.default is None or "(default" in (action.help or "")
                or isinstance(action, argparse._StoreTrueAction)):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse with defaults shown in --help (once) and errors printed as a single line."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _DefaultsOnce)
        super().__init__(*args, **kwargs)

    def error(self, message):
        print(f"error: {self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def check_flags(parser, args, positive=(), non_negative=(), minimum=None):
    """Refuse impossible flag values with one line: sizes <= 0, counts < 0, ...

    minimum: optional {name: smallest allowed value}.
    """
    def flag(name):
        return "--" + name.replace("_", "-")

    for name in positive:
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f"{flag(name)} must be > 0, got {getattr(args, name)}")
    for name in non_negative:
        if getattr(args, name) is not None and getattr(args, name) < 0:
            parser.error(f"{flag(name)} must be >= 0, got {getattr(args, name)}")
    for name, low in (minimum or {}).items():
        if getattr(args, name) < low:
            parser.error(f"{flag(name)} must be >= {low}, got {getattr(args, name)}")


@functools.lru_cache(maxsize=None)
def git_commit():
    """The commit of the code that runs (None outside a git checkout): read once, by run_main as a script
    starts, so that a long run's records name the commit it started on, not the checkout's HEAD of the
    moment they are written."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_main(main, argv=None):
    """Run a script's `main(argv)`, turning a UserError into one line and exit 2."""
    git_commit()
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is kept; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
