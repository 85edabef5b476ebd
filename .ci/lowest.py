"""Print pip constraints pinning every requirement of cfexp (and its dev and services extras) to the lowest
version pyproject.toml allows, for `make test-lowest`."""

import re
import sys
import tomllib
from pathlib import Path

EXTRAS = ("dev", "services")


def lowest(requirement: str) -> str | None:
    """`name[extras]>=X,<Y` → `name==X` (a constraint file takes no extras); None when there is no lower bound."""
    found = re.match(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)", requirement)
    name, spec = found.group(1), found.group(3).split(";")[0]
    bound = re.search(r">=\s*([0-9][^,\s]*)", spec)
    return f"{name}=={bound.group(1)}" if bound else None


def main() -> int:
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *(r for e in EXTRAS for r in project["optional-dependencies"][e])]
    for requirement in requirements:
        pin = lowest(requirement)
        if pin:
            print(pin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
