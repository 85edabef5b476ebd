"""`cfexp data`: a dataset's summary and the lesson's crosstab; `cfexp data fetch NAME`: a MovieLens release into the
cache, checked against its pinned size and SHA-256 (cfexp.data.releases); `cfexp data fetch` alone lists them."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from cfexp.errors import UserError
from cfexp.search.summary_document import write_atomically


def add_parser(sub) -> None:
    data = sub.add_parser("data", help="summarise a ratings dataset and write the lesson's crosstab; fetch releases")
    data.add_argument("--ratings", help="ratings.csv, a folder, a zip or a fetched release (default: the embedded one)")
    data.add_argument("--crosstab", default="reports/crosstab.csv", help="where to write the crosstab CSV")
    data.add_argument("--top", type=int, default=15, help="busiest users × most-rated movies (default 15)")
    data.set_defaults(handler=summary)
    actions = data.add_subparsers(metavar="ACTION")
    fetch = actions.add_parser("fetch", help="download a MovieLens release into the cache (CFEXP_DATA)")
    fetch.add_argument("name", nargs="?", help="ml-100k, ml-1m, ml-20m, ml-25m or ml-latest-small (none: list them)")
    fetch.add_argument("--dir", help="the cache folder (default: CFEXP_DATA, else the user's cache folder)")
    fetch.set_defaults(handler=fetch_release)


def summary(args: argparse.Namespace) -> int:
    from cfexp.data import ratings as data

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    ratings = data.load_ratings(args.ratings)
    info = data.summary(ratings, data.split_rows(len(ratings.frame)))
    for key in ("time_from", "time_to"):
        if key in info:
            info[key] = datetime.datetime.fromtimestamp(info[key], datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    for key, value in info.items():
        print(f"{key:>10}: {value}")
    table = data.crosstab(ratings, args.top)
    write_atomically(Path(args.crosstab), table.to_csv())
    print(f"{'crosstab':>10}: {args.crosstab} ({table.shape[0]} users × {table.shape[1]} movies)")
    return 0


def fetch_release(args: argparse.Namespace) -> int:
    from cfexp.data import releases

    folder = Path(args.dir).expanduser() if args.dir else releases.cache_dir()
    if not args.name:
        print(f"MovieLens releases cfexp fetches into {folder}:")
        for release in releases.RELEASES.values():
            there = "fetched" if (folder / release.file).is_file() else "not fetched"
            print(f"  {release.name:<16} {release.size:>12,} bytes  {there:<11}  {release.what}")
        return 0
    release = releases.get_release(args.name)
    path, downloaded = releases.fetch(release, folder)
    if downloaded:
        print(f"fetched {release.name} from {release.url()} ({release.size:,} bytes, SHA-256 checked) into {path}")
        print(releases.LICENCE)
    else:
        print(f"{release.name} is already in the cache (SHA-256 checked): {path}")
    by_name = release.name in releases.BY_NAME and folder == releases.cache_dir()
    use = f'data.ratings = "{release.name}"' if by_name else f'data.ratings = "{path}"'
    print(f"use it with {use} (or --set {use.replace(' = ', '=')})")
    return 0
