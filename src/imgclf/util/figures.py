"""Figures saved as PNG files, atomically."""
from __future__ import annotations

import io
from pathlib import Path


def save_figure(ax, path: str | Path) -> None:
    """Save ``ax``'s figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    from .files import write_bytes

    fig = ax.figure
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes(path, buf.getvalue())
