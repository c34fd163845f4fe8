"""Charts as inline SVG for the self-contained HTML reports (no script, nothing fetched): grouped bars and lines of
amounts in fen over labelled periods, negative values drawn below a zero line."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from common.formatting import yuan


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


MAX_LABELS = 16
"""Above this many bars or points, only every k-th is labelled, so that the labels do not overlap."""


def _labelled(labels: list[str]) -> list[tuple[int, str]]:
    every = max(1, -(-len(labels) // MAX_LABELS))
    return [(i, label) for i, label in enumerate(labels) if i % every == 0]


def _short(label: str) -> str:
    """`2026-03` -> `26-03`; a year stays whole."""
    return label[2:] if len(label) == 7 else label


def _axis(lo: int, hi: int, height: int, bottom: int, head: int) -> Callable[[float], float]:
    """The vertical position of a value between the axis's bottom and top."""

    def y(v: float) -> float:
        return height - bottom - (height - bottom - head) * (v - lo) / (hi - lo)

    return y


def _scale(values: Iterable[int]) -> tuple[int, int]:
    """The axis's bottom and top: they include zero, and the top is above the bottom."""
    vs = list(values)
    lo, hi = min([*vs, 0]), max([*vs, 0])
    return lo, hi if hi > lo else lo + 1


def _grid(lo: int, hi: int, y: Callable[[float], float], left: int, width: int) -> list[str]:
    parts = []
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        parts.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{width}" y2="{y(v):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end">{v / 100:,.0f}</text>')
    return parts


def bars(
    series: dict[str, list[int]],
    labels: list[str],
    colours: dict[str, str],
    names: dict[str, str] | None = None,
    width: int = 760,
    height: int = 240,
) -> str:
    """Grouped bars, one group per label and one bar per series (values in fen, the axis in yuan), each series in
    its colour and named in the bars' titles by `names` (else by its key)."""
    named = names or {}
    lo, hi = _scale(v for vs in series.values() for v in vs)
    left, bottom, head = 80, 30, 10
    y = _axis(lo, hi, height, bottom, head)
    group = (width - left) / max(len(labels), 1)
    bar = group * 0.8 / max(len(series), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    parts += _grid(lo, hi, y, left, width)
    for j, (name, values) in enumerate(series.items()):
        for i, v in enumerate(values):
            top, base = sorted((y(v), y(0)))
            x = left + i * group + group * 0.1 + j * bar
            parts.append(
                f'<rect class="bar" data-series="{name}" x="{x:.1f}" y="{top:.1f}" width="{bar:.1f}" '
                f'height="{base - top:.1f}" fill="{colours.get(name, "#888")}">'
                f"<title>{_escape(labels[i])} {_escape(named.get(name, name))}: {yuan(v, grouping=True)}</title></rect>"
            )
    for i, label in _labelled(labels):
        x = left + i * group + group / 2
        parts.append(
            f'<text x="{x:.1f}" y="{height - 10}" font-size="10" text-anchor="middle">{_escape(_short(label))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def lines(
    series: dict[str, list[int]],
    labels: list[str],
    colours: dict[str, str],
    names: dict[str, str] | None = None,
    width: int = 760,
    height: int = 260,
) -> str:
    """One line per series over the labels (values in fen, the axis in yuan), with a zero line when it goes below."""
    named = names or {}
    lo, hi = _scale(v for vs in series.values() for v in vs)
    left, bottom, head = 80, 30, 14
    y = _axis(lo, hi, height, bottom, head)
    step = (width - left - 20) / max(len(labels) - 1, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    parts += _grid(lo, hi, y, left, width)
    parts.append(f'<line x1="{left}" y1="{y(0):.1f}" x2="{width}" y2="{y(0):.1f}" stroke="#555"/>')
    for name, values in series.items():
        colour = colours.get(name, "#888")
        points = [(left + 10 + i * step, y(v)) for i, v in enumerate(values)]
        parts.append(
            f'<polyline class="line" data-series="{name}" fill="none" stroke="{colour}" stroke-width="3" points="'
            + " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            + '"/>'
        )
        for (px, py), v, label in zip(points, values, labels, strict=True):
            parts.append(
                f'<circle class="point" data-series="{name}" cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{colour}">'
                f"<title>{_escape(label)} {_escape(named.get(name, name))}: {yuan(v, grouping=True)}</title></circle>"
            )
    for i, label in _labelled(labels):
        parts.append(
            f'<text x="{left + 10 + i * step:.1f}" y="{height - 10}" font-size="10" '
            f'text-anchor="middle">{_escape(_short(label))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
