"""The variant registry: each variant declared in one module (builder, trainer, search space, init), and its runs.

`register` adds a variant; cfexp's own are registered on import, a user's when an experiment names their file in
`variants_from` (docs/adding-a-variant.md).
"""

from cfexp.variants.registry import REGISTRY, Param, Trainer, Variant, build_model, get_variant, register

# isort: off
from cfexp.variants import lesson, bayesian, baselines, top_n, autoencoders  # registers cfexp's variants, in order

# isort: on
from cfexp.variants.lesson import SGD

__all__ = [
    "REGISTRY",
    "SGD",
    "Param",
    "Trainer",
    "Variant",
    "autoencoders",
    "baselines",
    "bayesian",
    "build_model",
    "get_variant",
    "lesson",
    "register",
    "top_n",
]
