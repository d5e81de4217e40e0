"""The tabular blog's model measured three ways: the Python API, the command line and the pytest
fixture. They should agree within noise, and every session's samples/s must be inferences/s x
the batch size the model really received.

    python -m benchmarks.three_ways [--duration 1] [--batches 1,32,1024] [--depths 4,8]

The model takes a dataclass (embeddings + numericals), its inputs come from
``generate_data(n_rows)``. Each (depth, batch) is measured by the three ways one after the
other, in one run; the table gives each way's p50 and the spread (max / min - 1). A shared,
noisy machine widens the spread: compare it with the p50's own confidence interval.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

MODEL = '''
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Rows:
    categorical: torch.Tensor
    numerical: torch.Tensor


class Tabular(nn.Module):
    def __init__(self, depth=4, width=64):
        super().__init__()
        self.embed = nn.Embedding(100, 8)
        layers, size = [], 3 * 8 + 5
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.ReLU()]
            size = width
        self.mlp = nn.Sequential(*layers, nn.Linear(size, 1))

    def forward(self, rows):
        return self.mlp(torch.cat([self.embed(rows.categorical).flatten(1), rows.numerical], 1))


def generate_data(n_rows):
    generator = torch.Generator().manual_seed(0)
    return Rows(torch.randint(0, 100, (n_rows, 3), generator=generator),
                torch.randn(n_rows, 5, generator=generator))


def make_4():
    return Tabular(4), generate_data


def make_8():
    return Tabular(8), generate_data
'''

TEST = '''
import pytest
from tabular import Tabular, generate_data

@pytest.mark.parametrize("batch", {batches})
@pytest.mark.parametrize("depth", {depths})
def test_tabular(latency, depth, batch):
    latency.measure(Tabular(depth), generate_data, batch_sizes=batch, duration={duration})
'''


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--batches", default="1,32,1024")
    parser.add_argument("--depths", default="4,8")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    depths = [int(d) for d in args.depths.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="three-ways-"))
    (folder / "tabular.py").write_text(textwrap.dedent(MODEL), encoding="utf-8")
    for depth in depths:  # one file per depth: the three ways take turns, depth by depth
        (folder / f"test_tabular_{depth}.py").write_text(TEST.format(
            batches=batches, depths=[depth], duration=args.duration), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(folder)}
    p50 = {}  # (way, depth, batch) -> (p50, low, high)
    problems = []

    def take(way, depth, result):
        batch = result["config"]["batch_size"]
        latency = result["latency_ms"]
        low, high = latency["ci"].get("p50", [None, None])
        p50[way, depth, batch] = (latency["p50"], low, high)
        received = result["details"]["inputs"]["batch_size"]
        rate = result["samples"] / result["duration_s"] * received
        if received != batch or abs(result["throughput"]["samples_per_s"] / rate - 1) > 1e-9:
            problems.append(f"{way} depth {depth} batch {batch}: samples/s "
                            f"{result['throughput']['samples_per_s']:.1f} vs {rate:.1f}")

    sys.path.insert(0, str(folder))
    import latency_tui
    from tabular import Tabular, generate_data

    for depth in depths:
        session = latency_tui.benchmark(Tabular(depth), generate_data, batch_sizes=batches,
                                        duration=args.duration, progress=False)
        for result in json.loads(session.to_json())["results"]:
            take("api", depth, result)
        target = folder / f"cli-{depth}.json"
        subprocess.run([sys.executable, "-m", "latency_tui.tui", "run", "--model",
                        f"{folder / 'tabular.py'}:make_{depth}", "--batch-sizes",
                        ",".join(map(str, batches)), "--duration", str(args.duration),
                        "--quiet", "--json", str(target)], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        for result in json.loads(target.read_text())["results"]:
            take("cli", depth, result)
        target = folder / f"pytest-{depth}.json"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(folder / f"test_tabular_{depth}.py"), f"--latency-json={target}"],
                       check=True, env=env, cwd=folder, stdout=subprocess.DEVNULL)
        for result in json.loads(target.read_text())["results"]:
            take("pytest", depth, result)

    print("| depth | batch | API p50 ms | CLI p50 ms | pytest p50 ms | spread | p50 interval (API) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for depth in depths:
        for batch in batches:
            values = [p50[w, depth, batch][0] for w in ("api", "cli", "pytest")]
            low, high = p50["api", depth, batch][1:]
            interval = f"[{low:.4f}, {high:.4f}]" if low is not None else "-"
            print(f"| {depth} | {batch} | {values[0]:.4f} | {values[1]:.4f} | {values[2]:.4f} | "
                  f"{max(values) / min(values) - 1:+.1%} | {interval} |")
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("samples/s = inferences/s x the batch received, in every session:",
          "yes" if not problems else "NO")
    for problem in problems:
        print("  " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
