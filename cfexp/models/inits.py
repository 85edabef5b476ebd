"""Init schemes: how embedding weights start, parsed from the TOML's `init = "uniform(a, b)"`."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from cfexp.errors import UserError

INIT_ARITY = {"uniform": 2, "constant": 1, "normal": 2}


@dataclass(frozen=True)
class Init:
    """How embedding weights start: uniform(a, b), constant(c) or normal(mean, std)."""

    kind: str
    args: tuple[float, ...]

    @classmethod
    def parse(cls, text: str) -> Init:
        match = re.fullmatch(r"\s*(\w+)\s*\(([^)]*)\)\s*", text)
        if not match or match.group(1) not in INIT_ARITY:
            raise UserError(f"bad init {text!r}: use uniform(a, b), constant(c) or normal(mean, std)")
        kind = match.group(1)
        try:
            args = tuple(float(a) for a in match.group(2).split(",") if a.strip())
        except ValueError:
            raise UserError(f"bad init {text!r}: arguments must be numbers") from None
        if len(args) != INIT_ARITY[kind]:
            raise UserError(f"bad init {text!r}: {kind} takes {INIT_ARITY[kind]} number(s)")
        if kind == "uniform" and args[0] > args[1]:
            raise UserError(f"bad init {text!r}: uniform(a, b) needs a <= b")
        if kind == "normal" and args[1] < 0:
            raise UserError(f"bad init {text!r}: normal's std must be >= 0")
        if kind == "uniform" and args[0] == args[1]:
            # The lesson's uniform_(0.01, 0.01) is a constant; call it what it is.
            return cls("constant", (args[0],))
        return cls(kind, args)

    def apply(self, weight: torch.Tensor) -> None:
        with torch.no_grad():
            if self.kind == "uniform":
                weight.uniform_(*self.args)
            elif self.kind == "constant":
                weight.fill_(self.args[0])
            else:
                weight.normal_(*self.args)

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(f'{a:g}' for a in self.args)})"
