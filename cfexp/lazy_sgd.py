"""torch.optim.SGD (momentum, weight decay) for embedding tables, updating only the rows a batch touches.

Dense SGD changes *every* row on every step: an untouched row's gradient is just `wd·p`, so its
(param, momentum) pair moves by the fixed linear map

    buf' = μ·buf + wd·p            ⇒   [p', buf'] = A·[p, buf],   A = [[1 − lr·wd, −lr·μ],
    p'   = p − lr·buf'                                                 [wd,        μ   ]]

and k skipped steps are A^k. We apply A^k to a row only when a batch next uses it (or at `flush`, before
evaluation), then take the real gradient step. In exact arithmetic this is torch's SGD step for step; in
float32 it differs by rounding. At batch size 64 it touches ~128 rows instead of ~10,000 per step.
"""

from __future__ import annotations

import torch
from torch import nn

from cfexp.modules import EmbeddingModel


class LazySGD:
    """Packs a model's user and movie embedding tables into one table and trains it with lazy exact SGD."""

    def __init__(self, model: EmbeddingModel, momentum: float, weight_decay: float):
        user_side, movie_side = model.tables()
        self.sides = (user_side, movie_side)
        self.n_users = user_side[0].num_embeddings
        width = max(sum(e.embedding_dim for e in side) for side in self.sides)
        device = user_side[0].weight.device
        n_rows = self.n_users + movie_side[0].num_embeddings
        # state[:, 0] is the parameter row, state[:, 1] its momentum buffer.
        self.state = torch.zeros(n_rows, 2, width, device=device)
        self.pack()
        self.last = torch.zeros(n_rows, dtype=torch.long, device=device)
        self.momentum, self.weight_decay = momentum, weight_decay
        self.t = 0
        self.a0, self.a1 = torch.eye(2, device=device)[:, 0:1], torch.eye(2, device=device)[:, 1:2]
        self.powers = torch.eye(2, device=device).expand(1, 2, 2)
        self.grad_into_state = torch.zeros(2, 1, device=device)

    def _blocks(self):
        """(embedding, row slice, column slice) of each table inside the packed one."""
        for side, rows in zip(self.sides, (slice(0, self.n_users), slice(self.n_users, None)), strict=True):
            col = 0
            for emb in side:
                yield emb, rows, slice(col, col + emb.embedding_dim)
                col += emb.embedding_dim

    @torch.inference_mode()
    def pack(self) -> None:
        for emb, rows, cols in self._blocks():
            self.state[rows, 0, cols] = emb.weight

    @torch.inference_mode()
    def unpack(self) -> None:
        for emb, rows, cols in self._blocks():
            emb.weight.copy_(self.state[rows, 0, cols])

    def start_epoch(self, lr: float, max_steps: int) -> None:
        """Fix the lr for the next `max_steps` steps and tabulate A^k for every gap k they can leave."""
        self.flush()
        mu, wd = self.momentum, self.weight_decay
        a = torch.tensor([[1 - lr * wd, -lr * mu], [wd, mu]], dtype=torch.float64)
        powers = torch.empty(max_steps + 1, 2, 2, dtype=torch.float64)
        powers[0] = torch.eye(2, dtype=torch.float64)
        for k in range(1, max_steps + 1):
            powers[k] = a @ powers[k - 1]
        self.powers = powers.to(self.state)
        self.a0, self.a1 = self.powers[1, :, 0:1], self.powers[1, :, 1:2]
        # A gradient g enters as buf += g and p -= lr * g (the momentum and decay parts are in A).
        self.grad_into_state = torch.tensor([[-lr], [1.0]], device=self.state.device)
        self.t = 0
        self.last.zero_()

    @torch.inference_mode()
    def flush(self) -> None:
        """Bring every row up to the current step and copy the tables back into the model."""
        if self.t:
            c = self.powers.index_select(0, self.t - self.last)
            self.state = torch.addcmul(c[:, :, 0:1] * self.state[:, 0:1], c[:, :, 1:2], self.state[:, 1:2])
            self.last.fill_(self.t)
        self.unpack()

    @torch.inference_mode()
    def plan(self, batches: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """For each batch, the catch-up A^gap of each of its rows, as A's two columns; and the row stamps that
        `flush` needs once every batch has stepped.

        The epoch's batch order is fixed, so each row's gap since its last use is known up front: one vectorized
        pass here replaces four bookkeeping ops in every step. (Runs after `start_epoch`: t = 0, all rows current.)
        """
        device = self.state.device
        sizes = [len(b) for b in batches]
        rows = torch.cat(batches)
        batch = torch.repeat_interleave(torch.arange(len(batches), device=device), torch.tensor(sizes, device=device))
        key = rows * len(batches) + batch
        order = torch.argsort(key)
        key, by_row, by_batch = key[order], rows[order], batch[order]
        position = torch.arange(len(key), device=device)
        new_key = torch.ones_like(key, dtype=torch.bool)
        new_key[1:] = key[1:] != key[:-1]
        # the previous use of a row is the entry just before the first entry of its (row, batch) run
        previous = torch.cummax(torch.where(new_key, position, 0), 0).values - 1
        seen = (previous >= 0) & (by_row[previous.clamp(min=0)] == by_row)
        gap = by_batch - torch.where(seen, by_batch[previous.clamp(min=0)] + 1, 0)
        gaps = torch.empty_like(gap)
        gaps[order] = gap
        catch_up = self.powers.index_select(0, gaps)
        self.last.scatter_reduce_(0, rows, batch + 1, reduce="amax")
        self.t = len(batches)
        keep = catch_up[:, :, 0:1].contiguous().split(sizes), catch_up[:, :, 1:2].contiguous().split(sizes)
        return list(zip(*keep, strict=True))

    @torch.inference_mode()
    def gather(self, rows: torch.Tensor, catch_up: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The (param, momentum) state of `rows` (users, then movies offset by n_users), brought up to date."""
        s = self.state.index_select(0, rows)
        return torch.addcmul(catch_up[0] * s[:, 0:1], catch_up[1], s[:, 1:2])

    @torch.inference_mode()
    def step(self, rows: torch.Tensor, current: torch.Tensor, grad: torch.Tensor) -> None:
        """One SGD step on the gathered rows; a row that appears twice gets the sum of its gradients."""
        # Duplicate rows carry identical values, so whichever copy lands last is right ...
        self.state.index_copy_(0, rows, torch.addcmul(self.a0 * current[:, 0:1], self.a1, current[:, 1:2]))
        # ... and the gradient enters linearly, so accumulating each occurrence sums them.
        self.state.index_add_(0, rows, self.grad_into_state * grad.unsqueeze(1))


def dense_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters that are not embedding tables (e.g. an MLP head), for an ordinary optimizer."""
    tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return [p for p in model.parameters() if id(p) not in tables and p.requires_grad]


@torch.inference_mode()
def train_epoch(
    model: EmbeddingModel, lazy: LazySGD, users, movies, ratings, batch_size: int, row_l2: float = 0.0
) -> torch.Tensor:
    """One epoch of MSE training through the variant's analytic score_jacobian; returns the sum of batch losses."""
    total = torch.zeros((), device=ratings.device)
    n, bs = len(ratings), batch_size
    full = n // bs * bs
    # Each full batch's user rows then movie rows, contiguous, so that a batch is a cheap view.
    rows = torch.cat([users[:full].view(-1, bs), movies[:full].view(-1, bs) + lazy.n_users], 1)
    batches = [(rows[i], ratings[i * bs : (i + 1) * bs]) for i in range(len(rows))]
    if full < n:
        batches.append((torch.cat([users[full:], movies[full:] + lazy.n_users]), ratings[full:]))
    two_over = {len(y): torch.tensor(2 / len(y), device=ratings.device) for _, y in batches[-2:]}
    for (batch_rows, y), catch_up in zip(batches, lazy.plan([b for b, _ in batches]), strict=True):
        current = lazy.gather(batch_rows, catch_up)
        params = current[:, 0]
        b = len(y)
        pred, slope, jac = model.score_jacobian(params[:b], params[b:])
        err = pred - y
        total.add_(torch.dot(err, err), alpha=1 / b)
        # d mean(err²) / d err = 2 err / b (a tensor: a Python float would be copied into one every batch)
        coef = err.mul_(two_over[b]) if slope is None else err.mul_(slope).mul_(two_over[b])
        # Both halves (user rows, movie rows) scale by the same per-example coefficient: a view, not a copy.
        grad = jac.view(2, b, -1).mul_(coef.view(1, b, 1)).view(2 * b, -1)
        if row_l2:
            grad.add_(params, alpha=2 * row_l2 / b)
        lazy.step(batch_rows, current, grad)
    return total
