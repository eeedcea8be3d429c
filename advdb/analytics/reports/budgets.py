"""Curves and the worst case over attacks (beyond the paper): their data and figures are built in
:mod:`advdb.analytics.curves`; these register them as reports."""

from __future__ import annotations

from advdb.analytics.reports.base import Context, ReportOutput, report


@report(
    "curves",
    "Curves: share of images at the target against the iteration budget and the perturbation budget "
    "(L∞, L2, L1), per source and mode, with 95% Wilson intervals",
    "figure",
)
def curves(ctx: Context) -> ReportOutput:
    from advdb.analytics.curves import curves_report

    return ReportOutput(*curves_report(ctx.session, ctx.selection))


@report(
    "robustness",
    "Robustness: robust accuracy against the iteration and perturbation budget, per attack and for the worst "
    "case over them (an image counts as broken if any attack reached its target)",
    "figure",
)
def robustness(ctx: Context) -> ReportOutput:
    from advdb.analytics.curves import robustness_report

    return ReportOutput(*robustness_report(ctx.session, ctx.selection))
