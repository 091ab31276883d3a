"""`adscore report`: the self-contained HTML report, from the CLI and in a real headless browser."""
import base64
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import assert_clean_error
from sklearn.metrics import roc_auc_score

import pyod_ae_ext
from pyod_ae_ext.cli import cli

pytest.importorskip("matplotlib")

EVIL_COLUMN = "<script>alert('column')</script>"
EVIL_ID = '<img src=x onerror="alert(1)">'
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A labelled CSV whose shifted rows stand out in a column named like a script tag, and a Toll model."""
    folder = tmp_path_factory.mktemp("report")
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.normal(size=(120, 4)), columns=["a", "b", EVIL_COLUMN, "d"])
    frame.insert(0, "id", [f"r{i}" for i in range(120)])
    frame.loc[0, "id"] = EVIL_ID
    frame["label"] = 0
    frame.loc[:5, EVIL_COLUMN] += 8
    frame.loc[:5, "label"] = 1
    data = folder / "data.csv"
    frame.to_csv(data, index=False)
    model = folder / "toll.adscore"
    result = invoke("fit", "-d", "toll", "-p", "epochs=15", "-p", "hidden_dims=[8]", "-p", "latent_dim=2",
                    "--seed", 0, "--exclude", "id,label", data, "-o", model)
    assert result.exit_code == 0, result.output
    return {"data": data, "model": model, "frame": frame, "folder": folder}


def invoke(*args, **kwargs):
    from click.testing import CliRunner

    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


class Outline(HTMLParser):
    """Headings, images and table rows of an HTML page, and any element that runs or loads something."""

    def __init__(self):
        super().__init__()
        self.headings, self.images, self.row_tables, self.scripts, self.links = [], [], [], 0, []
        self._heading = None
        self._table_classes = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("h1", "h2", "h3"):
            self._heading = ""
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "script":
            self.scripts += 1
        elif tag == "table":
            self._table_classes.append(attrs.get("class"))
            if attrs.get("class") == "rows":
                self.row_tables.append(0)
        elif tag == "tr" and self._table_classes and self._table_classes[-1] == "rows":
            self.row_tables[-1] += 1
        for name, value in attrs.items():
            if name in ("href", "src") and value and not value.startswith("data:"):
                self.links.append(value)
            if name.startswith("on"):
                self.scripts += 1

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(self._heading.strip())
            self._heading = None
        elif tag == "table" and self._table_classes:
            self._table_classes.pop()

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data


def outline(page: str) -> Outline:
    parser = Outline()
    parser.feed(page)
    return parser


def assert_self_contained(page: str, parsed: Outline):
    assert parsed.scripts == 0 and parsed.links == []
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page
    for image in parsed.images:
        assert image["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(image["src"].split(",", 1)[1])[:8] == PNG_MAGIC
        assert image.get("alt")


def model_scores(files):
    detector = pyod_ae_ext.load(files["model"])
    return detector.decision_function(files["frame"][["a", "b", EVIL_COLUMN, "d"]].to_numpy(float))


# ---- content -----------------------------------------------------------------------------


def test_report_with_labels_holds_every_section(files, tmp_path):
    output = tmp_path / "report.html"
    result = invoke("report", "-m", files["model"], "--id-column", "id", "--label-column", "label", "--top", 10,
                    files["data"], "-o", output)
    assert result.exit_code == 0, result.output
    assert f"wrote {output}" in result.stderr
    page = output.read_text(encoding="utf-8")
    parsed = outline(page)
    assert parsed.headings[0] == "Anomaly report: toll on data.csv"
    assert {"Model", "Parameters", "Score distribution", "Top 10 anomalies", "Which features carry the scores",
            "Metrics against the labels"} <= set(parsed.headings)
    assert parsed.row_tables == [11]  # header + 10 rows
    assert len(parsed.images) == 4  # training loss, histogram, heat map, ROC + PR
    assert_self_contained(page, parsed)
    scores = model_scores(files)
    labels = files["frame"]["label"].to_numpy()
    assert f"{roc_auc_score(labels, scores):.4f}" in page
    assert re.search(r"epochs trained</th><td>(\d+)<", page).group(1) == "15"
    assert "rows scored" in page and "content SHA-256" in page and "lam" in page
    listed = [int(row) for row in re.findall(r'<tr><td class="num">\d+</td><td class="num">(\d+)</td>', page)]
    assert listed == list(np.argsort(-scores, kind="stable")[:10])
    assert set(listed) & set(range(6))  # a shifted row leads, carried by the column it was shifted in
    first_feature = re.search(r'<span class="feature"><span class="name">([^<]*)</span>', page).group(1)
    assert first_feature == "&lt;script&gt;alert(&#x27;column&#x27;)&lt;/script&gt;"


def test_user_strings_are_escaped(files, tmp_path):
    output = tmp_path / "report.html"
    result = invoke("report", "-m", files["model"], "--id-column", "id", "--label-column", "label",
                    files["data"], "-o", output)
    assert result.exit_code == 0, result.output
    page = output.read_text(encoding="utf-8")
    assert EVIL_COLUMN not in page and EVIL_ID not in page
    assert "&lt;script&gt;alert(&#x27;column&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert outline(page).scripts == 0


def test_report_without_labels_to_stdout(files):
    result = invoke("report", "-m", files["model"], files["data"], "-o", "-")
    assert result.exit_code == 0, result.output
    page = result.stdout
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "wrote" not in result.stderr
    parsed = outline(page)
    assert "No label column was given" in page and "ROC-AUC</th>" not in page
    assert len(parsed.images) == 3
    assert parsed.row_tables == [21]  # the default --top 20
    assert_self_contained(page, parsed)


def test_labels_of_one_class_give_a_note_not_metrics(files, tmp_path):
    frame = files["frame"].copy()
    frame["label"] = 0
    data = tmp_path / "normal.csv"
    frame.to_csv(data, index=False)
    result = invoke("report", "-m", files["model"], "--label-column", "label", data, "-o", "-")
    assert result.exit_code == 0, result.output
    assert "The labels hold only normal rows (0)" in result.stdout
    assert "ROC-AUC</th>" not in result.stdout and len(outline(result.stdout).images) == 3


def test_a_detector_without_feature_contributions(files, tmp_path):
    model = tmp_path / "forest.adscore"
    fitted = invoke("fit", "-d", "iforest", "-p", "n_estimators=20", "--seed", 0, "--exclude", "id,label",
                    files["data"], "-o", model)
    assert fitted.exit_code == 0, fitted.output
    result = invoke("report", "-m", model, "--label-column", "label", "--top", 5, files["data"], "-o", "-")
    assert result.exit_code == 0, result.output
    parsed = outline(result.stdout)
    assert "does not attribute its score to features" in result.stdout
    assert parsed.row_tables == [6]
    assert len(parsed.images) == 2  # histogram, ROC + PR: no heat map, no training loss
    assert "Metrics against the labels" in parsed.headings


def test_build_report_shows_fit_information_from_the_metadata(blobs):
    from pyod_ae_ext.report import build_report

    train, test = blobs
    detector = pyod_ae_ext.make_detector("ae", epochs=3, random_state=0).fit(train)
    metadata = {"detector": "ae", "params": {"epochs": 3, "hidden_dims": {"__tuple__": [64, 32]}},
                "fit": {"seconds": 1.5, "note": "<b>bold</b>"}, "versions": {"torch": "x"}}
    page = build_report(detector, test, list("abcde"), metadata=metadata, data_name="<test>", top=3)
    parsed = outline(page)
    assert parsed.headings[0] == "Anomaly report: ae on <test>" and "Top 3 anomalies" in parsed.headings
    assert '<th scope="row">fit</th><td>{&quot;note&quot;: &quot;&lt;b&gt;bold&lt;/b&gt;&quot;, ' in page
    assert "<code>(64, 32)</code>" in page and "<b>" not in page
    assert parsed.row_tables == [4]
    assert_self_contained(page, parsed)


# ---- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("case, fragment", [
    ("output-is-data", "is also an input"),
    ("output-is-model", "is also an input"),
    ("missing-directory", "does not exist"),
    ("output-is-directory", "is a directory"),
    ("missing-label-column", "--label-column names column(s) not in the data: nope"),
    ("missing-id-column", "--id-column names column(s) not in the data: nope"),
    ("missing-model", "nowhere.adscore"),
    ("missing-data", "data file"),
])
def test_bad_input_is_one_error_line_and_no_file(files, tmp_path, case, fragment):
    model, data, output = files["model"], files["data"], tmp_path / "report.html"
    extra = []
    if case == "output-is-data":
        output = data
    elif case == "output-is-model":
        output = model
    elif case == "missing-directory":
        output = tmp_path / "nowhere" / "report.html"
    elif case == "output-is-directory":
        output = tmp_path
    elif case == "missing-label-column":
        extra = ["--label-column", "nope"]
    elif case == "missing-id-column":
        extra = ["--id-column", "nope"]
    elif case == "missing-model":
        model = tmp_path / "nowhere.adscore"
    elif case == "missing-data":
        data = tmp_path / "nowhere.csv"
    before = {p: p.read_bytes() for p in (files["model"], files["data"])}
    result = invoke("report", "-m", model, *extra, data, "-o", output)
    assert_clean_error(result, fragment)
    assert {p: p.read_bytes() for p in before} == before
    if case not in ("output-is-data", "output-is-model", "output-is-directory"):
        assert not output.exists()
    assert not list(tmp_path.glob(".report.html.*"))


def test_an_error_keeps_the_previous_report(files, tmp_path):
    output = tmp_path / "report.html"
    output.write_text("the previous report")
    result = invoke("report", "-m", files["model"], "--label-column", "id", files["data"], "-o", output)
    assert_clean_error(result, "label column 'id' must hold 0 (normal) and 1 (anomaly)")
    assert output.read_text() == "the previous report"


def test_missing_matplotlib_names_the_extra(files, tmp_path, monkeypatch):
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)
    output = tmp_path / "report.html"
    result = invoke("report", "-m", files["model"], files["data"], "-o", output)
    assert_clean_error(result, "adscore report needs matplotlib", 'pip install "pyod-ae-ext[plot]"')
    assert not output.exists()


def test_report_module_does_not_import_torch():
    code = "import sys, pyod_ae_ext.report, pyod_ae_ext.plots; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


# ---- in a real browser --------------------------------------------------------------------


def chromium(*args, profile):
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(files, tmp_path):
    import matplotlib.image

    report = tmp_path / "report.html"
    result = invoke("report", "-m", files["model"], "--id-column", "id", "--label-column", "label",
                    files["data"], "-o", report)
    assert result.exit_code == 0, result.output
    url = report.resolve().as_uri()
    dom = chromium("--dump-dom", url, profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr
    parsed = outline(dom.stdout)
    assert parsed.headings[0] == "Anomaly report: toll on data.csv"
    assert "Top 20 anomalies" in parsed.headings and "Metrics against the labels" in parsed.headings
    assert parsed.row_tables == [21] and len(parsed.images) == 4
    assert "&lt;script&gt;" in dom.stdout and parsed.scripts == 0

    # the same page with every image made undecodable: what the plots add to the screen
    page = report.read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    broken.write_text(page.replace("data:image/png;base64,", "data:image/png;base64,AAAA"), encoding="utf-8")
    colourful = {}
    for name, path in (("report", report), ("broken", broken)):
        screenshot = tmp_path / f"{name}.png"
        shot = chromium(f"--screenshot={screenshot}", "--window-size=1280,2000", path.resolve().as_uri(),
                        profile=tmp_path / f"profile-{name}")
        assert shot.returncode == 0, shot.stderr
        image = matplotlib.image.imread(screenshot)
        assert image.shape[:2] == (2000, 1280)
        red, green, blue = image[..., 0], image[..., 1], image[..., 2]
        colourful[name] = int((((blue - red > 0.25) & (blue - green > 0.1))
                               | ((red - blue > 0.3) & (red - green > 0.3))).sum())
    assert colourful["report"] > colourful["broken"] + 20000  # the embedded plots were decoded and drawn
