"""Start-up time of the command line against the floor of any typer application, measured in the same run.

    python benchmarks/startup.py [--runs 20] [--warmup 2] [-- ARGS ...]

Each command is a whole process (interpreter start-up, imports, building the commands, rendering, exit), its
output sent to /dev/null: `genops --help`, `genops --version`, `genops run --help` and `genops budget --help`
(or only `genops ARGS` when given), each against `python -c "import typer, rich"` run by the same interpreter.
The two run in turn (A B A B ...) and the ratio A/B is taken pair by pair, so a machine whose speed drifts
during the run still gives meaningful ratios; the min and median of those ratios are printed for wall time and
for CPU time (user + system of the finished child, from wait4). Goal: `genops --help` <= 2.0x, min and median.
POSIX only (posix_spawn, wait4).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

BASELINE = [sys.executable, "-c", "import typer, rich"]
COMMANDS = (["--help"], ["--version"], ["run", "--help"], ["budget", "--help"])


def run_once(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, cpu seconds) of one process running argv, its output discarded."""
    actions = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
               (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_utime + usage.ru_stime


def compare(command: list[str], runs: int, warmup: int) -> dict[str, list[float]]:
    """Pairwise ratios command/baseline: wall and cpu, plus the raw medians."""
    for _ in range(warmup):
        run_once(command)
        run_once(BASELINE)
    walls, cpus, a_cpu, b_cpu = [], [], [], []
    for _ in range(runs):
        a_wall, a = run_once(command)
        b_wall, b = run_once(BASELINE)
        walls.append(a_wall / b_wall)
        cpus.append(a / b)
        a_cpu.append(a)
        b_cpu.append(b)
    return {"wall": walls, "cpu": cpus, "a_cpu": a_cpu, "b_cpu": b_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="pairs measured per command (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="pairs run first and not counted (default 2)")
    parser.add_argument("args", nargs="*", help="genops arguments of the one command to measure")
    options = parser.parse_args()
    genops = str(Path(sys.executable).with_name("genops"))
    commands = [options.args] if options.args else [list(c) for c in COMMANDS]
    print(f"baseline B: {' '.join(BASELINE)}; {options.runs} pairs per command, A then B")
    print(f"{'A':28s} {'cpu A/B min':>12s} {'median':>8s} {'wall A/B min':>13s} {'median':>8s} "
          f"{'cpu A ms':>9s} {'cpu B ms':>9s}")
    for args in commands:
        result = compare([genops, *args], options.runs, options.warmup)
        print(f"{'genops ' + ' '.join(args):28s} {min(result['cpu']):12.2f} {statistics.median(result['cpu']):8.2f} "
              f"{min(result['wall']):13.2f} {statistics.median(result['wall']):8.2f} "
              f"{statistics.median(result['a_cpu']) * 1000:9.1f} {statistics.median(result['b_cpu']) * 1000:9.1f}")


if __name__ == "__main__":
    main()
