"""Report page furniture: contents, CSV downloads that carry only shown cells, synthetic banner, PDF."""

from __future__ import annotations

import re
import urllib.parse

import pytest

from cannabis_market.errors import InputError
from cannabis_market.reports import page

PAGE = """<html><head><title>t</title></head><body><main>
<h1 id="Title">Title</h1>
<h2 id="Headline">Headline<a class="anchor-link" href="#Headline">\u00b6</a></h2>
<div class="cm-table-wrap"><table class="cm-table"><caption>Sales by region</caption>
<thead><tr><th>Region</th><th class="cm-num">Sales</th></tr></thead>
<tbody><tr><td>East, North</td><td class="cm-num">CA$1.2M</td></tr>
<tr><td>=HYPERLINK("x")</td><td class="cm-num cm-suppressed">suppressed</td></tr></tbody></table></div>
<h2>Sales over time</h2><p>text</p>
<h2 id="What-if">What if</h2>
</main></body></html>"""


def _csv_links(html_page: str) -> list[str]:
    return [
        urllib.parse.unquote(m) for m in re.findall(r'href="data:text/csv;charset=utf-8,([^"]*)"', html_page)
    ]


def test_contents_lists_every_section_and_links_to_it() -> None:
    out = page.add_toc(PAGE)
    toc = out[out.index('class="cm-toc"') : out.index("</nav>")]
    assert [t for t in re.findall(r">([^<]+)</a>", toc)] == ["Headline", "Sales over time", "What if"]
    assert 'href="#cm-section-2"' in toc and 'id="cm-section-2"' in out
    assert out.index("cm-toc") > out.index("</h1>")
    assert "cm-toc" not in page.add_toc(PAGE, min_sections=4)


def test_csv_download_carries_exactly_the_shown_cells() -> None:
    out = page.add_csv_downloads(PAGE, stem="01 overview")
    (csv,) = _csv_links(out)
    rows = csv.strip().split("\r\n")
    assert rows[0] == "Region,Sales"
    assert rows[1] == '"East, North",CA$1.2M'
    assert rows[2].endswith(",suppressed")
    assert rows[2].startswith("\"'=HYPERLINK")  # a formula is neutralised
    assert 'download="01_overview-1.csv"' in out
    assert page.add_csv_downloads(out) == out  # idempotent


def test_synthetic_banner_only_for_synthetic_data() -> None:
    out = page.add_furniture(PAGE, manifest={"source": "synthetic", "name": "synthetic-ontario"})
    assert "SYNTHETIC DATA" in out and out.index('class="cm-synthetic"') < out.index("<h1")
    assert "SYNTHETIC DATA" not in page.add_furniture(PAGE, manifest={"source": "statcan", "name": "x"})
    assert "@media print" in out


def test_pdf_without_chromium_is_a_clear_input_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(page, "chromium", lambda: None)
    with pytest.raises(InputError, match="--pdf: no Chromium"):
        page.print_pdf(tmp_path / "a.html", tmp_path / "a.pdf")
    assert not (tmp_path / "a.pdf").exists()


@pytest.mark.browser
@pytest.mark.skipif(page.chromium() is None, reason="chromium not installed (make browser)")
def test_pdf_printed_by_headless_chromium(tmp_path) -> None:
    src = tmp_path / "r.html"
    src.write_text(page.add_furniture(PAGE, manifest={"source": "synthetic"}), encoding="utf-8")
    pdf = page.print_pdf(src, tmp_path / "r.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
