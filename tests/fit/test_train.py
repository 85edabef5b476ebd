import math

import pytest
import torch

from cfexp.data import ratings as data
from cfexp.errors import UserError
from cfexp.fit import common as fitting
from cfexp.fit import sgd as train
from cfexp.variants import registry as models


@pytest.fixture(scope="module")
def small(small_dir):
    ratings = data.load_ratings(small_dir)
    split = data.split_rows(len(ratings.frame))
    return ratings, data.tensors(ratings, split.train), data.tensors(ratings, split.val)


def fit(small, variant="dot_bias_sigmoid", callbacks=(), init=None, **recipe):
    ratings, tr, va = small
    torch.manual_seed(0)
    model = models.build_model(
        variant, ratings.n_users, ratings.n_movies, n_factors=8, init=init, y_range=ratings.rating_range
    )
    recipe = {"phases": ((2, 0.05),), "device": "cpu", **recipe}
    return model, train.fit(model, tr, va, fitting.Recipe(**recipe), callbacks)


class Recorder(fitting.Callback):
    def __init__(self):
        self.epochs, self.lrs, self.started, self.ended = [], [], False, None

    def on_fit_start(self, model, recipe):
        self.started = True

    def on_epoch_end(self, epoch, metrics):
        self.epochs.append(epoch)
        self.lrs.append(metrics["lr"])

    def on_fit_end(self, result):
        self.ended = result.status


def test_history_has_every_metric_for_every_epoch(small):
    rec = Recorder()
    _, result = fit(small, callbacks=[rec], phases=((2, 0.05), (1, 0.01)))
    assert result.status == "completed" and rec.started and rec.ended == "completed"
    assert rec.epochs == [0, 1, 2]
    for h in result.history:
        assert {"epoch", "train_loss", "val_loss", "val_rmse", "val_mae", "lr", "seconds"} <= set(h)
        assert h["val_rmse"] == pytest.approx(math.sqrt(h["val_loss"]))
        assert 0 < h["val_mae"] <= h["val_rmse"]
    assert result.best_val_loss == min(h["val_loss"] for h in result.history)


@pytest.mark.parametrize("lazy", [True, False])
def test_lr_phase_change_takes_effect(small, lazy):
    rec = Recorder()
    _, result = fit(small, callbacks=[rec], phases=((1, 0.1), (2, 0.001)), lazy_sgd=lazy)
    assert rec.lrs == [0.1, 0.001, 0.001]
    # At lr 0.001 the weights barely move: the change in val loss shrinks by far more than 10x.
    first_step = abs(result.history[1]["val_loss"] - result.history[0]["val_loss"])
    frozen = abs(result.history[2]["val_loss"] - result.history[1]["val_loss"])
    assert frozen < first_step


def test_same_seed_gives_identical_losses(small):
    _, a = fit(small)
    _, b = fit(small)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    _, c = fit(small, seed=7)
    assert [h["train_loss"] for h in c.history] != [h["train_loss"] for h in a.history]


@pytest.mark.parametrize("variant", ["dot", "dot_bias", "dot_bias_sigmoid"])
@pytest.mark.parametrize("path", ["each occurrence", "distinct rows, fused", "distinct rows, torch"])
def test_lazy_sgd_is_torch_sgd(small, variant, path, monkeypatch):
    """Same batches, same math: only float32 rounding may differ (observed ~1e-7 on the weights). Every lazy path:
    small batches step each row occurrence, large ones each distinct row (here made "large" at 256), on the CPU
    through the numba loops, on a GPU through torch ops (run here on the CPU)."""
    from cfexp.fit import lazy_epoch, lazy_sgd

    recipe = {"weight_decay": 1e-3, "row_l2": 0.05}
    if path.startswith("distinct"):
        monkeypatch.setattr(lazy_sgd, "PLAN_BATCH_BELOW", 200)
        monkeypatch.setattr(lazy_epoch, "FUSED_ON_CPU", path.endswith("fused"))
        recipe["batch_size"] = 256
    lazy_model, lazy = fit(small, variant, lazy_sgd=True, **recipe)
    ref_model, ref = fit(small, variant, lazy_sgd=False, **recipe)
    for (name, a), (_, b) in zip(lazy_model.named_parameters(), ref_model.named_parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name
    for h_lazy, h_ref in zip(lazy.history, ref.history, strict=True):
        assert h_lazy["val_loss"] == pytest.approx(h_ref["val_loss"], abs=1e-5)
        assert h_lazy["train_loss"] == pytest.approx(h_ref["train_loss"], abs=1e-5)


def test_lazy_sgd_applies_only_where_the_math_is_exact():
    dot = models.build_model("dot", 3, 3)
    net = models.build_model("nn", 3, 3)
    assert train.uses_lazy_sgd(dot, fitting.Recipe())
    assert not train.uses_lazy_sgd(net, fitting.Recipe())
    assert not train.uses_lazy_sgd(dot, fitting.Recipe(optimizer="adam"))
    assert not train.uses_lazy_sgd(dot, fitting.Recipe(phases=((2, 0.1),), one_cycle=True))
    assert not train.uses_lazy_sgd(dot, fitting.Recipe(lazy_sgd=False))


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adam_and_one_cycle_train(small, optimizer):
    _, result = fit(small, "nn", optimizer=optimizer, phases=((3, 0.01),), one_cycle=True)
    assert result.status == "completed"
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[0]["lr"] < 0.01  # one-cycle starts below its peak


def test_divergence_ends_the_run_with_a_status_not_a_crash(small):
    rec = Recorder()
    _, result = fit(small, "dot", callbacks=[rec], phases=((5, 1e6),))
    assert result.status == "diverged"
    assert "epoch 0" in result.reason
    assert len(result.history) == 1 and rec.ended == "diverged"


def test_a_callback_can_stop_training(small):
    class StopAfterOne(fitting.Callback):
        def on_epoch_end(self, epoch, metrics):
            raise fitting.StopTraining("enough")

    _, result = fit(small, callbacks=[StopAfterOne()], phases=((4, 0.05),))
    assert (result.status, result.reason, len(result.history)) == ("stopped", "enough", 1)


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ({"optimizer": "rmsprop"}, "unknown optimizer"),
        ({"phases": ((0, 0.1),)}, "epochs >= 1 and lr > 0"),
        ({"phases": ((1, -0.1),)}, "epochs >= 1 and lr > 0"),
        ({"momentum": 1.0}, "momentum"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_impossible_recipes_are_user_errors(recipe, message):
    with pytest.raises(UserError, match=message):
        fitting.Recipe(**recipe)


def test_device_resolution():
    assert fitting.resolve_device("cpu").type == "cpu"
    assert fitting.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="bad device"):
        fitting.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            fitting.resolve_device("cuda:0")


def test_restore_best_keeps_the_best_epochs_weights(small):
    _, _, va = small
    # lr high enough that validation gets worse after the first epochs (the slice is tiny: it overfits)
    model, result = fit(small, "dot_bias", phases=((8, 0.5),), restore_best=True, row_l2=0.0)
    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == losses.index(min(losses)) and result.best_epoch < len(losses) - 1
    assert fitting.evaluate(model, va)["mse"] == pytest.approx(min(losses), abs=1e-6)


def test_patience_stops_early_and_says_why(small):
    _, result = fit(small, "dot_bias", phases=((30, 0.5),), patience=2, row_l2=0.0)
    assert len(result.history) < 30
    assert result.status == "completed" and "early stop" in result.reason
    assert len(result.history) - 1 - result.best_epoch == 2
