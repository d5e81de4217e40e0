"""Drawing every pane from the display's model, in one frame.

The app decides what is shown (the running configuration, the table's cursor row, a saved
session); this draws it. Each pane is drawn under a guard, so a drawing bug becomes one notice
instead of the end of a run, and the histogram (the most expensive pane) is re-plotted only when
what it would show has changed.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, List, Optional

from . import keys, present
from .live import LiveConfig, LiveRun
from .planstate import tui_words
from .widgets.gauges import PercentileGauges
from .widgets.header import HeaderBar
from .widgets.histogram import LatencyHistogram
from .widgets.results import ResultsTable
from .widgets.timeline import Timeline


class Panes:
    def __init__(self, app: Any, notify: Callable[[str, str], None]) -> None:
        self.app = app
        self.notify = notify
        #: Panes whose drawing failed once (reported once; the run is not disturbed).
        self.failed: set = set()
        self._histogram_signature: Any = None

    def forget_histogram(self) -> None:
        """Re-plot the histogram at the next redraw, whatever it showed."""
        self._histogram_signature = None

    def draw(self, header: Any, configs: Iterable[LiveConfig], focus: Optional[LiveConfig],
             run: Optional[LiveRun], paused: bool, no_plan: bool) -> None:
        app = self.app
        app.query_one(HeaderBar).show(header)
        if paused:
            return
        table = app.query_one(ResultsTable)
        configs = list(configs)
        self._guarded("results", lambda: table.set_rows(present.result_rows(configs)))
        gauges = app.query_one(PercentileGauges)
        self._guarded("histogram", lambda: self._histogram(focus, no_plan))
        self._guarded("percentiles", lambda: gauges.show(present.gauge_data(focus)))
        self._guarded("timeline", lambda: self._timeline(run, configs))

    def _guarded(self, pane: str, draw: Callable[[], None]) -> None:
        try:
            draw()
        except Exception as exc:
            if pane not in self.failed:
                self.failed.add(pane)
                self.notify("error", tui_words(f"display error in the {pane} pane: "
                                               f"{type(exc).__name__}: {exc}"))

    def _histogram(self, live: Optional[LiveConfig], no_plan: bool) -> None:
        histogram = self.app.query_one(LatencyHistogram)
        signature = (None if live is None else (live.key, live.count, live.phase,
                     live.result is not None), histogram.content_size, no_plan)
        if signature == self._histogram_signature:
            return
        self._histogram_signature = signature
        if live is None:
            histogram.show_message(keys.localize(  # the keys as now mapped
                self.app, "no preset: press p to pick one" if no_plan
                else "no samples yet: press r to run"))
            return
        label = live.config.label
        summary = live.summary()
        if live.has_samples:
            p = summary.percentiles if summary is not None else {}
            histogram.show_stream(live.streams.latency, p.get("p50"), p.get("p99"), label)
        elif summary is not None:
            histogram.show_percentiles(list(summary.percentiles.items()), label)
        elif live.status == "failed":
            histogram.show_message(f"{label}: failed (see notices)")
        elif live.phase in ("pending", "skipped", "cancelled"):
            histogram.show_message(f"{label}: {live.phase}")
        else:
            histogram.show_message(f"{label}: {live.phase}...")

    def _timeline(self, run: Optional[LiveRun], configs: List[LiveConfig]) -> None:
        """Second by second over the run's configurations (or a saved session's): p99 and
        samples per second from each configuration's timeline, and the seconds in which the
        host was busy (the result's, else, in a live run, the recorder's noise watch's)."""
        source = [run.configs[i] for i in sorted(run.configs)] if run is not None else configs
        watch = getattr(getattr(getattr(self.app, "sessions", None), "recorder", None),
                        "noise", None) if run is not None else None
        p99: List[float] = []
        rates: List[float] = []
        busy: List[bool] = []
        for live in source:
            timeline = live.timeline()
            if timeline is None:
                continue
            batch = live.config.batch_size
            seconds = busy_seconds(live, watch)
            for i, (count, value) in enumerate(zip(timeline.inferences, timeline.p99_ms)):
                if value is not None:
                    p99.append(value)
                    rates.append(count * batch / timeline.bucket_s)
                    low, high = i * timeline.bucket_s, (i + 1) * timeline.bucket_s
                    busy.append(any(low - 1 < s < high for s in seconds))
        subtitle = f"{len(p99)} seconds" if p99 else ""
        self.app.query_one(Timeline).show(p99, rates, subtitle, busy)


def busy_seconds(live: LiveConfig, watch: Any = None) -> List[int]:
    """The seconds since measuring began in which the host was busy: the result's
    ``details["noise"]["seconds"]`` (a saved session's), else what ``watch`` (the recorder's
    ``MarkedNoiseWatch``, for a live run) found; none for a session recorded without them."""
    result = live.result
    details = result.details if result is not None and isinstance(result.details, dict) else {}
    noise = details.get("noise") if isinstance(details.get("noise"), dict) else {}
    seconds = noise.get("seconds")
    if seconds is None and watch is not None and hasattr(watch, "seconds"):
        seconds = watch.seconds(live.index)
    if not isinstance(seconds, (list, tuple)):
        return []
    return [s for s in seconds if isinstance(s, (int, float)) and not isinstance(s, bool)]
