"""Wall time of the commands that answer without TensorFlow, against ``python -c "import tensorflow"``.

    python benchmarks/cli_startup.py [--rounds 7]

Each round runs every command once as a whole process, in turn (so load on the machine hits all of them
alike), and the table gives each command's median over the rounds and its ratio to the median of importing
TensorFlow measured in the same run. ``kerasapps list`` imports every recipe module (ours, and any
plugin's), so its ratio shows that declaring a recipe loads no TensorFlow.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def commands(workdir: Path) -> dict[str, list[str]]:
    script = [sys.executable, "-m", "kerasapps.cli.main"]
    np.save(workdir / "digit.npy", np.zeros((1, 28, 28), np.uint8))
    return {
        'python -c "import tensorflow"': [sys.executable, "-c", "import tensorflow"],
        "kerasapps list": [*script, "list"],
        "kerasapps --help": [*script, "--help"],
        "kerasapps train --help": [*script, "train", "--help"],
        # nothing listens on port 9: the command reads the file, asks, and fails in one line, without TensorFlow
        "kerasapps predict --url (no server)": [*script, "predict", "--url", "http://127.0.0.1:9/v1/models/m",
                                                str(workdir / "digit.npy")],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        jobs = commands(Path(tmp))
        times: dict[str, list[float]] = {name: [] for name in jobs}
        for _ in range(args.rounds):
            for name, command in jobs.items():
                started = time.perf_counter()
                subprocess.run(command, capture_output=True, cwd=tmp, check=False)
                times[name].append(time.perf_counter() - started)
    baseline = statistics.median(times['python -c "import tensorflow"'])
    print(f"{args.rounds} rounds, medians (min-max) in seconds")
    print("| command | median s | min s | max s | ratio to import tensorflow |")
    print("|---|---:|---:|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.3f} | {min(values):.3f} | {max(values):.3f} | {median / baseline:.3f} |")


if __name__ == "__main__":
    main()
