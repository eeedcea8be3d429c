"""What the report figures share: matplotlib, imported only when a figure is drawn, and each
source's colour and label (the paper's four fixed; any other name gets a colour of its own)."""

from __future__ import annotations

from typing import Any

from advdb.analytics.palette import COLORS, color_of

__all__ = ["COLORS", "color_of", "pyplot"]


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend with the reports' style (imported here, on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 8, "figure.dpi": 150})
    return plt


def close(figure: Any) -> None:
    """Free a drawn figure (nothing to do when none was drawn)."""
    if figure is not None:
        pyplot().close(figure)
