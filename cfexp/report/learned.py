"""What a trained model learned, read from its weights: biases, embedding geometry, rank, recommendations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA

from cfexp.data.ratings import Ratings


def movie_factors(predictor) -> np.ndarray:
    return predictor.model.m.weight.detach().cpu().numpy()


def singular_values(predictor) -> np.ndarray:
    """Singular values of the movie-factor matrix, largest first, as a share of the largest."""
    s = np.linalg.svd(movie_factors(predictor), compute_uv=False)
    return s / s[0] if s[0] > 0 else s


def effective_rank(shares: np.ndarray, tolerance: float = 1e-3) -> int:
    """How many singular values exceed `tolerance` times the largest."""
    return int((shares > tolerance).sum())


def bias_threshold(ratings: Ratings, wanted: int = 20) -> int:
    """At least `wanted` ratings, or fewer on a small dataset, so that a tenth of the movies still qualify."""
    counts = np.bincount(ratings.frame.movie.to_numpy(), minlength=ratings.n_movies)
    return int(min(wanted, max(1, np.quantile(counts, 0.9))))


def movie_biases(predictor, ratings: Ratings, min_ratings: int = 20, n: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The movies with the highest and lowest learned bias, among those with at least `min_ratings` ratings."""
    bias = predictor.model.mb.weight.detach().cpu().numpy()[:, 0]
    counts = np.bincount(ratings.frame.movie.to_numpy(), minlength=ratings.n_movies)
    table = pd.DataFrame({"movieId": ratings.movie_ids, "bias": bias, "ratings": counts})
    table = table[table.ratings >= min_ratings]
    table.insert(1, "title", [ratings.title(m) for m in table.movieId])
    ordered = table.sort_values("bias", ascending=False)
    return ordered.head(n).reset_index(drop=True), ordered.tail(n)[::-1].reset_index(drop=True)


def movie_pca(predictor, ratings: Ratings, n: int = 40) -> pd.DataFrame:
    """A 2-D PCA of the movie factors, for the `n` most-rated movies, with titles."""
    counts = np.bincount(ratings.frame.movie.to_numpy(), minlength=ratings.n_movies)
    top = np.argsort(-counts, kind="stable")[:n]
    factors = movie_factors(predictor)
    points = PCA(n_components=2, random_state=0).fit(factors).transform(factors[top])
    return pd.DataFrame(
        {"title": [ratings.title(m) for m in ratings.movie_ids[top]], "pc1": points[:, 0], "pc2": points[:, 1]}
    )


def recommendations(predictor, ratings: Ratings, user_id: int, n: int = 10, min_ratings: int = 1) -> pd.DataFrame:
    """The `n` movies the model rates highest for a user among those with `min_ratings` ratings, unseen by them."""
    seen = set(ratings.frame.loc[ratings.frame.userId == user_id, "movieId"])
    counts = np.bincount(ratings.frame.movie.to_numpy(), minlength=ratings.n_movies)
    candidates = np.array(
        [m for m, c in zip(ratings.movie_ids, counts, strict=True) if m not in seen and c >= min_ratings]
    )
    pairs = torch.tensor(np.stack([np.full(len(candidates), user_id), candidates], 1), dtype=torch.float32)
    with torch.no_grad():
        scores = predictor(pairs).numpy()
    order = np.argsort(-scores, kind="stable")[:n]
    return pd.DataFrame(
        {
            "movieId": candidates[order],
            "title": [ratings.title(m) for m in candidates[order]],
            "predicted": scores[order],
        }
    )
