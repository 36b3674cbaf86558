"""Plots (real PNG + SVG files, headless) and the self-contained HTML report."""

from __future__ import annotations

import base64
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from safety_landscape.client.html_page import write_html_page
from safety_landscape.client.plots import plot_1d, plot_2d, plot_side_by_side

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GRID = [round(-0.5 + 0.05 * i, 2) for i in range(21)]


def basin(width: float) -> list[tuple[float, float]]:
    return [(a, min(100.0, max(0.0, (abs(a) - width) * 400))) for a in GRID]


def check_png(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG_SIGNATURE, path


def check_svg(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg", path
    return root


def svg_text(path: Path) -> str:
    return "".join(check_svg(path).itertext())


def test_plot_1d_three_series_with_visage(tmp_path):
    series = {"d0|default": basin(0.2), "d1|default": basin(0.3), "d2|default": basin(0.1)}
    visage = {"d0|default": 73.33, "d1|default": 85.0, "d2|default": 60.5}
    out = plot_1d(series, tmp_path / "figs" / "oned.png", title="LLaMA 1D", visage=visage)
    assert out == [tmp_path / "figs" / "oned.png", tmp_path / "figs" / "oned.svg"]
    check_png(out[0])
    text = svg_text(out[1])  # svg.fonttype "none": labels are real text
    assert "VISAGE 73.33" in text and "VISAGE 85.00" in text and "LLaMA 1D" in text


def test_plot_1d_keeps_dotted_stems(tmp_path):
    out = plot_1d({"d0": basin(0.2)}, tmp_path / "llama3.1-8b", title="t", ylim=None)
    assert [p.name for p in out] == ["llama3.1-8b.png", "llama3.1-8b.svg"]


def test_plot_1d_errors(tmp_path):
    with pytest.raises(ValueError, match="no series"):
        plot_1d({}, tmp_path / "x", title="t")
    with pytest.raises(ValueError, match="'d0' has no points"):
        plot_1d({"d0": []}, tmp_path / "x", title="t")


def test_plot_2d_grid(tmp_path):
    a = [-0.5, -0.25, 0.0, 0.25, 0.5]
    b = [-0.4, -0.2, 0.0, 0.2, 0.4]
    z = [[min(100.0, (abs(x) + abs(y)) * 150) for x in a] for y in b]  # len(b) x len(a)
    z[0][0] = float("nan")  # a point not measured yet
    out = plot_2d(a, b, z, tmp_path / "plane.png", title="2D plane")
    assert [p.name for p in out] == [
        "plane.png", "plane.svg", "plane_surface.png", "plane_surface.svg"]
    for p in out:
        check_png(p) if p.suffix == ".png" else check_svg(p)
    with pytest.raises(ValueError, match=r"expected \(len\(b\), len\(a\)\) = \(5, 4\)"):
        plot_2d(a[:4], b, z, tmp_path / "bad", title="bad")


def test_plot_2d_interpolation_plane_names_its_axes_and_marks_the_target(tmp_path):
    a = [-0.5, 0.0, 0.5, 1.0, 1.5]
    b = [-0.1, 0.0, 0.1]
    z = [[100.0] * 5, [10.0, 18.75, 66.25, 100.0, 100.0], [100.0] * 5]
    out = plot_2d(a, b, z, tmp_path / "plane", title="plane", axis_labels=("a: toward attack-100", "b: random"),
                  target=(1.0, 0.0, "attack-100"))
    svg = out[1].read_text()
    for text in ("a: toward attack-100", "b: random", "attack-100"):
        assert text in svg


def test_plot_side_by_side(tmp_path):
    capability = {"MMLU": [(a, 60 - 40 * abs(a)) for a in GRID]}
    out = plot_side_by_side({"ASR": basin(0.2)}, capability, tmp_path / "sbs", title="Fig 7",
                            capability_label="accuracy (%)")
    check_png(out[0])
    text = svg_text(out[1])
    assert "accuracy (%)" in text and "ASR (%)" in text


def test_client_modules_import_without_torch_or_pyplot():
    code = (
        "import sys\n"
        "import safety_landscape.client.records, safety_landscape.client.visage\n"
        "import safety_landscape.client.store, safety_landscape.client.plots\n"
        "import safety_landscape.client.html_page\n"
        "bad = [m for m in ('torch', 'transformers', 'matplotlib.pyplot') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href")]

    def handle_data(self, data):
        self.text.append(data)


def test_report(tmp_path):
    plots = plot_1d({"d0": basin(0.2)}, tmp_path / "one", title="one")
    plots += plot_2d([-0.5, 0, 0.5], [-0.5, 0, 0.5], [[100, 50, 100], [50, 0, 50], [100, 50, 100]],
                     tmp_path / "two", title="two")
    rows = [
        {"series": "d0|default", "rule": "reference", "visage": 73.3333},
        {"series": "<b>d1</b>", "rule": "reference", "visage": 85.0, "points": 21},
    ]
    settings = {"model": "tiny", "system_prompt": "<script>alert('x')</script>", "seed": 123,
                "path": tmp_path}
    out = write_html_page(tmp_path / "rep" / "report.html", title="Report & <title>", plots=plots,
                       visage_rows=rows, settings=settings, notes="first line\n<i>note</i>")
    html_text = out.read_text(encoding="utf-8")

    parser = _Collector()
    parser.feed(html_text)
    parser.close()
    assert "script" not in parser.tags and "b" not in parser.tags and "i" not in parser.tags
    assert parser.tags.count("img") == len(plots) == 6
    assert all(u.startswith("data:") for u in parser.urls) and not any(
        "http" in u for u in parser.urls)
    for p in plots:  # every plot embedded byte for byte
        assert base64.b64encode(p.read_bytes()).decode() in html_text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html_text
    text = "".join(parser.text)
    assert "<script>alert('x')</script>" in text  # shown to the reader as text
    assert "Report & <title>" in text and "<b>d1</b>" in text
    assert "73.33" in text and "85.00" in text and "points" in text


def test_report_rejects_unknown_plot_type(tmp_path):
    bad = tmp_path / "x.pdf"
    bad.write_bytes(b"%PDF")
    with pytest.raises(ValueError, match=r"png or \.svg"):
        write_html_page(tmp_path / "r.html", title="t", plots=[bad], visage_rows=[], settings={})


def test_figure_functions_return_figures_and_write_nothing(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from safety_landscape.client.plots import figure_1d, figure_side_by_side, figures_2d

    monkeypatch.chdir(tmp_path)
    one = figure_1d({"direction 1": basin(0.2)}, title="one")
    flat, surface = figures_2d([-0.5, 0, 0.5], [-0.5, 0, 0.5], [[100, 50, 100], [50, 0, 50], [100, 50, 100]],
                               title="two")
    side = figure_side_by_side({"direction 1": basin(0.2)}, {"direction 1": [(a, 50.0) for a in GRID]}, title="s",
                               capability_label="accuracy (%)")
    assert all(isinstance(f, Figure) for f in (one, flat, surface, side))
    assert list(tmp_path.iterdir()) == []  # drawing is not writing


def test_save_figure_writes_png_svg_and_pdf_reproducibly(tmp_path):
    from safety_landscape.client.plots import FIGURE_FORMATS, figure_1d, save_figure

    fig = figure_1d({"direction 1": basin(0.2)}, title="three formats")
    paths = save_figure(fig, tmp_path / "f.png")
    assert [p.name for p in paths] == ["f.png", "f.svg", "f.pdf"] and FIGURE_FORMATS == ("png", "svg", "pdf")
    check_png(paths[0])
    check_svg(paths[1])
    assert paths[2].read_bytes()[:5] == b"%PDF-" and paths[2].stat().st_size > 1000
    again = save_figure(fig, tmp_path / "g")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]  # no dates, no random ids
    assert [p.name for p in save_figure(fig, tmp_path / "only", formats=("pdf",))] == ["only.pdf"]
    with pytest.raises(ValueError, match="formats must be some of png, svg, pdf"):
        save_figure(fig, tmp_path / "h", formats=("jpg",))
    assert [p.suffix for p in plot_1d({"d": basin(0.2)}, tmp_path / "k", title="t", formats=FIGURE_FORMATS)] == [
        ".png", ".svg", ".pdf"]


def test_legends_sit_outside_the_axes_and_bands_are_drawn():
    from safety_landscape.client.plots import figure_1d, figure_side_by_side

    names = [f"direction {i} (a long name, VISAGE 12.34)" for i in range(1, 6)]
    series = {n: basin(0.05 * i) for i, n in enumerate(names, 1)}
    bands = {n: [(a, max(0.0, v - 10), min(100.0, v + 10)) for a, v in pts] for n, pts in series.items()}
    side = figure_side_by_side(series, {"direction 1": [(a, 40.0) for a in GRID]}, title="s", capability_label="acc")
    for fig in (figure_1d(series, title="five series", bands=bands), side):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        (legend,) = fig.legends
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), "the legend covers an axis"
    ax = figure_1d(series, title="t", bands=bands).axes[0]
    assert len(ax.collections) == len(series)  # one shaded band per series
    assert len(figure_1d(series, title="t").axes[0].collections) == 0
