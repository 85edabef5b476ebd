"""A tiny sweep experiment (two studies, a few trials of two epochs), shared by the sweep and report tests; and the
studies of a small sweep on real ratings (the bias floor and the lesson's model), shared by the protocol tests."""

TINY = """
name = "tiny"

[data]
ratings = "{ratings}"

[train]
optimizer = "sgd"
batch_size = 256
schedule = [[2, 0.5]]
row_l2 = 0.05
n_factors = 8
device = "cpu"

[sweep]
trials = 3
pruner = "median"
pruner_startup_trials = 1
pruner_warmup_epochs = 0

[sweep.space]
n_factors = {{ low = 4, high = 16, log = true }}
lr = {{ low = 0.1, high = 1.0, log = true }}
weight_decay = false

[[sweep.variants]]
name = "dot"
variant = "dot"

[[sweep.variants]]
name = "sig"
variant = "dot_bias_sigmoid"
# first a good trial; then one that barely learns (pruned); then one that blows up (failed, so not counted in the
# budget of complete plus pruned trials: a fourth trial is run)
enqueue = [{{ lr = 0.5, n_factors = 8 }}, {{ lr = 1e-6, n_factors = 8 }}, {{ lr = 1e9, n_factors = 8 }}]
"""


# [sweep.space] and two studies, for an experiment written as a format string (so its braces are doubled)
SMALL_STUDIES = """
[sweep.space]
n_factors = {{ low = 4, high = 16, log = true }}
lr = {{ low = 0.2, high = 1.0, log = true }}
weight_decay = false

[[sweep.variants]]
name = "bias"
variant = "bias"

[[sweep.variants]]
name = "sig"
variant = "dot_bias_sigmoid"
"""
