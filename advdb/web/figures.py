"""The pages' Plotly figures, as JSON for ``Plotly.newPlot`` in the browser."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

SOURCE_COLORS = {"ce": "#1f77b4", "ce-sign": "#ff7f0e", "logit": "#2ca02c", "m-logit": "#d62728"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
SUBSPACE_COLORS = {1: "rgba(214,39,40,0.10)", 2: "rgba(127,127,127,0.08)", 3: "rgba(44,160,44,0.12)"}
LAYOUT: dict[str, Any] = {"margin": {"l": 50, "r": 20, "t": 40, "b": 40}, "height": 330, "template": "plotly_white"}


def _json(fig: go.Figure) -> str:
    return str(fig.to_json())


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def histograms(series: Sequence[tuple[str, Sequence[float]]], *, title: str, xlabel: str) -> str:
    """One histogram per (name, values), overlaid."""
    fig = go.Figure(
        [go.Histogram(x=list(v), name=name, opacity=0.6, marker_color=color(i)) for i, (name, v) in enumerate(series)]
    )
    fig.update_layout(**LAYOUT, title=title, barmode="overlay", xaxis_title=xlabel, yaxis_title="images")
    return _json(fig)


def mean_curves(runs: Sequence[tuple[str, dict[str, list[float]]]], *, h: float) -> str:
    """Mean softmax (left) and logit (right) of the initial (dashed) and target (solid) class per iteration.

    The band p ≥ h is where an image is confidently one class: S3 for the target, S1 for the
    initial class (Section IV); below it, S2.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("mean softmax", "mean logit"))
    for i, (name, c) in enumerate(runs):
        for col, (init, target) in enumerate((("p_init", "p_target"), ("z_init", "z_target")), start=1):
            fig.add_trace(
                go.Scatter(
                    x=c["iteration"],
                    y=c[target],
                    name=f"{name}: target",
                    mode="lines",
                    line={"color": color(i)},
                    legendgroup=name,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=c["iteration"],
                    y=c[init],
                    name=f"{name}: initial",
                    mode="lines",
                    line={"color": color(i), "dash": "dash"},
                    legendgroup=name,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
    fig.add_hrect(
        y0=h,
        y1=1.0,
        fillcolor=SUBSPACE_COLORS[3],
        line_width=0,
        row=1,
        col=1,
        annotation_text=f"p ≥ {h:g}: S3 (target) / S1 (initial)",
        annotation_position="top left",
    )
    fig.add_hrect(y0=0.0, y1=h, fillcolor=SUBSPACE_COLORS[2], line_width=0, row=1, col=1)
    fig.update_layout(**{**LAYOUT, "height": 380}, legend={"orientation": "h", "y": -0.15})
    fig.update_xaxes(title_text="iteration")
    return _json(fig)


def subspace_shares(runs: Sequence[tuple[str, dict[str, list[float]]]]) -> str:
    """Share of images in S1, S2 and S3 per iteration (stacked for one run, lines for several)."""
    fig = go.Figure()
    stacked = len(runs) == 1
    for i, (name, c) in enumerate(runs):
        for s, dash in (("s1", "dot"), ("s2", "dash"), ("s3", "solid")):
            label = s.upper() if stacked else f"{name}: {s.upper()}"
            fig.add_trace(
                go.Scatter(
                    x=c["iteration"],
                    y=c[s],
                    name=label,
                    mode="lines",
                    stackgroup="one" if stacked else None,
                    line={"color": color({"s1": 3, "s2": 7, "s3": 2}[s]) if stacked else color(i), "dash": dash},
                )
            )
    fig.update_layout(
        **LAYOUT, title="images per subspace", xaxis_title="iteration", yaxis_title="share", yaxis_range=[0, 1]
    )
    return _json(fig)


def image_trajectory(rows: dict[str, list[Any]], *, h: float) -> str:
    """One image: softmax and logit of its initial and target class, over iterations shaded by its subspace."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("softmax", "logit"))
    it = rows["iteration"]
    for col, keys in enumerate((("p_init", "p_target", "p_other"), ("z_init", "z_target", "z_other")), start=1):
        for key, c, dash in zip(keys, (color(0), color(2), color(7)), ("dash", "solid", "dot"), strict=True):
            fig.add_trace(
                go.Scatter(x=it, y=rows[key], name=key, mode="lines", line={"color": c, "dash": dash}), row=1, col=col
            )
    fig.update_layout(
        shapes=[  # plain dicts, set at once: add_vrect per segment is quadratic in plotly
            {
                "type": "rect",
                "xref": x,
                "yref": f"{y} domain",
                "x0": start,
                "x1": end,
                "y0": 0,
                "y1": 1,
                "fillcolor": SUBSPACE_COLORS[s],
                "line": {"width": 0},
                "layer": "below",
            }
            for start, end, s in _subspace_segments(rows, h)
            for x, y in (("x", "y"), ("x2", "y2"))
        ]
    )
    fig.update_layout(**{**LAYOUT, "height": 360}, legend={"orientation": "h", "y": -0.15})
    fig.update_xaxes(title_text="iteration")
    return _json(fig)


def _subspace_segments(rows: dict[str, list[Any]], h: float) -> list[tuple[float, float, int]]:
    """Runs of consecutive iterations in the same subspace: (first − ½, last + ½, 1|2|3)."""
    out: list[tuple[float, float, int]] = []
    for n, pt, pi, po in zip(rows["iteration"], rows["p_target"], rows["p_init"], rows["p_other"], strict=True):
        s = 3 if pt >= h else 1 if max(pi, po) >= h else 2
        if out and out[-1][2] == s:
            out[-1] = (out[-1][0], n + 0.5, s)
        else:
            out.append((n - 0.5, n + 0.5, s))
    return out


def _band_traces(x: list[float], y: list[float], lo: list[float], hi: list[float], *, name: str, c: str) -> list[Any]:
    """A step curve and its interval as a shaded band (upper edge, then the lower one filled up to it)."""
    shape = {"shape": "hv"}
    return [
        go.Scatter(
            x=x, y=hi, mode="lines", line={**shape, "width": 0}, showlegend=False, hoverinfo="skip", legendgroup=name
        ),
        go.Scatter(
            x=x,
            y=lo,
            mode="lines",
            line={**shape, "width": 0},
            fill="tonexty",
            fillcolor=_rgba(c, 0.15),
            showlegend=False,
            hoverinfo="skip",
            legendgroup=name,
        ),
        go.Scatter(x=x, y=y, mode="lines", name=name, line={**shape, "color": c}, legendgroup=name),
    ]


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def iteration_curves(runs: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """Per run: the share of images that reached the target by iteration k (with its 95 % Wilson
    band) and the share at the target at k (dashed)."""
    fig = go.Figure()
    for i, (name, c) in enumerate(runs):
        for trace in _band_traces(c["x"], c["reached"], c["lo"], c["hi"], name=f"{name}: reached by k", c=color(i)):
            fig.add_trace(trace)
        fig.add_trace(
            go.Scatter(
                x=c["x"],
                y=c["at_target"],
                mode="lines",
                name=f"{name}: at the target at k",
                line={"shape": "hv", "color": color(i), "dash": "dash"},
            )
        )
    fig.update_layout(
        **LAYOUT,
        title="iteration budget",
        xaxis_title="iteration k",
        yaxis_title="share of images",
        yaxis_range=[0, 1.02],
        legend={"orientation": "h", "y": -0.25},
    )
    return _json(fig)


def epsilon_curves(runs: Sequence[tuple[str, dict[str, dict[str, Any]]]], norms: Sequence[tuple[str, str]]) -> str:
    """Per run and norm: the share of images at the target at some iteration with ‖xₙ − x₀‖ ≤ ε
    (each image's smallest successful perturbation along the attack's path), with its band."""
    fig = make_subplots(rows=1, cols=len(norms), subplot_titles=[f"{label} budget" for _, label in norms])
    for i, (name, per_norm) in enumerate(runs):
        for col, (norm, _) in enumerate(norms, start=1):
            c = per_norm[norm]
            for trace in _band_traces(c["x"], c["share"], c["lo"], c["hi"], name=name, c=color(i)):
                trace.showlegend = trace.showlegend is not False and col == 1
                fig.add_trace(trace, row=1, col=col)
    fig.update_layout(**LAYOUT, yaxis_range=[0, 1.02], legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(title_text="ε")
    fig.update_yaxes(range=[0, 1.02])
    return _json(fig)
