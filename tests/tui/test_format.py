from __future__ import annotations

import math

import pytest

from latency_tui.tui.format import (
    fmt_clock,
    fmt_count,
    fmt_interval,
    fmt_megabytes,
    fmt_model,
    fmt_ms,
    fmt_rate,
    fmt_values,
)


@pytest.mark.parametrize("value, text", [
    (None, "-"), (math.nan, "-"), (0.0884, "0.088"), (0.884, "0.884"), (12.414, "12.41"),
    (123.45, "123.5"), (12345.6, "12,346"),
])
def test_fmt_ms(value, text):
    assert fmt_ms(value) == text


@pytest.mark.parametrize("value, text", [
    (None, "-"), (math.inf, "-"), (12.34, "12.3"), (1291.4, "1,291"), (10328.0, "10,328"),
])
def test_fmt_rate(value, text):
    assert fmt_rate(value) == text


@pytest.mark.parametrize("seconds, text", [
    (None, "--:--"), (0, "00:00"), (41.4, "00:41"), (61, "01:01"), (3725, "1:02:05"),
    (-3, "00:00"),
])
def test_fmt_clock(seconds, text):
    assert fmt_clock(seconds) == text


def test_small_helpers():
    assert fmt_count(41388) == "41,388"
    assert fmt_count(None) == "-"
    assert fmt_interval((12.38, 12.45)) == "[12.38, 12.45]"
    assert fmt_interval(None) == ""
    assert fmt_values((1, 2, 4, 8)) == "1,2,4,8"


@pytest.mark.parametrize("mb, text", [
    (0.0136, "13.6 kB"), (4.87, "4.9 MB"), (418.2, "418 MB"), (1340.0, "1.3 GB"),
])
def test_fmt_megabytes(mb, text):
    assert fmt_megabytes(mb) == text


@pytest.mark.parametrize("facts, fallback, text", [
    ({"name": "bert-style", "parameters": 110_000_000, "size_mb": 418.0}, "",
     "bert-style (110.0M params, 418 MB)"),
    ({"name": "noop", "parameters": None, "size_mb": None}, "", "noop"),
    ({}, "builtin:mlp", "builtin:mlp"),
    ({"source": "hf:x", "params": 3400}, "", "hf:x (3.4k params)"),
])
def test_fmt_model(facts, fallback, text):
    assert fmt_model(facts, fallback) == text
