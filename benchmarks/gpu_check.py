"""Every GPU check in one command, for a GPU host with no network:

    python -m benchmarks.gpu_check            # from a checkout; prints a report to paste into
                                              # docs/gpu-validation.md (and writes it to
                                              # gpu-validation-report.md)

The host needs torch (a CUDA build), numpy, rich, psutil and pytest, and for the NVML and BERT
checks nvidia-ml-py and transformers; not Textual, textual-plotext, plotext or platformdirs, and
nothing is installed: the checkout's own ``core/``, ``tui/`` and ``presets/`` are put on the
import path as the ``latency_tui`` package (symbolic links in a temporary folder). Under 8
minutes on one GPU: the checks are tests/cuda/test_gpu.py, run by pytest with a time limit.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIMIT_S = 450


def package_root() -> Path:
    """A folder holding ``latency_tui`` -> the checkout, without installing anything."""
    root = Path(tempfile.mkdtemp(prefix="latency-tui-gpu-"))
    package = root / "latency_tui"
    package.mkdir()
    for name in ("core", "tui", "presets"):
        (package / name).symlink_to(REPO / name, target_is_directory=True)
    return root


def facts() -> str:
    lines = [f"- date: {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='minutes')}",
             f"- host: {platform.node()}, {platform.platform()}, Python {platform.python_version()}"]
    try:
        import torch

        lines.append(f"- torch {torch.__version__}, CUDA {torch.version.cuda}, "
                     f"cuDNN {torch.backends.cudnn.version()}")
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            lines.append(f"- GPU {i}: {p.name}, {p.total_memory / 1e9:.0f} GB, "
                         f"compute capability {p.major}.{p.minor}")
    except Exception as exc:  # reported, not fatal: the tests say the rest
        lines.append(f"- torch: {exc}")
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        lines.append(f"- driver {out.splitlines()[0] if out else 'unknown'}")
    except Exception:
        lines.append("- driver: nvidia-smi not found")
    return "\n".join(lines)


def main() -> int:
    root = package_root()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(REPO / "tests"),
                                                        os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "pytest", str(REPO / "tests" / "cuda"), "-m", "cuda",
               "-p", "no:cacheprovider", "-p", "no:asyncio", "-o", "addopts=", "-o",
               "asyncio_mode=", "--rootdir", str(REPO), "-v", "-s", "--tb=short"]
    try:
        proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=LIMIT_S)
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = f"{exc.stdout or ''}{exc.stderr or ''}\nTIMED OUT after {LIMIT_S} s", 124
    figures = [line for line in output.splitlines() if line.startswith("GPU-CHECK ")]
    verdicts = [line for line in output.splitlines() if " PASSED" in line or " FAILED" in line
                or " SKIPPED" in line or " ERROR" in line]
    report = "\n".join([
        "## GPU validation run", "", facts(), "", "### Results", "", "```", *verdicts, "```", "",
        "### Figures", "", "```", *figures, "```", "",
        f"pytest exit status {code}; full output in the run's log.", ""])
    (REPO / "gpu-validation-report.md").write_text(report, encoding="utf-8")
    print(output)
    print(report)
    return code


if __name__ == "__main__":
    sys.exit(main())
