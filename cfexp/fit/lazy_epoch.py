"""An epoch of MSE training on lazy SGD: each batch's gradient from the variant's analytic score_jacobian (no
autograd), stepped into the packed embedding table of `lazy_sgd.LazySGD`."""

from __future__ import annotations

import torch

from cfexp.fit import lazy_sgd
from cfexp.fit.lazy_sgd import Buffers, LazySGD
from cfexp.models.modules import EmbeddingModel

FUSED_ON_CPU = True  # large batches on the CPU step through lazy_kernels' numba loops (torch ops otherwise)


@torch.inference_mode()
def train_epoch(
    model: EmbeddingModel, lazy: LazySGD, users, movies, ratings, batch_size: int, row_l2: float = 0.0
) -> torch.Tensor:
    """One epoch of MSE training through the variant's analytic score_jacobian; returns the sum of batch losses.

    Small batches step each row occurrence (their catch-ups planned for the epoch); large ones step each distinct
    row once, with its occurrences' gradients summed first: at batch 65,536 a batch of ml-25m touches 131k row
    occurrences but only about 48k distinct rows, and it is the rows' state that costs memory traffic. On the CPU
    the large-batch step of a variant with a `link` runs as three fused loops (lazy_kernels); else as torch ops."""
    n, bs = len(ratings), batch_size
    full = n // bs * bs
    # Each full batch's user rows then movie rows, contiguous, so that a batch is a cheap view.
    rows = torch.cat([users[:full].view(-1, bs), movies[:full].view(-1, bs) + lazy.n_users], 1)
    batches = [(rows[i], ratings[i * bs : (i + 1) * bs]) for i in range(len(rows))]
    if full < n:
        batches.append((torch.cat([users[full:], movies[full:] + lazy.n_users]), ratings[full:]))
    gradient = _BatchGradient(model, lazy.buffers, row_l2, [len(y) for _, y in batches[-2:]], ratings.device)
    if bs < lazy_sgd.PLAN_BATCH_BELOW:
        catch_ups = lazy.catch_ups([b for b, _ in batches])
        for (batch_rows, y), catch_up in zip(batches, catch_ups, strict=True):
            current = lazy.gather(batch_rows, catch_up)
            params = current[:, 0]
            b = len(y)
            partners = torch.cat([params[b:], params[:b]])  # small: a fresh tensor costs less than a buffer lookup
            lazy.step(batch_rows, current, gradient(partners, y, own=params))
        return gradient.total
    fused = FUSED_ON_CPU and lazy.state.device.type == "cpu" and hasattr(model, "link")
    factors = lazy.sides[0][0].embedding_dim
    tally = torch.zeros(len(lazy.state), dtype=torch.long) if fused else None  # each row's uses, for grouping
    for step, (batch_rows, y) in enumerate(batches):
        b = len(y)
        if fused:
            kernels = lazy_kernels()
            distinct, offsets, order, occurrence = (
                torch.from_numpy(a) for a in kernels.group_rows(batch_rows.numpy(), tally.numpy())
            )
            gaps = lazy.stamp(distinct, step)
            params = lazy.buffers.get("distinct params", (len(distinct), lazy.state.shape[2]), lazy.state)
            kernels.caught_up_params(*_np(lazy.state, distinct, gaps, lazy.powers, params))
            raw = lazy.buffers.get("raw", (b,), params)
            kernels.raw_scores(params.numpy(), occurrence.numpy(), factors, model.bias_columns, raw.numpy())
            coef = gradient.coefficients(*model.link(raw), y)
            summed = lazy.buffers.get("summed", params.shape, params)
            kernels.step_rows(
                *_np(lazy.state, distinct, gaps, lazy.powers, coef, order, offsets, occurrence, params),
                factors,
                model.bias_columns,
                2 * row_l2 / b,
                lazy.lr,
                summed.numpy(),
            )
            continue
        # the distinct rows, ascending (so that the steps walk the table in order), and each occurrence's index
        # among them: a sort groups the occurrences by row (`order`), and each group is put back in place
        sorted_rows, order = torch.sort(batch_rows)
        distinct, counts = torch.unique_consecutive(sorted_rows, return_counts=True)
        group = torch.repeat_interleave(torch.arange(len(distinct), device=order.device), counts)
        occurrence = torch.empty_like(order).index_put_((order,), group)
        gaps = lazy.stamp(distinct, step)
        params = lazy.buffers.get("distinct params", (len(distinct), lazy.state.shape[2]), lazy.state)
        catch_up = lazy.powers.index_select(0, gaps)
        params.copy_(lazy.gather(distinct, (catch_up[:, :, 0:1], catch_up[:, :, 1:2]))[:, 0])
        partner = torch.cat([occurrence[b:], occurrence[:b]])
        partners = torch.index_select(
            params, 0, partner, out=lazy.buffers.get("partners", (2 * b, params.shape[1]), params)
        )
        grad = gradient(partners, y, own=None)
        summed = lazy.buffers.get("summed", params.shape, params).zero_().index_add_(0, occurrence, grad)
        if row_l2:  # per use of a row, as the small-batch path adds it to each occurrence's gradient
            summed.addcmul_(counts.unsqueeze(1).to(summed), params, value=2 * row_l2 / b)
        lazy.step_distinct(distinct, gaps, summed)
    return gradient.total


def lazy_kernels():
    """The numba loops, imported on first use (numba's import and, once per machine, its compile take seconds)."""
    from cfexp.fit import lazy_kernels as kernels

    return kernels


def _np(*tensors: torch.Tensor):
    return [t.numpy() for t in tensors]


class _BatchGradient:
    """A batch's gradient of mean squared error with respect to each row occurrence's parameters, through the
    variant's score_jacobian; adds the batch's loss to `total`."""

    def __init__(self, model: EmbeddingModel, buffers: Buffers, row_l2: float, last_sizes: list[int], device):
        self.model, self.buffers, self.row_l2 = model, buffers, row_l2
        self.total = torch.zeros((), device=device)
        # d mean(err²) / d err = 2 err / b (a tensor: a Python float would be copied into one every batch)
        self.two_over = {b: torch.tensor(2 / b, device=device) for b in last_sizes}

    def coefficients(self, pred: torch.Tensor, slope: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
        """Each example's d loss / d raw score (from its score and the link's slope, None for the identity)."""
        b = len(y)
        err = pred - y
        self.total.add_(torch.dot(err, err), alpha=1 / b)
        return err.mul_(self.two_over[b]) if slope is None else err.mul_(slope).mul_(self.two_over[b])

    def jacobian(self, partners: torch.Tensor, y: torch.Tensor, own=None) -> tuple[torch.Tensor, torch.Tensor]:
        """`partners` ([m; u] rows) turned into d score / d [u; m], and each example's d loss / d score."""
        pred, slope, jac = self.model.score_jacobian(partners, len(y), own)
        return jac, self.coefficients(pred, slope, y)

    def __call__(self, partners: torch.Tensor, y: torch.Tensor, own: torch.Tensor | None) -> torch.Tensor:
        """`partners` ([m; u] rows) becomes the gradient, in the occurrences' order ([u; m]); `own`, the rows
        themselves, adds row_l2 per occurrence (the large-batch path adds it per distinct row instead)."""
        b = len(y)
        jac, coef = self.jacobian(partners, y, own)
        # Both halves (user rows, movie rows) scale by the same per-example coefficient: a view, not a copy.
        grad = jac.view(2, b, -1).mul_(coef.view(1, b, 1)).view(2 * b, -1)
        if own is not None and self.row_l2:
            grad.add_(own, alpha=2 * self.row_l2 / b)
        return grad
