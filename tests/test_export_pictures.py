"""``latency-tui export SESSION --format svg``: per configuration a histogram of the stored samples
(or the percentiles of a session without samples) and a timeline, checked against the data the
session holds by parsing the SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from latency_tui.core import samplestore
from latency_tui.core.errors import UserError
from latency_tui.core.measurement import ConfigResult, Timeline
from latency_tui.core.session import Session, load_session, save_session
from latency_tui.core.specs import RunConfig
from latency_tui.core.stats import summarize, throughput
from latency_tui.tui.cli import main
from latency_tui.tui.pictures import compact, histogram, log_ticks, ms, ticks, to_svg

SVG = "{http://www.w3.org/2000/svg}"
#: The mode: most samples take 3 ms; the rest spread over 1 to 6 ms.
MODE_MS = 3.0


def samples(rng, mode_ms=MODE_MS):
    spread = rng.uniform(1e6, 6e6, 3000)
    values = np.concatenate([spread, np.full(1500, mode_ms * 1e6)])
    return np.sort(values.astype(np.int64))


def result(values, *, batch=1, stored=True, per_second=(900, 1000, 0, 1100)):
    config = RunConfig(device="fake", batch_size=batch)
    p99 = tuple(None if c == 0 else 5.0 + i for i, c in enumerate(per_second))
    p50 = tuple(None if c == 0 else 3.0 for c in per_second)
    timeline = Timeline(1.0, tuple(per_second), p50, p99, p99)
    return ConfigResult(config, "finished", samples=values.size, duration_s=len(per_second),
                        latency=summarize(values, presorted=True),
                        throughput=throughput(values.size, float(len(per_second)), batch,
                                              timeline),
                        timeline=timeline,
                        latency_samples=samplestore.store_sorted(values) if stored else None)


def failed():
    return ConfigResult(RunConfig(device="fake", batch_size=64), "failed",
                        error="out of memory <at> batch 64 & more", error_kind="oom")


@pytest.fixture
def session(tmp_path):
    rng = np.random.default_rng(7)
    return Session(preset={"name": "pic"}, model={"source": "builtin:noop"},
                   results=[result(samples(rng)), result(samples(rng), batch=4, stored=False),
                            failed()])


@pytest.fixture
def session_file(session, tmp_path):
    return save_session(session, tmp_path / "s.json")


def export_svg(capsys, path, *args):
    assert main(["export", str(path), "--format", "svg", *args]) == 0
    return ET.fromstring(capsys.readouterr().out)


def groups(root, cls):
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == cls]


def texts(element):
    return ["".join(t.itertext()) for t in element.iter(f"{SVG}text")]


def bars(element):
    return [r for r in element.iter(f"{SVG}rect") if r.get("class") == "bar"]


def test_one_histogram_and_one_timeline_per_configuration(session_file, capsys):
    root = export_svg(capsys, session_file)
    configs = groups(root, "config")
    assert [c.get("data-config") for c in configs] == ["1", "2", "3"]
    for config in configs:
        assert len(groups(config, "histogram")) == 1 and len(groups(config, "timeline")) == 1
    assert texts(configs[0])[0].startswith("#1 · batch 1, 1 x 1 · fake · finished")


def test_bar_heights_follow_the_stored_samples(session_file, capsys):
    first = groups(export_svg(capsys, session_file), "config")[0]
    drawn = bars(groups(first, "histogram")[0])
    counts = np.array([int(b.get("data-count")) for b in drawn])
    heights = np.array([float(b.get("height")) for b in drawn])
    tallest = drawn[int(np.argmax(heights))]
    assert float(tallest.get("data-low-ms")) <= MODE_MS <= float(tallest.get("data-high-ms"))
    assert np.allclose(heights / counts, heights.max() / counts.max(), rtol=0.02)
    h = histogram(load_session(session_file).results[0].latency_samples)
    assert counts.sum() + h.above + h.below == 4500
    assert tallest.find(f"{SVG}title").text.endswith(f"{counts.max():,} samples")


def test_axes_are_labelled_in_ms_and_seconds(session_file, capsys):
    first = groups(export_svg(capsys, session_file), "config")[0]
    hist, timeline = texts(groups(first, "histogram")[0]), texts(groups(first, "timeline")[0])
    assert "latency (ms)" in hist and "samples" in hist
    assert any(t.startswith("p50 ") for t in hist) and any(t.startswith("p99 ") for t in hist)
    assert {"time (s)", "ms", "samples/s"} <= set(timeline)


def test_the_timeline_breaks_at_a_second_without_completions(session_file, capsys):
    first = groups(export_svg(capsys, session_file), "config")[0]
    timeline = groups(first, "timeline")[0]
    p99 = [e for e in timeline if e.get("class") == "p99"]
    # seconds 1-2 are a line, second 3 had no completion, second 4 a dot
    assert [e.tag for e in p99] == [f"{SVG}polyline", f"{SVG}circle"]
    rate = [e for e in timeline if e.get("class") == "rate"]
    assert len(rate) == 1 and len(rate[0].get("points").split()) == 4


def test_a_session_without_samples_draws_its_percentiles_and_says_so(session_file, capsys):
    second = groups(export_svg(capsys, session_file), "config")[1]
    hist = groups(second, "histogram")[0]
    assert "stores no samples" in texts(hist)[0]
    saved = load_session(session_file).results[1].latency.percentiles
    drawn = bars(hist)
    assert [float(b.get("data-count")) for b in drawn] == pytest.approx(list(saved.values()))
    heights = [float(b.get("height")) for b in drawn]
    assert heights == sorted(heights)


def test_a_failed_configuration_says_why_in_both_panels(session_file, capsys):
    third = groups(export_svg(capsys, session_file), "config")[2]
    for cls in ("histogram", "timeline"):
        assert "failed: out of memory <at> batch 64 & more" in texts(groups(third, cls)[0])


def test_text_from_the_session_stays_text(session, tmp_path, capsys):
    session.model["source"] = "<script>alert(1)</script> & \x1b[31m \ud800"
    path = save_session(session, tmp_path / "odd.json")
    root = export_svg(capsys, path)
    assert not list(root.iter(f"{SVG}script"))
    assert "<script>alert(1)</script> & \\x1b[31m \ufffd" in texts(root)[0]


def test_out_writes_the_file_and_refuses_what_is_not_a_regular_file(session_file, tmp_path,
                                                                     capsys):
    target = tmp_path / "pic.svg"
    assert main(["export", str(session_file), "--format", "svg", "--out", str(target)]) == 0
    assert len(groups(ET.parse(target).getroot(), "config")) == 3
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "to-folder").symlink_to(folder)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    capsys.readouterr()
    for bad, why in ((folder, "is a directory"), (tmp_path / "to-folder", "is a directory"),
                     (tmp_path / "loop", "symbolic link loop"), ("/dev/null", "regular file")):
        assert main(["export", str(session_file), "--format", "svg", "--out", str(bad)]) == 2
        err = capsys.readouterr().err
        assert f"--out {bad}" in err and why in err
    assert not list(folder.iterdir())


def test_there_is_no_png_format(session_file, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(session_file), "--format", "png"])
    assert exit_.value.code == 2
    assert "'svg'" in capsys.readouterr().err


def test_configurations_can_be_picked_by_number(session):
    root = ET.fromstring(to_svg(session, [2]))
    assert [c.get("data-config") for c in groups(root, "config")] == ["2"]
    with pytest.raises(UserError, match=r"--config 4: the session has 3 configurations \(1 to 3\)"):
        to_svg(session, [4])


def test_an_empty_session_is_a_picture_that_says_so():
    root = ET.fromstring(to_svg(Session(preset={"name": "x"})))
    assert "this session has no configurations" in texts(root)


def test_a_long_tail_gets_log_bins_and_round_ticks():
    rng = np.random.default_rng(3)
    values = np.sort((2e6 * np.exp(rng.normal(0, 1.0, 5000))).astype(np.int64))
    h = histogram(samplestore.store_sorted(values))
    assert h.log and h.edges[1] / h.edges[0] == pytest.approx(h.edges[-1] / h.edges[-2])
    assert log_ticks(0.15, 32) == [0.2, 0.5, 1, 2, 5, 10, 20]
    assert ticks(0, 1650, 4) == [0, 500, 1000, 1500]


def test_axis_labels_stay_short():
    assert [compact(v) for v in (950, 2500, 30_000, 250_000, 1_500_000)] == \
        ["950", "2,500", "30k", "250k", "1.5M"]
    assert [ms(v) for v in (0.00289, 0.884, 12.41, None)] == ["0.00289", "0.884", "12.41", "-"]



def test_the_command_line_picks_configurations_by_number(session_file, capsys):
    root = export_svg(capsys, session_file, "--config", "3,1")
    assert [c.get("data-config") for c in groups(root, "config")] == ["3", "1"]
    assert main(["export", str(session_file), "--config", "4", "--format", "svg"]) == 2
    assert "--config 4: the session has 3 configurations" in capsys.readouterr().err
    assert main(["export", str(session_file), "--config", "1"]) == 2
    assert "only --format svg picks configurations" in capsys.readouterr().err
