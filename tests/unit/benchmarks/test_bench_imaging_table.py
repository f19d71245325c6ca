"""The request benchmark's table (benchmarks/bench_imaging.py, section 2): its headline ratios compare
the naive way and ours doing the same image work, each ratio theirs / ours."""

from __future__ import annotations

from typing import Any

from benchmarks.bench_imaging import _requests_markdown


def _row(**ms: float) -> dict[str, Any]:
    return {
        "ms": ms,
        "bytes": {"ours": 190_000, "naive": 4_000_000},
        "distance": 20.0,
        "send_scale_distance": 10.0,
        "detections": (1, 1, 1),
        "long_side": 4000,
        "copy_size": (2000, 1500),
    }


def _cells(markdown: str, label: str) -> dict[str, str]:
    lines = markdown.splitlines()
    header = next(line for line in lines if line.startswith("| image |"))
    row = next(line for line in lines if line.startswith(f"| {label} |"))
    names = [cell.strip() for cell in header.strip("|").split("|")]
    values = [cell.strip() for cell in row.strip("|").split("|")]
    assert len(names) == len(values)
    return dict(zip(names, values, strict=True))


def test_headline_ratios_compare_equal_work_theirs_over_ours() -> None:
    markdown = _requests_markdown(
        {"photo": _row(ours=50.0, send_scale=40.0, naive=60.0, naive_with_copy=100.0, roboflow=200.0)}
    )

    cells = _cells(markdown, "photo")

    assert cells["(a) request + annotated-copy pixels: naive / ours"] == "**2.00×**"  # 100 / 50
    assert cells["(b) request only: naive / ours"] == "**1.50×**"  # 60 / 40
    assert cells["predict() / ours"] == "**4.00×**"
    # The earlier, asymmetric figure stays visible, not bold.
    assert cells["ours with copy pixels vs naive without: naive / ours"] == "1.20×"
    assert cells["naive with copy (ms)"] == "100.0"
    assert cells["ours, send scale (ms)"] == "40.0"


def test_the_paragraph_names_the_copy_size_both_ways_decode() -> None:
    markdown = _requests_markdown(
        {"photo": _row(ours=1.0, send_scale=1.0, naive=1.0, naive_with_copy=1.0, roboflow=1.0)}
    )

    assert "2000×1500 here" in markdown
    assert "*Naive with copy*" in markdown
