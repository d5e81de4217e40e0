"""What the stand-in Neuron packages saw, written where the test can read it: one JSON line per
event (an import, a trace), from whichever process it happened in."""

from __future__ import annotations

import json
import os


def record(package: str, event: str, **details) -> None:
    folder = os.environ.get("LATENCY_TUI_STANDIN_LOG")
    if not folder:
        return
    line = {"package": package, "event": event, "pid": os.getpid(),
            "visible_cores": os.environ.get("NEURON_RT_VISIBLE_CORES"), **details}
    with open(os.path.join(folder, f"{package}.jsonl"), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
