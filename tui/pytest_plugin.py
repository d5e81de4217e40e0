"""The pytest plugin (entry point ``pytest11``): a ``latency`` fixture that measures a callable or
a model inside a test as ``latency-tui run`` does (warm-up until stable, percentiles with
confidence intervals), a summary table at the end, an optional session file, and bounds that
fail a test only when the interval says so. The README's "pytest plugin" has the whole story::

    def test_predict(latency):
        out = latency(predict, features, threshold=0.5)  # predict(features, threshold=0.5)

    @pytest.mark.latency(duration=2, p99_ms=5)           # options and bounds for this test
    @pytest.mark.parametrize("batch_size", [1, 64])
    def test_model(latency, batch_size):
        result = latency.measure(model, make_inputs, batch_sizes=batch_size)

- ``latency(fn, *args, **kwargs)``, as pytest-benchmark's ``benchmark``: ``fn`` is called once
  (its return value is what the fixture returns; an exception there fails the test as usual),
  then that call is measured. Options come from the marker.
- ``latency.measure(model, inputs=None, **options)``: ``latency_tui.benchmark``'s own call, its
  keywords over the marker's; returns the ``ConfigResult``.
- ``@pytest.mark.latency(**options)``: any keyword of ``latency_tui.benchmark`` and the bounds;
  the closest marker wins (function over class over module).
- Bounds: ``p50_ms`` ... ``p999_ms`` (at most) and ``min_samples_per_s``. A latency bound is
  judged on the percentile's confidence interval: the test fails when the low end is above the
  bound, passes when the high end is within it, and when the interval straddles the bound it
  passes with a ``LatencyInconclusive`` warning (``-W error::...LatencyInconclusive`` makes it
  fail): an undecided measurement is not a regression, and measuring longer decides it. With
  no interval (too few samples) the point estimate is judged, and the message says so;
  throughput has no interval: its point estimate is judged.
- One measurement per test, of one configuration: a sweep is a ``parametrize`` (each case a row
  of its own), so ``batch_sizes`` etc. take one value here, and searches are refused.
- ``--latency-duration S`` (when the test gives neither ``duration`` nor ``samples``; 1 s),
  ``--latency-json PATH`` (one session of every measurement; each result's ``trial`` names its
  ``test``), ``--latency-disable`` (``fn`` runs once, nothing is measured).

Each measured test keeps ``latency.session`` and ``latency.result``, gets the user property
``("latency", {...})`` and a report section ``latency``. The table is printed only when
something was measured. Every pytest session where latency-tui is installed loads this module:
it imports nothing of torch, Textual or the engine until a test measures.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
import warnings
from typing import Any, Dict, List, Optional, Tuple

import pytest

PLUGIN_NAME = "latency_tui-state"
#: Where a pytest-xdist worker hands its measurements (a session's text) to the controller.
WORKER_KEY = "latency_tui_session"
DEFAULT_DURATION_S = 1.0
#: Bound keyword -> the percentile it bounds (milliseconds, at most).
LATENCY_BOUNDS = {"p50_ms": "p50", "p90_ms": "p90", "p95_ms": "p95", "p99_ms": "p99",
                  "p999_ms": "p99.9"}
THROUGHPUT_BOUND = "min_samples_per_s"
#: ``latency_tui.benchmark`` keywords the fixture sets itself or cannot honour.
REFUSED = {"progress": "the fixture never shows a progress bar",
           "json": "use --latency-json for one session file of every test",
           "search": "a search measures many configurations; the fixture measures one"}
SWEEPS = ("batch_sizes", "copies", "workers", "rate")
MARKER = ("latency(**options): options of latency_tui.benchmark (duration, samples, "
          "batch_sizes, ...) and bounds (p50_ms, p99_ms, ..., min_samples_per_s) for the "
          "latency fixture")


class LatencyInconclusive(UserWarning):
    """A bound that the measurement could not decide: its interval straddles the bound."""


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("latency", "latency-tui measurements (the latency fixture)")
    group.addoption("--latency-json", metavar="PATH", default=None,
                    help="write one latency-tui session file with every measurement")
    group.addoption("--latency-duration", metavar="SECONDS", type=float, default=None,
                    help="measuring time of each test that sets neither duration nor samples "
                         f"(default {DEFAULT_DURATION_S:g})")
    group.addoption("--latency-disable", action="store_true", default=False,
                    help="the latency fixture calls the function once and measures nothing")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", MARKER)
    duration = config.getoption("latency_duration")
    if duration is not None and not (0 < duration <= 86400):
        raise pytest.UsageError(f"--latency-duration: must be more than 0 seconds, not {duration:g}")
    path = config.getoption("latency_json")
    if path and not hasattr(config, "workerinput"):
        from latency_tui.core.errors import UserError
        from latency_tui.core.session import check_writable

        try:
            check_writable(path, what="--latency-json")
        except UserError as exc:
            raise pytest.UsageError(str(exc)) from None
    config.pluginmanager.register(LatencyState(config), PLUGIN_NAME)


def pytest_unconfigure(config: Any) -> None:
    state = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if state is not None:
        config.pluginmanager.unregister(state, PLUGIN_NAME)


@pytest.fixture
def latency(request: Any) -> "Latency":
    """Measure a callable or a model: ``latency(fn, *args, **kwargs)`` returns what ``fn``
    returns; ``latency.measure(model, inputs, **options)`` returns the result."""
    options: Dict[str, Any] = {}
    for mark in reversed(list(request.node.iter_markers("latency"))):
        if mark.args:
            pytest.fail("@pytest.mark.latency takes keywords only, such as duration=2, p99_ms=5",
                        pytrace=False)
        options.update(mark.kwargs)
    return Latency(request.node, request.config.pluginmanager.get_plugin(PLUGIN_NAME), options)


class Latency:
    """The fixture's object: call it, or ``measure``; then ``session`` and ``result``."""

    def __init__(self, node: Any, state: Optional["LatencyState"], options: Dict[str, Any]):
        self.node = node
        self.state = state
        self.options = options
        self.disabled = bool(state and state.config.getoption("latency_disable"))
        self.session: Any = None
        self.result: Any = None
        self.verdicts: List[Dict[str, Any]] = []
        self.used = False

    def __call__(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from ..core.api import in_own_thread

        # Not on pytest's thread: torch work there slows the engine's timing threads (api).
        value = in_own_thread(lambda: fn(*args, **kwargs))
        if not self.disabled:
            model, inputs = call_form(fn, args, kwargs)
            self.measure(model, inputs)
        return value

    def measure(self, model: Any, inputs: Any = None, **options: Any) -> Any:
        if self.used:
            pytest.fail("latency: the fixture measures once per test (parametrize the test to "
                        "measure more)", pytrace=False)
        self.used = True
        if self.disabled:
            return None
        options = {**self.options, **options}
        bounds = {key: options.pop(key) for key in (*LATENCY_BOUNDS, THROUGHPUT_BOUND)
                  if key in options}
        check(options, bounds)
        if options.get("duration") is None and options.get("samples") is None:
            duration = self.state.config.getoption("latency_duration") if self.state else None
            options["duration"] = duration or DEFAULT_DURATION_S
        import latency_tui
        from latency_tui.core.errors import UserError

        error = None
        try:
            self.session = latency_tui.benchmark(model, inputs, progress=False, **options)
        except UserError as exc:
            error = str(exc)
        if error is not None:  # failed outside the except: no chained traceback in the report
            self.attach({"status": "error", "error": error})
            pytest.fail(f"latency: {error}", pytrace=False)
        if len(self.session.results) != 1:
            pytest.fail(f"latency: measured {len(self.session.results)} configurations, not one",
                        pytrace=False)
        self.result = result = self.session.results[0]
        if self.state is not None:
            self.state.measured.append((self.node.nodeid, self.session, result))
        if result.status != "finished" or result.latency is None:
            self.attach(properties(result, []))
            pytest.fail(f"latency: {result.status}: {result.error or 'no latency measured'}",
                        pytrace=False)
        self.verdicts = [judge(result, key, bound) for key, bound in bounds.items()]
        self.attach(properties(result, self.verdicts))
        self.node.add_report_section("call", "latency", section(result, self.verdicts))
        failed = [v["why"] for v in self.verdicts if v["verdict"] == "failed"]
        if failed:
            pytest.fail("latency: " + "; ".join(failed), pytrace=False)
        for verdict in self.verdicts:
            if verdict["verdict"] == "inconclusive":
                warnings.warn(LatencyInconclusive(f"latency: {verdict['why']}"), stacklevel=2)
        return result

    def attach(self, data: Dict[str, Any]) -> None:
        self.node.user_properties.append(("latency", data))


def call_form(fn: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Any, Any]:
    """``(model, inputs)`` for ``latency_tui.benchmark`` that call ``fn(*args, **kwargs)``:
    a tuple is spread, a dict passed as keywords; both at once become keywords when ``fn``'s
    signature allows it, else the keywords are bound with ``functools.partial`` (named as
    ``fn``, so that the session records ``fn``'s name)."""
    if not kwargs:
        return fn, (tuple(args) if args else None)
    if not args:
        return fn, dict(kwargs)
    keywords = as_keywords(fn, args, kwargs)
    if keywords is not None:
        return fn, keywords
    bound = functools.partial(fn, **kwargs)
    bound.__qualname__ = getattr(fn, "__qualname__", None) or type(fn).__name__  # type: ignore
    return bound, tuple(args)


def as_keywords(fn: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    torch_nn = sys.modules.get("torch.nn")
    target = fn.forward if torch_nn is not None and isinstance(fn, torch_nn.Module) else fn
    try:
        bound = inspect.signature(target).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return None
    out: Dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            out[name] = value
        else:
            return None
    return out


def check(options: Dict[str, Any], bounds: Dict[str, Any]) -> None:
    for key, why in REFUSED.items():
        if key in options:
            pytest.fail(f"latency: {key}= is not an option of the fixture ({why})", pytrace=False)
    for key in SWEEPS:
        value = options.get(key)
        if isinstance(value, (list, tuple, range)) and len(value) > 1:
            pytest.fail(f"latency: {key}={list(value)!r}: the fixture measures one "
                        f"configuration; parametrize the test over {key} instead", pytrace=False)
    for key, bound in bounds.items():
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound > 0 \
                or math.isinf(bound):
            pytest.fail(f"latency: {key}={bound!r}: a bound is a positive number", pytrace=False)


def judge(result: Any, key: str, bound: float) -> Dict[str, Any]:
    """``{"bound", "limit", "verdict": "met" | "failed" | "inconclusive", "why"}``."""
    if key == THROUGHPUT_BOUND:
        value = result.throughput.samples_per_s if result.throughput else 0.0
        verdict = "met" if value >= bound else "failed"
        word = "at least" if verdict == "met" else "below"
        return {"bound": key, "limit": bound, "verdict": verdict, "value": value,
                "why": f"samples/s {value:.4g} is {word} the bound {bound:g} (point estimate: "
                       "throughput has no interval)"}
    name = LATENCY_BOUNDS[key]
    value = result.latency.percentiles[name]
    interval = result.latency.intervals.get(name)
    out = {"bound": key, "limit": bound, "value": value,
           "interval": list(interval) if interval else None}
    if interval is None:
        verdict = "failed" if value > bound else "met"
        word = "above" if verdict == "failed" else "within"
        return {**out, "verdict": verdict,
                "why": f"{name} {ms(value)} ms is {word} the bound {name} <= {bound:g} ms "
                       f"(point estimate: too few samples ({result.samples}) for an interval)"}
    low, high = interval
    level = f"{result.latency.confidence:.0%} interval"
    figure = f"{name} {ms(value)} ms [{ms(low)}, {ms(high)}]"
    if low > bound:
        return {**out, "verdict": "failed",
                "why": f"{figure} is above the bound {name} <= {bound:g} ms (its {level} "
                       "starts above it)"}
    if high <= bound:
        return {**out, "verdict": "met",
                "why": f"{figure} is within the bound {name} <= {bound:g} ms"}
    return {**out, "verdict": "inconclusive",
            "why": f"{figure} straddles the bound {name} <= {bound:g} ms: inconclusive (measure "
                   "longer: duration or samples)"}


def ms(value: Optional[float]) -> str:
    """Three significant figures, never an exponent: 0.0742, 1.09, 23.4, 1234."""
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    places = min(6, max(0, 2 - math.floor(math.log10(abs(value)))))
    return f"{value:.{places}f}"


def properties(result: Any, verdicts: List[Dict[str, Any]]) -> Dict[str, Any]:
    """What the report carries (plain JSON values)."""
    latency, throughput = result.latency, result.throughput
    out: Dict[str, Any] = {
        "status": result.status, "error": result.error, "device": result.config.device,
        "batch_size": result.config.batch_size, "samples": result.samples,
        "samples_per_s": throughput.samples_per_s if throughput else None,
        "inferences_per_s": throughput.inferences_per_s if throughput else None,
        "bounds": verdicts}
    if latency is not None:
        out.update(mean_ms=latency.mean, std_ms=latency.std, confidence=latency.confidence)
        for key in ("p50", "p90", "p95", "p99"):
            interval = latency.intervals.get(key)
            out[f"{key}_ms"] = latency.percentiles[key]
            out[f"{key}_ci_ms"] = list(interval) if interval else None
    return out


def per_s(value: Optional[float]) -> str:
    return "-" if not value else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def with_interval(row: Dict[str, Any], key: str) -> str:
    interval = row.get(f"{key}_ci_ms")
    inside = f"{ms(interval[0])}, {ms(interval[1])}" if interval else "n/a"
    return f"{ms(row.get(f'{key}_ms'))} [{inside}]"


def verdict_text(row: Dict[str, Any]) -> str:
    if row.get("status") != "finished":
        return f"{row.get('status')}: {row.get('error') or ''}"[:60]
    parts = []
    for v in row.get("bounds") or ():
        name = "samples/s>=" if v["bound"] == THROUGHPUT_BOUND else \
            LATENCY_BOUNDS[v["bound"]] + "<="
        parts.append(f"{name}{v['limit']:g} {v['verdict']}")
    return ", ".join(parts) or "-"


def section(result: Any, verdicts: List[Dict[str, Any]]) -> str:
    """The test report's ``latency`` section."""
    row = properties(result, verdicts)
    lines = [f"device {row['device']}, batch {row['batch_size']}, {row['samples']} samples",
             f"p50 {with_interval(row, 'p50')} ms, p99 {with_interval(row, 'p99')} ms, "
             f"mean {ms(row.get('mean_ms'))} +- {ms(row.get('std_ms'))} ms",
             f"samples/s {per_s(row['samples_per_s'])}"]
    lines += [f"bound: {v['why']}" for v in verdicts]
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)


class LatencyState:
    """One pytest session's measurements: rows from the reports (so that they come back from
    pytest-xdist workers too) and the results for ``--latency-json``: this process's, and under
    pytest-xdist each worker's, handed back as a session's text when the worker ends."""

    def __init__(self, config: Any):
        self.config = config
        self.rows: List[Tuple[str, Dict[str, Any]]] = []
        self.measured: List[Tuple[str, Any, Any]] = []
        self.written: Optional[str] = None
        self.write_error: Optional[str] = None

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when != "call":
            return
        for name, value in getattr(report, "user_properties", ()):
            if name == "latency" and isinstance(value, dict):
                self.rows.append((report.nodeid, value))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """pytest-xdist: a worker ended; its measurements join this session's."""
        text = getattr(node, "workeroutput", {}).get(WORKER_KEY)
        if text:
            from .pytest_json import measured_from
            self.measured.extend(measured_from(text))

    def pytest_sessionfinish(self, session: Any) -> None:
        path = self.config.getoption("latency_json")
        if not path:
            return
        if hasattr(self.config, "workerinput"):  # handed to the controller as text
            if self.measured:
                from latency_tui.core.session import session_text

                from .pytest_json import combined
                self.config.workeroutput[WORKER_KEY] = session_text(combined(self.measured))
            return
        from latency_tui.core.errors import UserError
        from latency_tui.core.session import save_session

        from .pytest_json import combined

        order = {nodeid: i for i, (nodeid, _) in enumerate(self.rows)}  # as reported
        self.measured.sort(key=lambda m: order.get(m[0], len(order)))
        try:
            self.written = str(save_session(combined(self.measured), path))
        except (OSError, UserError, ValueError, TypeError) as exc:
            self.write_error = f"{path}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        write = terminalreporter.write_line
        if self.rows:
            terminalreporter.write_sep("=", "latency (ms; [95 % interval])")
            table = [("test", "batch", "p50", "p99", "mean +- std", "samples/s", "bounds")]
            for nodeid, row in self.rows:
                rate = row.get("samples_per_s")
                table.append((nodeid, str(row.get("batch_size", "-")),
                              with_interval(row, "p50"), with_interval(row, "p99"),
                              f"{ms(row.get('mean_ms'))} +- {ms(row.get('std_ms'))}",
                              per_s(rate), verdict_text(row)))
            widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
            for r in table:
                cells = [r[0].ljust(widths[0]), r[1].rjust(widths[1])]
                cells += [c.rjust(w) for c, w in zip(r[2:6], widths[2:6])] + [r[6]]
                write("  ".join(cells).rstrip())
        if self.written:
            here = {nodeid for nodeid, _, _ in self.measured}
            elsewhere = [n for n, row in self.rows if "samples" in row and n not in here]
            if elsewhere:
                write(f"latency: {len(elsewhere)} measurement(s) of pytest-xdist workers that "
                      "did not hand them back (a worker that crashed) not in the session file")
            n = len(self.measured)
            write(f"latency: {n} measurement{'' if n == 1 else 's'} written to {self.written}")
        if self.write_error:
            write(f"latency: --latency-json not written: {self.write_error}", red=True)
