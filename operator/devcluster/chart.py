"""Draw time series as a small multi-panel chart: PDF with reportlab, PNG with poppler's pdftoppm.

Used by ``python -m devcluster.promcli chart`` to render the demo's main
figures (docs/images/demo-figures.png in docs/monitoring.md) from real
Prometheus data. reportlab is already a dependency (the PDF writer) and
pdftoppm comes with poppler (hack/install-system-deps.sh), so no plotting
library is needed.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from reportlab.graphics import renderPDF
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors

__all__ = ["Panel", "draw", "render_png"]

# (title, unit, [(legend, [(x seconds, y)])])
Panel = tuple[str, str, list[tuple[str, list[tuple[float, float]]]]]

COLORS = [
    colors.HexColor("#2f7ed8"),
    colors.HexColor("#d9534f"),
    colors.HexColor("#5cb85c"),
    colors.HexColor("#f0ad4e"),
]
PANEL_W, PANEL_H = 360, 200
COLUMNS = 2


def _panel(drawing: Drawing, x: float, y: float, panel: Panel, x_max: float | None) -> None:
    title, unit, lines = panel
    drawing.add(String(x + 10, y + PANEL_H - 16, f"{title} ({unit})", fontName="Helvetica-Bold", fontSize=10))
    drawn = [(legend, points) for legend, points in lines if points]
    if not drawn:
        drawing.add(String(x + 60, y + PANEL_H / 2, "no data", fontName="Helvetica", fontSize=9))
        return
    plot = LinePlot()
    plot.x, plot.y, plot.width, plot.height = x + 45, y + 45, PANEL_W - 65, PANEL_H - 80
    plot.data = [points if len(points) > 1 else points * 2 for _, points in drawn]
    top = max(v for _, points in drawn for _, v in points)
    plot.yValueAxis.valueMin = 0
    plot.yValueAxis.valueMax = top * 1.15 if top > 0 else 1
    plot.xValueAxis.valueMin = 0
    if x_max:
        plot.xValueAxis.valueMax = x_max
    plot.xValueAxis.labelTextFormat = "%.0f"
    plot.xValueAxis.labels.fontSize = plot.yValueAxis.labels.fontSize = 7
    for i in range(len(drawn)):
        plot.lines[i].strokeColor = COLORS[i % len(COLORS)]
        plot.lines[i].strokeWidth = 1.6
    drawing.add(plot)
    drawing.add(String(x + PANEL_W / 2 - 35, y + 22, "seconds into the run", fontName="Helvetica", fontSize=7))
    legend = Legend()
    legend.x, legend.y = x + 55, y + PANEL_H - 26
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.fontSize = 8
    legend.dx = legend.dy = 6
    legend.deltax = 70
    legend.colorNamePairs = [(COLORS[i % len(COLORS)], name) for i, (name, _) in enumerate(drawn)]
    drawing.add(legend)


def draw(panels: list[Panel], caption: str, x_max: float | None = None) -> Drawing:
    rows = (len(panels) + COLUMNS - 1) // COLUMNS
    drawing = Drawing(PANEL_W * COLUMNS, PANEL_H * rows + 24)
    drawing.add(String(10, PANEL_H * rows + 8, caption, fontName="Helvetica", fontSize=9))
    for index, panel in enumerate(panels):
        column, row = index % COLUMNS, index // COLUMNS
        _panel(drawing, column * PANEL_W, (rows - 1 - row) * PANEL_H, panel, x_max)
    return drawing


def render_png(panels: list[Panel], caption: str, png: Path, x_max: float | None = None, dpi: int = 110) -> Path:
    """Write the chart to ``png`` (through a temporary PDF and pdftoppm); return the path."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "chart.pdf"
        renderPDF.drawToFile(draw(panels, caption, x_max), str(pdf))
        subprocess.run(
            ["pdftoppm", "-png", "-r", str(dpi), "-singlefile", str(pdf), str(png.with_suffix(""))],
            check=True,
            capture_output=True,
        )
    return png
