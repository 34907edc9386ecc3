"""The HTML report: pure figure helpers, and a report of a real smoke run checked in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from astrobench.testing import run_cli
from astrobench.datasets.display import asinh_rgb, rgb_band_indices
from astrobench.benchmark.report import build_report, filter_records
from astrobench.benchmark.report_sections import _queries
from astrobench.benchmark.store import result_path, write_result

# -- asinh RGB composites ---------------------------------------------------------------------------


def one_band(bands, band, value=5.0, size=8):
    image = np.zeros((len(bands), size, size), np.float32)
    image[bands.index(band)] = value
    return image


def test_asinh_rgb_maps_g_r_i_to_blue_green_red_for_ugriz():
    bands = ("u", "g", "r", "i", "z")
    assert rgb_band_indices(bands) == (3, 2, 1)
    for band, channel in (("i", 0), ("r", 1), ("g", 2)):
        rgb = asinh_rgb(one_band(bands, band), bands)
        assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
        lit = [c for c in range(3) if rgb[..., c].max() > 0]
        assert lit == [channel], (band, lit)
    for unused in ("u", "z"):
        assert asinh_rgb(one_band(bands, unused), bands).max() == 0


def test_asinh_rgb_grz_uses_z_as_red_and_one_or_two_bands_are_grey():
    bands = ("g", "r", "z")
    rgb = asinh_rgb(one_band(bands, "z"), bands)
    assert rgb[..., 0].max() > 0 and rgb[..., 1:].max() == 0
    for bands in (("r",), ("g", "r")):
        image = np.random.default_rng(0).uniform(0, 1, (len(bands), 6, 6)).astype(np.float32)
        rgb = asinh_rgb(image, bands)
        assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all() and rgb.max() > 0


def test_asinh_rgb_keeps_colour_ratios_is_monotonic_and_handles_bad_pixels():
    bands = ("g", "r", "i")
    image = np.zeros((3, 1, 4), np.float32)
    ramp = np.array([0.1, 0.5, 1.0, 2.0], np.float32)
    image[0], image[1], image[2] = ramp * 1.0, ramp * 2.0, ramp * 4.0  # g : r : i = 1 : 2 : 4
    rgb = asinh_rgb(image, bands, stretch=100.0).astype(float)[0]
    assert np.all(np.diff(rgb[:, 0]) > 0)  # brighter flux, brighter pixel
    nonzero = rgb[:, 2] > 20
    np.testing.assert_allclose(rgb[nonzero, 0] / rgb[nonzero, 2], 4.0, rtol=0.1)  # red : blue = i : g
    # saturated pixels keep their hue (scaled as a whole); negatives, NaN and inf are black
    hot = asinh_rgb(image * 1000, bands, stretch=1.0).astype(float)[0, -1]
    assert hot[0] == 255 and hot[0] / hot[2] == pytest.approx(4.0, rel=0.05)
    bad = np.array([[[-5.0, np.nan, np.inf]]] * 3, np.float32)
    assert asinh_rgb(bad, bands).max() == 0
    with pytest.raises(ValueError, match="3 bands"):
        asinh_rgb(np.zeros((2, 4, 4)), bands)


def test_asinh_rgb_shared_stretch_puts_images_on_one_scale():
    bands = ("g", "r", "i")
    faint, bright = np.full((3, 4, 4), 1.0, np.float32), np.full((3, 4, 4), 3.0, np.float32)
    # each on its own scale both reach full brightness; on a shared scale the faint one is darker
    assert asinh_rgb(faint, bands).max() == asinh_rgb(bright, bands).max() == 255
    assert asinh_rgb(faint, bands, stretch=3.0).max() < asinh_rgb(bright, bands, stretch=3.0).max()


def test_queries_start_with_the_rarest_class_and_skip_missing_labels():
    values = np.array([0, 0, 0, 0, 1, 0, -1, 0, 1, 0], float)
    picks = _queries(values, np.arange(10), 3)
    assert values[picks[0]] == 1 and values[picks[1]] == 0 and values[picks[2]] == 1
    assert len(set(picks)) == 3 and 6 not in picks


def test_filter_records_uses_leaderboard_semantics():
    records = [{"method": "a", "label_budget": None, "tag": None}, {"method": "b", "label_budget": 50, "tag": "full"}]
    assert filter_records(records, label_budget=["all"]) == records[:1]
    assert filter_records(records, label_budget=["50"], method=None) == records[1:]
    assert filter_records(records, tag=["full"], method=["a"]) == []


# -- a report of a real smoke run --------------------------------------------------------------------
PLUGIN = '''
"""Test doubles for the report: a method with reconstruct() and a task with redshift predictions."""
import torch
from astrobench.registry import METHODS, TASKS
from astrobench.testing import TinyAutoencoder, TinySizeTask, register_test_doubles

register_test_doubles()


class ReportRecon(TinyAutoencoder):
    def reconstruct(self, images):
        recon = self.decoder(self.encoder(images))
        mask = torch.zeros_like(images[:, :1])
        mask[..., ::2, :] = 1.0  # every other row hidden
        return recon, mask


class ReportPhotoZ(TinySizeTask):
    def evaluate(self, inputs, *, protocol, seed, label_budget):
        result = super().evaluate(inputs, protocol=protocol, seed=seed, label_budget=label_budget)
        pred = result.predictions
        result.predictions = pred.assign(z_spec=pred["size"] / 10, z_phot=pred["predicted"] / 10)[
            ["object_id", "z_spec", "z_phot"]]
        return result


METHODS.register("report-recon", ReportRecon, source="report test plugin")
TASKS.register("report-photoz", ReportPhotoZ, source="report test plugin")
'''
METHODS = ("tiny-ae", "report-recon", "random", "pixels")
EXPECTED_FIGURES = (
    [f"fig-tsne-{m}.png" for m in METHODS] + [f"fig-similarity-{m}.png" for m in METHODS]
    + ["fig-reconstruction-report-recon.png", "fig-photoz.png", "fig-label-efficiency.png",
       "fig-ablation-tiny-ae.png", "fig-training-curves.png"]
)


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    plugin = root / "report_plugin.py"
    plugin.write_text(PLUGIN)
    common = ["--plugin", str(plugin), "--dataset", "tiny", "--profile", "smoke", "--results-dir", str(root / "results"),
              "--cache-dir", str(root / "cache"), "--quiet", "--seeds", "0,1"]
    out = run_cli("run", *common, "--method", ",".join(METHODS), "--task", "tiny-size,report-photoz", "--labels", "20,all")
    assert out.returncode == 0, out.stderr
    # an ablation variant of tiny-ae, stored as a tagged copy of its untagged results with known score
    # changes (seed 0: -0.05, seed 1: -0.03 -> Δ = -0.04 ± 0.014); `run --tag` itself is the runner's business
    for path in sorted((root / "results").rglob("tiny-ae__*.json")):
        record = json.loads(path.read_text())
        if record["task"] != "tiny-size":
            continue
        record["tag"] = "fewer-steps"
        record["scores"]["r2"] -= {0: 0.05, 1: 0.03}[record["seed"]]
        target = result_path(root / "results", dataset=record["dataset"], profile=record["profile"],
                             task=record["task"], method=record["method"], config_hash=record["config_hash"],
                             protocol=record["protocol"], label_budget=record["label_budget"], seed=record["seed"],
                             tag=record["tag"])
        write_result(target, record, None)
    out = run_cli("report", "--plugin", str(plugin), "--results-dir", str(root / "results"), "--cache-dir",
                  str(root / "cache"), "--out", str(root / "site"), "--quiet")
    assert out.returncode == 0, out.stderr
    assert (root / "site" / "index.html").is_file(), out.stdout
    return root


def _open_image(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        image.load()
        return image.size


def test_report_has_every_figure_and_no_network_reference(smoke_report):
    site = smoke_report / "site"
    page = (site / "index.html").read_text()
    for name in EXPECTED_FIGURES:
        assert (site / name).is_file(), name
        width, height = _open_image(site / name)
        assert width > 50 and height > 50, name
        assert f'src="{name}"' in page, name
    assert "not made" not in page, page[page.find("not made") - 300 : page.find("not made") + 300]
    assert "http://" not in page and "https://" not in page and "<script" not in page
    # provenance: version, git SHA (or unknown), device
    record = json.loads(next((smoke_report / "results").rglob("*.json")).read_text())
    assert record["astrobench_version"] in page and record["device"] in page
    assert (record["git_sha"] or "unknown")[:12] in page
    # the ablation table compares the variant with the untagged run
    ablation = page.split('id="ablation"')[1]
    assert "Δ vs (untagged)" in ablation and "fewer-steps" in ablation
    assert ablation.count("−0.04 ± 0.014") == 2  # both label budgets, paired over seeds 0 and 1


class _Dom(HTMLParser):
    """Rows of the first leaderboard table and every <img> src of a dumped DOM."""

    def __init__(self):
        super().__init__()
        self.images, self.rows, self._table, self._done, self._cell, self._row = [], [], False, False, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src"))
        elif tag == "table" and "leaderboard" in (attrs.get("class") or "") and not self._done:
            self._table = True
        elif self._table and tag == "tr":
            self._row = []
        elif self._table and tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if self._table and tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif self._table and tag == "tr":
            self.rows.append(self._row)
        elif self._table and tag == "table":
            self._table, self._done = False, True


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)


def _chromium_args(tmp_path: Path) -> list[str]:
    return [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}"]


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed: apt-get install -y chromium")
def test_page_in_headless_chromium_has_the_table_and_valid_images(smoke_report, tmp_path):
    site = smoke_report / "site"
    url = (site / "index.html").resolve().as_uri()
    dom = subprocess.run([*_chromium_args(tmp_path), "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = _Dom()
    parsed.feed(dom.stdout)
    header, *body = parsed.rows
    assert header[:3] == ["rank", "method", "seeds"]
    assert any("tiny-size" in h for h in header) and any("report-photoz" in h for h in header)
    methods = [row[1] for row in body]
    assert sorted(methods) == sorted([*METHODS, "tiny-ae (fewer-steps)"])
    assert [row[0] for row in body] == [str(i + 1) for i in range(len(body))]
    assert sorted(parsed.images) == sorted(EXPECTED_FIGURES)
    for src in parsed.images:
        assert _open_image(site / src) > (0, 0)
    shot = tmp_path / "page.png"
    out = subprocess.run([*_chromium_args(tmp_path), f"--screenshot={shot}", "--window-size=1400,2000", url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert _open_image(shot) == (1400, 2000)


def _copy_results(source: Path, target: Path, pattern: str, edit) -> None:
    """The results under ``source`` matching ``pattern``, copied to ``target`` with ``edit(record)``
    applied to each result JSON (predictions copied as they are)."""
    for path in source.rglob(pattern):
        copy = target / path.relative_to(source)
        copy.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            record = json.loads(path.read_text())
            edit(record)
            copy.write_text(json.dumps(record))
        else:
            shutil.copy(path, copy)


def test_missing_inputs_are_reported_not_drawn(smoke_report, tmp_path):
    # only the random baseline, one budget, its cache gone: no figure can be made, and the page says why
    results = tmp_path / "results"
    _copy_results(smoke_report / "results", results, "random__*labels-all*",
                  lambda record: record.update(cache_dir=str(tmp_path / "gone")))
    index = build_report(results, tmp_path / "site", task="tiny-size")
    page = index.read_text()
    assert "<td>random</td>" in page and "report-photoz" not in page.split('id="leaderboard"')[1].split("</table>")[0]
    assert list((tmp_path / "site").glob("*.png")) == []
    assert "<img" not in page
    for expected in ("not in the cache", "no method in these results has a reconstruct()",
                     "no result has redshift predictions", "two or more label budgets", "several tags",
                     "no result has a pretraining loss curve"):
        assert expected in page, expected
    with pytest.raises(LookupError, match="no results match"):
        build_report(results, tmp_path / "site2", method=["mae"])


def test_report_cli_usage_errors(tmp_path):
    out = run_cli("report", "--results-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "site"))
    assert out.returncode == 2 and "does not exist" in out.stderr
    (tmp_path / "results").mkdir()
    out = run_cli("report", "--results-dir", str(tmp_path / "results"), "--out", str(tmp_path / "site"))
    assert out.returncode == 2 and "no results match" in out.stderr


def test_reading_results_runs_no_code_they_name(smoke_report, tmp_path):
    """A result naming a plugin file (that would leave a marker if imported) is read, reported, and
    the file never runs: models are rebuilt only from names this process registered (--plugin)."""
    marker = tmp_path / "ran.txt"
    evil = tmp_path / "evil_plugin.py"
    evil.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n")
    results = tmp_path / "results"
    _copy_results(smoke_report / "results", results, "report-recon__*labels-all__seed-0*",
                  lambda record: record["resolved_config"].update(plugins=[str(evil)]))
    out = run_cli("report", "--results-dir", str(results), "--cache-dir", str(smoke_report / "cache"),
                  "--out", str(tmp_path / "site"), "--quiet")
    assert out.returncode == 0, out.stderr
    assert not marker.exists()
    for ran in (run_cli("leaderboard", "--results-dir", str(results)),
                run_cli("compare", "report-recon", "report-recon", "--results-dir", str(results))):
        assert not marker.exists(), ran.stdout + ran.stderr
    page = (tmp_path / "site" / "index.html").read_text()
    # neither the method nor the dataset of these results is registered without --plugin: one line each
    reconstructions = page.split('id="reconstructions"')[1].split("</section>")[0]
    assert reconstructions.count('class="note"') == 1
    assert "not made for report-recon" in reconstructions and "--plugin" in reconstructions
    embeddings = page.split('id="embeddings"')[1].split("</section>")[0]
    assert embeddings.count('class="note"') == 1 and "unknown dataset" in embeddings


def test_a_missing_cache_is_one_line_per_section_and_photoz_has_a_panel_per_method(smoke_report, tmp_path):
    page = (smoke_report / "site" / "index.html").read_text()
    photoz = page.split('id="photoz"')[1].split("</section>")[0]
    assert f"{len(METHODS)} method(s), best first" in photoz  # one panel per method, none left out
    results = tmp_path / "results"
    _copy_results(smoke_report / "results", results, "*labels-all*",
                  lambda record: record.update(cache_dir=str(tmp_path / "gone")))
    page = build_report(results, tmp_path / "site", task="tiny-size").read_text()
    for key in ("embeddings", "similarity"):
        section = page.split(f'id="{key}"')[1].split("</section>")[0]
        assert section.count('class="note"') == 1, section
        assert "not in the cache" in section and all(m in section for m in METHODS)
