"""Every GPU check in one command, for a GPU host with no network:

    python -m benchmarks.gpu_check                   # from a checkout
    python -m benchmarks.gpu_check --report PATH     # write the report there instead

It runs tests/cuda/test_gpu.py with pytest under a time limit (under 8 minutes on one GPU),
streams pytest's output to the terminal as it goes, then prints a Markdown report to paste into
docs/gpu-validation.md (the host, GPU, driver, torch and CUDA versions, each check's verdict and
its figures) and writes it to gpu-validation-report.md (or ``--report PATH``). The exit status
is pytest's, 124 on a time-out, and 3 when no check ran on a GPU (all skipped: a CPU-only torch,
no GPU visible), which is no validation however green it looks.

The host needs torch (a CUDA build), numpy, rich, psutil and pytest, and for the NVML and BERT
checks nvidia-ml-py and transformers; not Textual, textual-plotext, plotext or platformdirs, and
nothing is installed: the checkout's ``__init__.py``, ``core/``, ``tui/`` and ``presets/`` are put
on the import path as the ``latency_tui`` package (symbolic links in a temporary folder, removed
at the end). POSIX only (pytest runs in its own session, so that a time-out ends its
subprocesses too).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import IO, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
#: The whole pytest run's limit; each check's own limits (the end-to-end CLI run's 180 s) fit in.
LIMIT_S = 450
#: Exit status when every check was skipped: nothing was validated.
NOTHING_RAN = 3
DEFAULT_REPORT = REPO / "gpu-validation-report.md"


def package_root(folder: Path) -> Path:
    """``folder/latency_tui`` -> the checkout, without installing anything. The root's
    ``__init__.py`` is linked too: without it ``latency_tui`` would be a namespace package, and an
    installed (older) ``latency_tui`` anywhere later on the import path would win over it."""
    package = folder / "latency_tui"
    package.mkdir()
    (package / "__init__.py").symlink_to(REPO / "__init__.py")
    for name in ("core", "tui", "presets"):
        (package / name).symlink_to(REPO / name, target_is_directory=True)
    return folder


def pytest_command(target: Path, junit: Path, rootdir: Path = REPO) -> List[str]:
    """pytest on ``target``'s checks marked ``cuda``, verbose and unbuffered (``-s``: progress and
    each check's ``GPU-CHECK`` figures show as they happen), verdicts with reasons (``-rA``) and in
    ``junit`` (what the report is made from). The project's addopts are dropped; so are
    pytest-asyncio (not needed, maybe absent: its ``asyncio_mode`` key then draws a
    PytestConfigWarning, silenced) and an installed latency-tui's own pytest plugin (it would
    import the installed package, not this checkout). ``-p no:NAME`` for an absent plugin is
    harmless."""
    return [sys.executable, "-m", "pytest", str(target), "-m", "cuda",
            "-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:latency_tui",
            "-o", "addopts=", "-W", "ignore::pytest.PytestConfigWarning",
            "--rootdir", str(rootdir), "-v", "-s", "-rA", "--tb=short", "--junitxml", str(junit)]


def pytest_env(package_folder: Path) -> dict:
    """The environment for pytest: the temporary package first on the import path, then the
    tests' helpers, then whatever PYTHONPATH already held (no empty entry: that would mean the
    current directory). Offline for Hugging Face; unbuffered so that the output streams."""
    paths = [str(package_folder), str(REPO / "tests")]
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_streaming(command: Sequence[str], *, cwd: Path, env: dict, limit_s: float,
                  echo: Optional[IO[str]] = None) -> Tuple[str, int, bool]:
    """Run ``command`` in its own session, echo its output (stdout and stderr merged) line by
    line to ``echo`` (stdout) as it comes, and return (output, exit status, timed out).

    On a time-out, or if this script is interrupted, the whole process group is killed: pytest
    and any subprocess of a check (the end-to-end CLI run) would otherwise keep the GPU busy.
    The status is then 124 and the output, text, ends with a line saying so."""
    echo = echo or sys.stdout
    lines: List[str] = []
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            encoding="utf-8", errors="replace", bufsize=1, start_new_session=True)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            echo.write(line)
            echo.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        code = proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        code = proc.wait()
    except BaseException:  # Ctrl-C: its own session does not get the terminal's SIGINT
        _kill_group(proc)
        raise
    reader.join(timeout=10)
    if reader.is_alive():  # a leftover subprocess still holds the pipe
        _kill_group(proc)
        reader.join(timeout=5)
    output = "".join(lines)
    if timed_out:
        note = f"TIMED OUT after {limit_s:g} s: pytest and its subprocesses were killed\n"
        output += ("" if not output or output.endswith("\n") else "\n") + note
        echo.write(note)
        echo.flush()
        code = 124
    return output, code, timed_out


def read_junit(path: Path) -> Optional[List[Tuple[str, str, float, str]]]:
    """(verdict, check, seconds, why) per test case in pytest's JUnit XML, in run order; None when
    there is no readable file (pytest was killed or crashed). ``why`` is a skip's reason or the
    first line of a failure's message."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    rows = []
    for case in root.iter("testcase"):
        verdict, why = "PASSED", ""
        for tag, name in (("failure", "FAILED"), ("error", "ERROR"), ("skipped", "SKIPPED")):
            child = case.find(tag)
            if child is not None:
                verdict = name
                if tag == "skipped" and child.get("type") == "pytest.xfail":
                    verdict = "XFAIL"
                why = (child.get("message") or child.text or "").strip().splitlines()
                why = why[0] if why else ""
                break
        rows.append((verdict, case.get("name", "?"), float(case.get("time") or 0), why))
    return rows


def figure_lines(output: str) -> List[str]:
    """Each check's ``GPU-CHECK name: {json}`` line (the checks print them on a line of their
    own, even after pytest's ``-v`` test id)."""
    return [line for line in output.splitlines() if line.startswith("GPU-CHECK ")]


def facts() -> str:
    """The host, torch, GPUs and driver. Asked after pytest is done, so that this process holds
    no CUDA context on the GPU while the checks run."""
    lines = [f"- date: {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='minutes')}",
             f"- host: {platform.node()}, {platform.platform()}, Python {platform.python_version()}"]
    try:
        import torch

        lines.append(f"- torch {torch.__version__}, CUDA {torch.version.cuda}, "
                     f"cuDNN {torch.backends.cudnn.version()}; "
                     f"torch.cuda.is_available() = {torch.cuda.is_available()}, "
                     f"{torch.cuda.device_count()} CUDA device(s)")
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            lines.append(f"- GPU {i}: {p.name}, {p.total_memory / 1e9:.0f} GB, "
                         f"compute capability {p.major}.{p.minor}")
    except Exception as exc:  # reported, not fatal: the checks say the rest
        lines.append(f"- torch: {type(exc).__name__}: {exc}")
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        lines.append(f"- driver {out.splitlines()[0] if out else 'unknown'}")
    except Exception:
        lines.append("- driver: nvidia-smi not found")
    return "\n".join(lines)


def nothing_ran(verdicts: Optional[List[Tuple[str, str, float, str]]]) -> bool:
    """True when pytest finished and every check was skipped (nothing ran on a GPU); checks
    that errored did run, and keep pytest's status."""
    return verdicts is not None and all(v == "SKIPPED" for v, *_ in verdicts)


def build_report(host: str, verdicts: Optional[List[Tuple[str, str, float, str]]],
                 figures: List[str], code: int, timed_out: bool, output: str,
                 minutes: float) -> str:
    if verdicts is None:
        results = ["pytest did not finish (time-out or crash): no verdicts. Its last lines:", "",
                   *output.splitlines()[-30:]]
    else:
        results = [f"{v:<7} {s:6.1f} s  {name}" + (f" - {why}" if why else "")
                   for v, name, s, why in verdicts]
    warning = []
    if nothing_ran(verdicts):
        warning = ["**NO CHECK RAN ON A GPU: every check was skipped (reasons above). "
                   "This run validates nothing.**", ""]
    status = "timed out" if timed_out else f"pytest exit status {code}"
    return "\n".join([
        "## GPU validation run", "", host, "", "### Results", "", "```", *results, "```", "",
        *warning, "### Figures", "", "```", *figures, "```", "",
        f"{status}, {minutes:.1f} min; pytest's full output was streamed to the terminal above "
        "this report.", ""])


def publish(report: str, path: Path) -> bool:
    """Print the report, then write it to ``path``: printed first, so that a failed write (a
    directory, a read-only checkout) loses nothing of a long GPU run; the failure is one line."""
    print(report, flush=True)
    try:
        path.write_text(report, encoding="utf-8")
    except OSError as exc:
        print(f"gpu_check: could not write the report to {path}: {exc}", file=sys.stderr)
        return False
    print(f"gpu_check: report written to {path}", file=sys.stderr)
    return True


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, metavar="PATH",
                        help=f"where to write the report (default: {DEFAULT_REPORT.name} in the "
                             "checkout)")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="latency-tui-gpu-"))
    try:
        package_root(folder)
        junit = folder / "junit.xml"
        started = time.monotonic()
        output, code, timed_out = run_streaming(
            pytest_command(REPO / "tests" / "cuda", junit), cwd=REPO,
            env=pytest_env(folder), limit_s=LIMIT_S)
        verdicts = None if timed_out else read_junit(junit)
        report = build_report(facts(), verdicts, figure_lines(output), code, timed_out, output,
                              (time.monotonic() - started) / 60)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # removes the links, not what they point at
    print()
    publish(report, args.report)
    if nothing_ran(verdicts):
        print("gpu_check: NO CHECK RAN ON A GPU (every check skipped; see the reasons above): "
              f"exit status {NOTHING_RAN}", file=sys.stderr)
        return NOTHING_RAN
    return code


if __name__ == "__main__":
    sys.exit(main())
