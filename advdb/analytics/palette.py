"""Each source's colour in every figure: the paper's four fixed, any other name (a plugin's) a
colour of its own, picked by name so that it keeps it across figures and reports."""

from __future__ import annotations

import zlib

COLORS = {"ce": "#1f77b4", "ce-sign": "#ff7f0e", "logit": "#2ca02c", "m-logit": "#d62728"}
#: Colours for sources beyond the paper's four.
EXTRA_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def color_of(name: str) -> str:
    """The paper's colour of a source; any other name a fixed colour of :data:`EXTRA_COLORS`."""
    return COLORS.get(name) or EXTRA_COLORS[zlib.crc32(name.encode()) % len(EXTRA_COLORS)]
