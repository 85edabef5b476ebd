"""Trainers: what turns a built model and its training ratings into a fitted one (SGD, Gibbs, closed form, ALS, BPR)."""
