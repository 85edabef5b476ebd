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

import math

import torch
from torch import nn

from cfexp.models.modules import EmbeddingModel

# Plan a whole epoch's catch-ups up front (one vectorized pass) only while that is cheap: small batches, where
# per-step bookkeeping would cost more than the step, and at most this many row uses an epoch (the plan holds
# several int64 arrays of that length). Otherwise each step looks its rows' gaps up itself.
PLAN_BATCH_BELOW = 8192
PLAN_MAX_ROW_USES = 1 << 24
# From this many rows a step's 2×2 catch-up runs as one batched product into reused buffers; below it, as two
# elementwise ops (at batch 64 a batched product costs 66 µs a call against 20 µs; at batch 1024, 0.4 ms against 2).
BATCHED_PRODUCT_FROM = 512


class Buffers:
    """Scratch tensors reused from step to step. A large fresh tensor costs its page faults on every step (glibc
    maps blocks over 32 MB anew each time): at batch 65,536 an elementwise op takes 60 ms into a new tensor and
    10 ms into a reused one."""

    def __init__(self):
        self.held: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        size = math.prod(shape)
        held = self.held.get(name)
        if held is None or held.numel() < size or held.dtype != like.dtype or held.device != like.device:
            held = self.held[name] = torch.empty(size, dtype=like.dtype, device=like.device)
        return held[:size].view(shape)


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
        self.powers = torch.eye(2, device=device).expand(1, 2, 2)
        self.grad_into_state = torch.zeros(2, 1, device=device)
        self.buffers = Buffers()

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
        # A gradient g enters as buf += g and p -= lr * g (the momentum and decay parts are in A).
        self.grad_into_state = torch.tensor([[-lr], [1.0]], device=self.state.device)
        self.a0, self.a1 = self.powers[1, :, 0:1], self.powers[1, :, 1:2]  # A's columns, for small steps
        self.lr = lr
        self.t = 0
        self.last.zero_()

    @torch.inference_mode()
    def flush(self) -> None:
        """Bring every row up to the current step and copy the tables back into the model."""
        if self.t:
            self.state = torch.bmm(self.powers.index_select(0, self.t - self.last), self.state)
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
        columns = catch_up[:, :, 0:1].contiguous().split(sizes), catch_up[:, :, 1:2].contiguous().split(sizes)
        return list(zip(*columns, strict=True))

    def catch_ups(self, batches: list[torch.Tensor]):
        """Each batch's catch-up A^gap for its rows (as A's two columns), batch by batch: planned for the whole
        epoch when that is cheap, else looked up as each step comes. Stamps the rows' last use either way."""
        if len(batches[0]) < PLAN_BATCH_BELOW and sum(map(len, batches)) <= PLAN_MAX_ROW_USES:
            yield from self.plan(batches)
            return
        for step, rows in enumerate(batches):
            with torch.inference_mode():
                gaps = torch.sub(step, self.last.index_select(0, rows))
                catch_up = self.powers.index_select(0, gaps)
                self.last.index_fill_(0, rows, step + 1)
                self.t = step + 1
            yield catch_up[:, :, 0:1], catch_up[:, :, 1:2]

    @torch.inference_mode()
    def gather(self, rows: torch.Tensor, catch_up: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The (param, momentum) state of `rows` (users, then movies offset by n_users), brought up to date;
        `catch_up` is each row's A^gap as its two columns."""
        if len(rows) < BATCHED_PRODUCT_FROM:
            s = self.state.index_select(0, rows)
            return torch.addcmul(catch_up[0] * s[:, 0:1], catch_up[1], s[:, 1:2])
        shape = (len(rows), *self.state.shape[1:])
        s = torch.index_select(self.state, 0, rows, out=self.buffers.get("rows", shape, self.state))
        # each row's [param; momentum] times its A^gap as one batched 2×2 product
        return torch.bmm(torch.cat(catch_up, 2), s, out=self.buffers.get("current", shape, self.state))

    @torch.inference_mode()
    def stamp(self, rows: torch.Tensor, step: int) -> torch.Tensor:
        """Distinct `rows`' gaps since their last use, before step `step`; stamps them used at it."""
        gaps = torch.sub(step, self.last.index_select(0, rows))
        self.last.index_fill_(0, rows, step + 1)
        self.t = step + 1
        return gaps

    @torch.inference_mode()
    def step_distinct(self, rows: torch.Tensor, gaps: torch.Tensor, grad: torch.Tensor) -> None:
        """One SGD step on distinct rows, each with its summed gradient: A·A^gap applied to the stored state in one
        batched product, the gradient added, one write per row."""
        stored = torch.index_select(self.state, 0, rows)
        ahead = torch.matmul(self.powers[1], self.powers.index_select(0, gaps))
        stepped = torch.bmm(ahead, stored, out=self.buffers.get("stepped", stored.shape, stored))
        self.state.index_copy_(0, rows, stepped.addcmul_(self.grad_into_state, grad.unsqueeze(1)))

    @torch.inference_mode()
    def step(self, rows: torch.Tensor, current: torch.Tensor, grad: torch.Tensor) -> None:
        """One SGD step on the gathered rows; a row that appears twice gets the sum of its gradients."""
        # Duplicate rows carry identical values, so whichever copy lands last is right ...
        if len(rows) < BATCHED_PRODUCT_FROM:
            self.state.index_copy_(0, rows, torch.addcmul(self.a0 * current[:, 0:1], self.a1, current[:, 1:2]))
            self.state.index_add_(0, rows, self.grad_into_state * grad.unsqueeze(1))
            return
        scratch = self.buffers.get("rows", current.shape, self.state)  # gather's rows are no longer needed
        self.state.index_copy_(0, rows, torch.matmul(self.powers[1], current, out=scratch))
        # ... and the gradient enters linearly, so accumulating each occurrence sums them.
        self.state.index_add_(0, rows, torch.mul(self.grad_into_state, grad.unsqueeze(1), out=scratch))


def dense_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters that are not embedding tables (e.g. an MLP head), for an ordinary optimizer."""
    tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return [p for p in model.parameters() if id(p) not in tables and p.requires_grad]
