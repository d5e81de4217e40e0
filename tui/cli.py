"""The ``latency-tui`` command: the TUI by default, ``run`` headless, ``presets``, ``show``.

Exit codes: 0 when every configuration finished, 1 when one failed, 2 on bad input (with a
one-line reason naming the file, field or argument, and nothing written), 128 + the signal when
a signal stopped the run (130 for ^C / SIGINT, 143 for SIGTERM, 129 for SIGHUP).
Only argparse and the core's light modules are imported before a subcommand needs more, so
``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from ..core import __version__
from ..core.errors import UserError, single_line
from .capture import printed_since, user_output_to
from .compare import add_compare_parser, add_replay_arguments, after_replay, compare, replay_bounds

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _positive_float(what: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a finite number more than 0, not {text}")
        return value
    parse.__name__ = what
    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _rate_list(text: str):
    """``"200"`` or ``"100,200,400"``: requests per second, each a finite number above 0."""
    rates = []
    for part in "".join(str(text).split()).split(","):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a number of requests per "
                                             "second") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a finite number more than 0, not {part}")
        rates.append(value)
    return tuple(dict.fromkeys(rates))


def _percentage(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage") from None
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"must be more than 0 and below 100, not {text}")
    return value


def _int_list(what: str):
    def parse(text: str):
        from ..core.api import parse_int_list

        try:
            return parse_int_list(text, what)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None
    parse.__name__ = what
    return parse


def _columns(text: str):
    """``--columns p50,p99``: the results table's columns (``headless.parse_columns``)."""
    from .headless import parse_columns

    try:
        return parse_columns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: The names are spelled out here so that --help needs no table code; test_tables checks them.
COLUMNS_OPTION = dict(
    type=_columns, metavar="NAME,...",
    help="the results table's columns, comma-separated: config (batch, copies x workers), device, "
         "batch, copies, workers, rate, inf/s, samples/s, p50, p90, p95, p99, p99.9, mean (mean "
         "+- std), min, max, inferences, status (latencies in ms); default batch, copies, "
         "workers, inf/s, samples/s, p50, p95, p99, mean, status (and rate in open loop)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latency-tui",
        description="Measure model inference latency and throughput, live in the terminal. "
                    "With no command, opens the TUI.",
    )
    parser.add_argument("--version", action="version", version=f"latency-tui {__version__}")
    parser.add_argument("--preset", help="preset name or path to a .toml file (default cpu-mlp)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a preset headless and print a results table",
                         description="Run a preset headless: progress on stderr, the results "
                                     "table on stdout, the session saved as JSON.")
    run.add_argument("--preset", dest="run_preset", metavar="NAME|PATH",
                     help="preset name or path to a .toml file (default cpu-mlp)")
    run.add_argument("--model", help="model source: builtin:NAME, hf:NAME_OR_DIR, module:attr, "
                                     "path/to/file.py:attr or a TorchScript .pt file")
    run.add_argument("--device", help="cpu, cuda, cuda:N, cuda:all (copy i on GPU i mod n), "
                                      "or fake (a simulated device)")
    run.add_argument("--batch-sizes", type=_int_list("--batch-sizes"), metavar="1,8",
                     help="batch sizes to sweep")
    run.add_argument("--copies", type=_int_list("--copies"), metavar="1,2",
                     help="model copies to sweep")
    run.add_argument("--workers", type=_int_list("--workers"), metavar="1,2",
                     help="worker threads per copy to sweep")
    run.add_argument("--copy-mode", choices=("thread", "process"),
                     help="copies as threads in this process or as spawned processes")
    run.add_argument("--duration", type=_positive_float("--duration"), metavar="SECONDS",
                     help="measuring time per configuration")
    run.add_argument("--samples", type=_positive_int, metavar="N",
                     help="inferences per configuration (with --duration: whichever comes first)")
    run.add_argument("--warmup-max", type=_positive_float("--warmup-max"), metavar="SECONDS",
                     help="longest warm-up per configuration")
    run.add_argument("--timeout", type=_positive_float("--timeout"), metavar="SECONDS",
                     help="longest one inference may take (default: 100 x the warm-up median, "
                          "at least 10 s); past it the configuration fails. The first inference "
                          "gets the larger of this and --warmup-max")
    run.add_argument("--first-timeout", type=_positive_float("--first-timeout"),
                     metavar="SECONDS", help="longest a copy's first (cold) inference may take "
                                             "(default: warmup.first_timeout_s, 600 s)")
    run.add_argument("--mode", choices=("closed", "open"),
                     help="closed: each worker's next inference as soon as its last returns; "
                          "open: requests arrive at --rate whatever the copies do, latency "
                          "counted from each request's scheduled time (queueing included)")
    run.add_argument("--rate", type=_rate_list, metavar="200[,400]",
                     help="open loop: requests per second offered to all copies together "
                          "(several: a sweep); implies --mode open")
    run.add_argument("--arrivals", choices=("poisson", "constant"),
                     help="open loop: Poisson arrivals (default) or evenly spaced")
    run.add_argument("--early-stop", type=_percentage, metavar="PCT",
                     help="end a configuration once p99's confidence interval is within "
                          "+-PCT %% of p99 (not before run.early_stop_min_s, 1 s, and "
                          "run.early_stop_min_samples, 1000; --duration stays the maximum)")
    run.add_argument("--search", choices=("batch", "throughput", "slo", "rate"),
                     help="search instead of sweeping: batch (the best batch and the largest "
                          "that fits), throughput (copies, then workers), slo (the most "
                          "throughput with p99 <= --p99-ms over the sweep's axes), rate (the "
                          "highest open-loop rate with p99 <= --p99-ms)")
    run.add_argument("--p99-ms", type=_positive_float("--p99-ms"), metavar="MS",
                     help="the p99 bound of --search slo or rate (milliseconds)")
    run.add_argument("--p50-ms", type=_positive_float("--p50-ms"), metavar="MS",
                     help="an optional p50 bound of --search slo")
    run.add_argument("--max-batch", type=_positive_int, metavar="N",
                     help="the largest batch --search batch tries (default 4096)")
    run.add_argument("--max-memory-mb", type=_positive_float("--max-memory-mb"), metavar="MB",
                     help="an optional bound of --search slo on peak device memory (MB; judged "
                          "where the backend reports it, CUDA; elsewhere a trial is uncertain)")
    run.add_argument("--json", metavar="PATH", help="where to write the session "
                     "(default: a new file in the user data directory)")
    run.add_argument("--price-per-hour", type=_positive_float("--price-per-hour"), metavar="USD",
                     help="the host's price per hour in US dollars: each configuration's cost "
                          "per million inferences (samples), as NeuronPerf reported it")
    run.add_argument("--replay", metavar="SESSION.json",
                     help="run again what a saved session's last run measured (model, inputs, "
                          "device, sweep, stop rule, warm-up); --duration, --samples, "
                          "--warmup-max, --timeout, --first-timeout, --early-stop, --json and "
                          "--price-per-hour may change it, flags that change the "
                          "configurations are refused; --compare compares it with the original")
    add_replay_arguments(run)
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.add_argument("--columns", **COLUMNS_OPTION)

    sub.add_parser("presets", help="list the presets (built-in and user)")
    devices = sub.add_parser("devices", help="list the devices this host can run, and why not")
    devices.add_argument("--json", action="store_true", help="as JSON")
    show = sub.add_parser("show", help="print the results table of saved sessions, one table "
                                       "each", description="Print each saved session's results "
                                       "table (and its searches); every file is read before "
                                       "anything is printed.")
    show.add_argument("session", metavar="SESSION.json", nargs="+")
    show.add_argument("--columns", **COLUMNS_OPTION)
    export = sub.add_parser("export", help="a saved session as CSV (NeuronPerf's columns), "
                                           "Markdown, JSON rows or an SVG picture")
    export.add_argument("session", metavar="SESSION.json")
    export.add_argument("--format", choices=("csv", "markdown", "json", "svg"), default="csv")
    export.add_argument("--config", type=_int_list("--config"), metavar="N[,N...]",
                        help="svg: only these configurations (1-based, as in the table)")
    export.add_argument("--out", metavar="PATH", help="write there instead of to stdout")
    add_compare_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "run":
            return _run(args)
        if args.command == "compare":
            return compare(args.sessions, args.fail_on, args.allow_noisy, args.json, args.pair)
        if args.command in ("presets", "devices", "show", "export"):
            from . import listings

            if args.command == "presets":
                return listings.presets()
            if args.command == "devices":
                return listings.devices(args.json)
            if args.command == "export":
                return listings.export(args.session, args.format, args.out, args.config)
            return listings.show(args.session, args.columns)
        return _tui(args.preset)
    except UserError as exc:
        print(f"latency-tui: error: {single_line(exc, 2000)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # ^C before a run's own handling begins (imports, a user module)
        _say("latency-tui: interrupted")
        return 128 + int(signal.SIGINT)


def new_session_path(name: str) -> Path:
    """A new session file in the user's sessions directory, which is created if needed."""
    from ..core import api

    path = api.session_path(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"session directory {path.parent}: {exc.strerror or exc}; "
                        "give --json PATH") from None
    return path


class Signalled(Exception):
    """SIGTERM or SIGHUP arrived: handled as ^C is (the run stops, what finished is kept)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum: int, frame: object) -> None:
    raise Signalled(signum)


def _run(args: argparse.Namespace) -> int:
    from ..core import api
    from ..core.events import SearchUpdated, fan_out
    from .headless import ProgressDisplay

    if args.json is not None and not args.json.strip():
        raise UserError("--json: must not be empty")
    bounds = replay_bounds(args)  # --compare, --fail-on: checked before anything runs
    # --replay: the plan a session recorded (api.load_replay refuses flags that would change it).
    replay = api.load_replay(args.replay, vars(args)) if args.replay else None
    preset = replay.preset if replay else api.load_preset(
        args.run_preset or args.preset or api.DEFAULT_PRESET)
    model = preset.model
    # `--model mymodule:make` from the folder that holds mymodule.py, as python -m would, but
    # only then, and after site-packages: a stray torch.py here must not run in its place.
    if api.needs_folder((args.model or model.source, model.preprocess, model.postprocess,
                         preset.device_options.get("handler")), os.getcwd()):
        sys.path.append(os.getcwd())
    plan = api.build_plan(preset, api.Overrides(
        model=args.model, device=args.device, batch_sizes=args.batch_sizes, copies=args.copies,
        workers=args.workers, copy_mode=args.copy_mode, duration_s=args.duration,
        samples=args.samples, warmup_max_s=args.warmup_max, timeout_s=args.timeout,
        first_timeout_s=args.first_timeout, mode=args.mode, rates=args.rate,
        arrivals=args.arrivals, early_stop_pct=args.early_stop, search=args.search,
        p99_ms=args.p99_ms, p50_ms=args.p50_ms, max_batch=args.max_batch,
        max_memory_mb=args.max_memory_mb,
    ))
    api.check_sources(plan)
    api.check_available(plan)
    path = api.check_writable(args.json) if args.json else new_session_path(plan.name)
    log = _output_log()
    logged = log.stat().st_size if log is not None and log.is_file() else 0
    with user_output_to(log):  # the trial call: what the model prints goes to the log
        plan = api.check_inputs(plan, batch_sizes_given=args.batch_sizes is not None)
    price = args.price_per_hour or preset.run.price_per_hour or (replay and replay.price_per_hour)
    recorder = api.SessionRecorder(path, price_per_hour=price,
                                   replay_of=replay.reference() if replay else None)
    previous = {sig: signal.signal(sig, _raise_signalled)
                for sig in (signal.SIGTERM, signal.SIGHUP)}
    interrupted = 0
    with user_output_to(log) as tool_stream:
        display = None if args.quiet else ProgressDisplay(tool_stream)
        searches: list = []  # the search's outcome, as it last reported it

        def keep_search(event: Any) -> None:
            if isinstance(event, SearchUpdated):
                searches.append(event.outcome)

        handle = api.start(plan, fan_out(*[s for s in (recorder, display, keep_search)
                                           if s is not None]), isolation="thread")
        try:
            while not handle.done:
                try:
                    # Event.wait, not Thread.join: a ^C inside join() leaves the thread
                    # looking dead.
                    handle.wait(0.2)
                except (KeyboardInterrupt, Signalled) as exc:
                    if interrupted:  # a second one: leave now, the session holds what finished
                        break
                    interrupted = exc.signum if isinstance(exc, Signalled) else signal.SIGINT
                    _say("latency-tui: stopping (the configuration in progress is kept as "
                         "cancelled; ^C again to quit at once)", tool_stream)
                    handle.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            recorder.close()  # a save in progress completes; no temporary file is left behind
            if display is not None:
                display.close()
    lines = printed_since(log, logged)
    if lines:
        _say(f"latency-tui: the model printed {lines:,} line{'s' if lines != 1 else ''}: "
             f"see {log}")
    if handle.error is not None:
        raise handle.error
    code = _report(plan, recorder, path, interrupted, searches[-1] if searches else None,
                   columns=args.columns, hint=not args.compare)
    if not args.compare:
        return code
    return after_replay(replay.original, str(replay.path), recorder.session, str(path), code,
                        bounds, args.allow_noisy)


def _output_log() -> Optional[Path]:
    """Where what the model prints goes: model-output.log in the user data directory."""
    from ..core.api import data_dir

    try:
        return data_dir() / "model-output.log"
    except Exception:  # no data directory to be had: the output stays on the terminal
        return None


def _report(plan: Any, recorder: Any, path: Path, interrupted: int,
            outcome: Optional[dict] = None, columns: Optional[Sequence[str]] = None,
            hint: bool = True) -> int:
    """The results table (and a search's answer) on stdout, the rest on stderr; a terminal gone
    with SIGHUP is no reason to fail: the session is already written. A search's failed trials
    are what it learns from (the batch that no longer fits): it fails when it finds nothing."""
    from rich.text import Text

    from .headless import model_title, output_console, results_table

    results = recorder.session.results
    try:
        console = output_console()
        title = model_title(plan.name, recorder.session.model, plan.model.source)
        console.print(results_table(results, title=title, columns=columns))
        if outcome is not None:
            from .listings import print_search

            print_search(console, outcome)
        for result in results:
            for warning in (*result.warnings, *(result.latency.warnings if result.latency else ())):
                console.print(Text(f"! {result.config.label}: {single_line(warning, 2000)}"),
                              soft_wrap=True)
        from .headless import noise_notices  # noise verdicts, cost, a replay's comparison

        for line in noise_notices(recorder.session, path if hint else None):
            console.print(Text(line), soft_wrap=True)
    except OSError:
        pass
    if recorder.save_error is not None:
        _say(f"latency-tui: error: writing the session {single_line(path)}: "
             f"{single_line(recorder.save_error)}")
        return EXIT_FAILED
    _say(f"session written to {path}" if results else
         "no configuration finished; no session written")
    if interrupted:
        return 128 + int(interrupted)
    if outcome is not None:
        return EXIT_OK if outcome.get("best") else EXIT_FAILED
    return EXIT_FAILED if any(r.status == "failed" for r in results) else EXIT_OK


def _say(message: str, stream: Any = None) -> None:
    try:
        print(message, file=stream or sys.stderr, flush=True)
    except OSError:  # the terminal hung up
        pass


def _tui(preset: Optional[str]) -> int:
    from .app import run_app

    return run_app(preset)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
