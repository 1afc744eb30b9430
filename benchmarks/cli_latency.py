"""Whole-process latency of `dsae swap` with the embedded model, next to a bare `import torch`.

Run:  python benchmarks/cli_latency.py [--repeats 5] [--json]
Prints the median wall time of each over the repeats (fresh processes, same machine, same run)
and their ratio. Target: swap at most 1.5x the bare torch import.
"""

from __future__ import annotations

from machine import describe  # benchmarks/machine.py
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wall(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args()
    a, b = ROOT / "examples" / "a.gif", ROOT / "examples" / "b.gif"
    if not (a.is_file() and b.is_file()):
        sys.exit("examples/a.gif and examples/b.gif are missing; run from a dsae checkout")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.gif"
        swap = [sys.executable, "-m", "dsae_cli", "swap", str(a), str(b), "-o", str(out)]
        bare = [sys.executable, "-c", "import torch"]
        wall(swap, ROOT), wall(bare, ROOT)  # warm the file cache once
        t_swap, t_torch = [], []
        for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
            t_torch.append(wall(bare, ROOT))
            t_swap.append(wall(swap, ROOT))
    res = {
        "machine": describe(),
        "swap_s": round(statistics.median(t_swap), 3),
        "import_torch_s": round(statistics.median(t_torch), 3),
        "ratio": round(statistics.median(t_swap) / statistics.median(t_torch), 2),
        "repeats": args.repeats,
    }
    if args.json:
        print(json.dumps(res))
    else:
        print(f"dsae swap (embedded model): {res['swap_s']:.3f} s   python -c 'import torch': {res['import_torch_s']:.3f} s")
        print(f"ratio: {res['ratio']:.2f} (target <= 1.5), median of {args.repeats} fresh processes each")


if __name__ == "__main__":
    main()
