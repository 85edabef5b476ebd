"""Variational autoencoders of a user's movies, which rank: Mult-VAE (Liang et al. 2018, "Variational Autoencoders
for Collaborative Filtering") and RecVAE (Shenbin et al. 2020, "RecVAE: a New Variational Autoencoder for Top-N
Recommendations with Implicit Feedback").

Both read a user's training positives as a bag of movies (L2-normalised, dropout on it while training), encode it
into a Gaussian over a latent vector, and decode that vector into one logit per movie, trained by the multinomial
likelihood of the user's movies. A user is scored by fold-in: their positives encoded, the mean decoded. The model
keeps every user's positives (set by the fit), so that scoring needs only the user's index, like any other model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Histories(nn.Module):
    """Each user's positives as a CSR kept in buffers, read back as a dense users × movies block."""

    def __init__(self, n_users: int, n_movies: int):
        super().__init__()
        self.n_users, self.n_movies = n_users, n_movies
        self.register_buffer("offsets", torch.zeros(n_users + 1, dtype=torch.long))
        self.register_buffer("movies", torch.zeros(0, dtype=torch.long))

    def set(self, users: torch.Tensor, movies: torch.Tensor) -> None:
        order = torch.argsort(users * self.n_movies + movies)
        counts = torch.bincount(users, minlength=self.n_users)
        self.offsets = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        self.movies = movies[order]

    def counts(self) -> torch.Tensor:
        return self.offsets.diff()

    def block(self, users: torch.Tensor) -> torch.Tensor:
        starts, stops = self.offsets[users], self.offsets[users + 1]
        lengths = stops - starts
        rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), lengths)
        within = torch.arange(int(lengths.sum()), device=users.device) - torch.repeat_interleave(
            torch.cumsum(lengths, 0) - lengths, lengths
        )
        block = torch.zeros(len(users), self.n_movies, device=users.device)
        block[rows, self.movies[torch.repeat_interleave(starts, lengths) + within]] = 1.0
        return block


class AutoEncoder(nn.Module):
    """What both VAEs share: the users' positives, the ranking by fold-in, and no rating."""

    def __init__(self, n_users: int, n_movies: int, dropout: float, positives: float):
        super().__init__()
        self.histories = Histories(n_users, n_movies)
        self.dropout, self.positives = dropout, positives

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return torch.full(users.shape, math.nan, device=users.device)  # it ranks; it predicts no rating

    def score_matrix(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        mean, _ = self.encode(self.histories.block(users))
        return self.decode(mean)[:, movies]


class MultVAE(AutoEncoder):
    """Liang et al.'s Mult-VAE: [movies → hidden → 2 × latent] tanh encoder, [latent → hidden → movies] decoder."""

    def __init__(self, n_users, n_movies, latent, hidden, dropout, positives, beta: float, anneal_epochs: int):
        super().__init__(n_users, n_movies, dropout, positives)
        self.beta, self.anneal_epochs = beta, anneal_epochs
        self.encoder = nn.Linear(n_movies, hidden)
        self.to_gaussian = nn.Linear(hidden, 2 * latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, n_movies))
        for layer in (self.encoder, self.to_gaussian, self.decoder[0], self.decoder[2]):
            nn.init.xavier_uniform_(layer.weight)  # as the paper: Xavier weights, small normal biases
            nn.init.normal_(layer.bias, std=0.001)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.dropout(F.normalize(x, dim=1), self.dropout, self.training)
        mean, log_var = self.to_gaussian(torch.tanh(self.encoder(x))).chunk(2, dim=1)
        return mean, log_var

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


class RecVAEEncoder(nn.Module):
    """RecVAE's encoder: five densely connected layers, each a swish then a layer norm (its authors' code)."""

    def __init__(self, n_movies: int, hidden: int, latent: int):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(n_movies if i == 0 else hidden, hidden) for i in range(5)])
        self.norms = nn.ModuleList([nn.LayerNorm(hidden, eps=0.1) for _ in range(5)])
        self.mean, self.log_var = nn.Linear(hidden, latent), nn.Linear(hidden, latent)

    def forward(self, x: torch.Tensor, dropout: float) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.dropout(F.normalize(x, dim=1), dropout, self.training)
        outputs: list[torch.Tensor] = []
        for layer, norm in zip(self.layers, self.norms, strict=True):
            h = layer(x if not outputs else outputs[-1]) + sum(outputs)
            outputs.append(norm(F.silu(h)))
        return self.mean(outputs[-1]), self.log_var(outputs[-1])


class RecVAE(AutoEncoder):
    """Shenbin et al.'s RecVAE: its encoder, a linear decoder, and the composite prior's frozen old encoder."""

    def __init__(self, n_users, n_movies, latent, hidden, dropout, positives, gamma: float, encoder_passes: int):
        super().__init__(n_users, n_movies, dropout, positives)
        self.gamma, self.encoder_passes = gamma, encoder_passes
        self.encoder = RecVAEEncoder(n_movies, hidden, latent)
        self.old_encoder = RecVAEEncoder(n_movies, hidden, latent)  # the last epoch's, for the composite prior
        self.old_encoder.requires_grad_(False)
        self.decoder = nn.Linear(latent, n_movies)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x, self.dropout if self.training else 0.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)
