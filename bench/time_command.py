"""Time one command (a make target, a script) and write its record: the wall time of the README's make
targets comes from such records.

    python bench/time_command.py --out docs/records/make_test.json -- make test

The record (json): the command, its exit status and wall time, the commit, the machine and its load
averages when the command ended (what else ran); nothing is written when the command fails.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.config import provenance  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the record to write (json)")
    parser.add_argument("--note", default="", help="what shared the machine, or anything the record should say")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to time after --")
    start = time.time()
    rc = subprocess.call(command)
    seconds = time.time() - start
    if rc != 0:
        print(f"{' '.join(command)} failed (exit {rc}); no record written", file=sys.stderr)
        return rc
    record = {**provenance(), "command": " ".join(command), "exit_status": rc, "seconds": round(seconds, 1),
              "note": args.note}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{' '.join(command)}: {seconds / 60:.1f} min (record in {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
