"""Ratings: MovieLens files read and encoded, the split, what decides a study's rows, and synthetic data at scale."""
