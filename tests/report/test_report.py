"""A report built from a tiny sweep in temporary stores."""

import re
from html.parser import HTMLParser

import mlflow
import pytest
from tiny import TINY

from cfexp.cli.main import main
from cfexp.track import default_uri

pytestmark = pytest.mark.e2e  # real sweeps and stores: minutes (make test-fast leaves it out)

VOID = {"meta", "img", "br", "hr", "input", "link"}


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.headings, self.open = [], [], []
        self.cells: list[str] = []
        self._in = None

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.open.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self._in = tag

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"unbalanced </{tag}>"
        self.open.pop()

    def handle_startendtag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, text):
        if self.open and self.open[-1] in ("h2", "h3"):
            self.headings.append(text.strip())
        if self.open and self.open[-1] in ("td", "strong"):
            self.cells.append(text.strip())


@pytest.fixture()
def swept(workdir, small_dir):
    path = workdir / "experiments" / "tiny.toml"
    path.write_text(TINY.format(ratings=small_dir).replace('name = "tiny"', 'name = "tiny"\ndescription = "t"'))
    assert main(["sweep", str(path), "--quiet"]) == 0
    return path


def build(path) -> tuple[Page, str]:
    assert main(["report", str(path)]) == 0
    folder = path.parents[1] / "reports" / "tiny"
    html = (folder / "index.html").read_text()
    page = Page()
    page.feed(html)
    page.close()
    assert page.open == [], f"unclosed {page.open}"
    return page, folder


def test_report_from_a_tiny_sweep(swept):
    page, folder = build(swept)
    assert (folder / "report.md").read_text().startswith("# cfexp report: tiny")
    # every referenced figure exists and is a non-empty PNG
    assert page.images
    for src in page.images:
        png = (folder / src).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    # sections that match the data: no seed run, no test split; numbered in order
    majors = [h for h in page.headings if h.split(" ")[0].endswith(".")]
    assert [h.split(". ")[0] for h in majors] == [str(i) for i in range(1, len(majors) + 1)]
    titles = [h.split(". ", 1)[1] for h in majors]
    assert titles[:3] == ["The dataset", "Protocol: the splits", "Variant leaderboard"]  # no seed lesson run
    assert titles[3].startswith("Ranking") and titles[4].startswith("Repeated evaluation")
    assert "There is no test split, so every figure here is a validation figure" in (folder / "report.md").read_text()
    assert "Init ranges" in titles  # a dot_bias_sigmoid study exists
    assert "What the best model learned" in titles

    # the leaderboard's numbers are MLflow's
    mlflow.set_tracking_uri(default_uri())
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("tiny")
    parents = client.search_runs([experiment.experiment_id], "tags.`cfexp.role` = 'study'")
    for parent in parents:
        best = parent.data.metrics["best_val_loss"]
        assert f"{best:.4f}" in page.cells
    # every trial is linked by its MLflow run id
    children = client.search_runs([experiment.experiment_id], "tags.`optuna.state` != ''")
    text = (folder / "report.md").read_text()
    for child in children:
        if "mlflow.parentRunId" in child.data.tags:
            assert child.info.run_id in text
    # the report is logged on an MLflow run of the experiment
    reports = client.search_runs([experiment.experiment_id], "tags.`cfexp.role` = 'report'")
    assert len(reports) == 1
    assert {a.path for a in client.list_artifacts(reports[0].info.run_id, "report")} >= {
        "report/index.html",
        "report/report.md",
    }


def test_rank_one_is_computed_from_the_weights(swept):
    swept.write_text(
        swept.read_text().replace(
            'name = "sig"\nvariant = "dot_bias_sigmoid"',
            'name = "sig"\nvariant = "dot_bias_sigmoid"\ninit = "constant(0.01)"',
        )
    )
    assert (
        main(
            [
                "sweep",
                str(swept),
                "--quiet",
                "--set",
                "sweep.variants=[{name = 'const', variant = 'dot_bias_sigmoid', init = 'constant(0.01)'}]",
            ]
        )
        == 0
    )
    _, folder = build(swept)
    text = (folder / "report.md").read_text()
    assert re.search(r"const \(best trial\): effective rank \*\*1\*\* of \d+ factors", text)


def test_seed_section_appears_once_the_seed_experiment_ran(swept, small_dir):
    assert (
        main(
            [
                "train",
                "experiments/seed_reproduction.toml",
                "--ratings",
                str(small_dir),
                "--quiet",
                "--set",
                "n_factors=4",
            ]
        )
        == 0
    )
    page, _ = build(swept)
    assert any("seed lesson" in h for h in page.headings)


def test_report_without_a_sweep_is_a_clear_error(workdir, capsys):
    assert main(["report", "experiments/variants.toml"]) == 2
    assert "run cfexp sweep" in capsys.readouterr().err
