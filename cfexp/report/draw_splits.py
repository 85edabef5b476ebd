"""The picture of an experiment's splits (docs/splits.png), drawn from its file as every report draws its own:
`python -m cfexp.report.draw_splits experiments/variants.toml docs/splits.png`."""

from __future__ import annotations

import sys
from pathlib import Path

from cfexp.config.experiment import load_experiment
from cfexp.data.dataset import load_dataset
from cfexp.report.protocol import split_sizes
from cfexp.report.split_figures import splits_figure


def main(argv: list[str] | None = None) -> int:
    experiment_path, out = (argv or sys.argv[1:])[:2]
    experiment = load_experiment(experiment_path)
    split = load_dataset(experiment.data).split
    print(splits_figure(split_sizes(split), Path(out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
