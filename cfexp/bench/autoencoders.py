"""`make bench`'s floors part, continued: cfexp's Mult-VAE and RecVAE beside Cornac's (`cornac.models.VAECF`,
`cornac.models.RecVAE`, both in PyTorch) at the same settings: fitted on train + validation of the default protocol
(the ratings ≥ 4 as the users' movies) and scored once on its test split by cfexp's ranking pass, so that only the
model and its training code differ. One fit each: an epoch costs seconds."""

from __future__ import annotations

import time

import numpy as np

from cfexp.bench.floors import _f, _ndcg, holdout_tensors
from cfexp.config.experiment import RunConfig
from cfexp.variants import runner

POSITIVES = 4.0
SEED = 42
# Cornac's VAECF has no input dropout and a constant β: cfexp's multvae is set to match (dropout 0, β reached at once).
MULTVAE = {"latent": 200, "hidden": 600, "epochs": 30, "batch_size": 100, "lr": 1e-3, "beta": 0.2}
# Cornac's RecVAE drops half the input on its encoder passes, as cfexp's recvae does at dropout 0.5.
RECVAE = {"latent": 200, "hidden": 600, "epochs": 8, "batch_size": 500, "lr": 5e-4, "gamma": 0.005}


def _cfexp(variant: str, s: dict, options: dict, tensors) -> dict:
    run = RunConfig(
        name=variant, variant=variant, n_factors=s["latent"], optimizer="adam", weight_decay=0.0, row_l2=0.0,
        batch_size=s["batch_size"], phases=((s["epochs"], s["lr"]),), seed=SEED,
        options={"hidden": s["hidden"], "positives": POSITIVES, **options},
    )  # fmt: skip
    started = time.perf_counter()
    _, result = runner.fit_run(runner.resolved(run, tensors), tensors)
    seconds = time.perf_counter() - started
    return {"ndcg_at_10": result.ranking["ndcg_at_10"], "seconds": seconds}


def _cornac(model, ratings, tensors) -> dict:
    """Cornac's model on the same positives, its scores put into cfexp's users × movies table and ranked there."""
    from cornac.data import Dataset

    fit = tensors.train
    keep = (fit.ratings >= POSITIVES).cpu().numpy()
    users, movies = fit.users.cpu().numpy()[keep], fit.movies.cpu().numpy()[keep]
    dataset = Dataset.from_uir(list(zip(users.astype(str), movies.astype(str), np.ones(len(users)), strict=True)))
    started = time.perf_counter()
    model.fit(dataset)
    seconds = time.perf_counter() - started
    table = np.full((ratings.n_users, ratings.n_movies), -np.inf, dtype=np.float32)
    columns = np.array([int(m) for m in dataset.item_ids])
    for user, inner in dataset.uid_map.items():
        table[int(user), columns] = model.score(inner)
    return {"ndcg_at_10": _ndcg(table, tensors), "seconds": seconds}


def measure_vaes(device: str) -> dict:
    from cornac.models import VAECF, RecVAE

    ratings, tensors = holdout_tensors(device)
    m, r = MULTVAE, RECVAE
    found = {
        "Mult-VAE": {
            "cfexp": _cfexp("multvae", m, {"dropout": 0.0, "beta": m["beta"], "anneal_epochs": 0}, tensors),
            "cornac": _cornac(
                VAECF(
                    k=m["latent"], autoencoder_structure=[m["hidden"]], act_fn="tanh", likelihood="mult",
                    n_epochs=m["epochs"], batch_size=m["batch_size"], learning_rate=m["lr"], beta=m["beta"],
                    seed=SEED, use_gpu=device.startswith("cuda"),
                ),
                ratings, tensors,
            ),
        },
        "RecVAE": {
            "cfexp": _cfexp("recvae", r, {"dropout": 0.5, "gamma": r["gamma"], "encoder_passes": 3}, tensors),
            "cornac": _cornac(
                RecVAE(
                    hidden_dim=r["hidden"], latent_dim=r["latent"], batch_size=r["batch_size"], gamma=r["gamma"],
                    lr=r["lr"], n_epochs=r["epochs"], n_enc_epochs=3, n_dec_epochs=1, seed=SEED,
                    use_gpu=device.startswith("cuda"),
                ),
                ratings, tensors,
            ),
        },
    }  # fmt: skip
    return {"settings": {"Mult-VAE": MULTVAE, "RecVAE": RECVAE}, "results": found}


def vaes_section(r: dict) -> list[str]:
    vaes = r.get("floors-vaes", {})
    if "results" not in vaes:
        return []
    m, rec = vaes["settings"]["Mult-VAE"], vaes["settings"]["RecVAE"]
    lines = [
        "### Mult-VAE and RecVAE beside Cornac's, ratings ≥ 4 as the users' movies",
        "",
        f"Mult-VAE: latent {m['latent']}, hidden {m['hidden']}, {m['epochs']} epochs of {m['batch_size']}-user "
        f"batches, Adam at lr {m['lr']:g}, constant β {m['beta']:g}, no input dropout (Cornac's VAECF has neither "
        f"annealing nor dropout). RecVAE: latent {rec['latent']}, hidden {rec['hidden']}, {rec['epochs']} epochs of "
        f"3 encoder passes and 1 decoder pass, {rec['batch_size']}-user batches, lr {rec['lr']:g}, γ {rec['gamma']:g}, "
        "input dropout 0.5. cfexp's seconds are its whole run, building the model and the final ranking pass "
        "included; Cornac's are its fit. One fit each.",
        "",
        "| model | cfexp NDCG@10 | Cornac NDCG@10 | cfexp s | Cornac s |",
        "|---|---|---|---|---|",
    ]
    for name, pair in vaes["results"].items():
        lines.append(
            f"| {name} | {_f(pair['cfexp']['ndcg_at_10'])} | {_f(pair['cornac']['ndcg_at_10'])} | "
            f"{_f(pair['cfexp']['seconds'], 1)} | {_f(pair['cornac']['seconds'], 1)} |"
        )
    return [*lines, ""]
