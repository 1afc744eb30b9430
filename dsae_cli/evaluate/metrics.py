"""The numbers of the judged evaluation (Sprites, Moving shapes), in plain numpy so they can be tested on hand-made inputs:
accuracies, entropies, the Inception Score, KL divergences, the DSAE paper's table, confusion
counts, mean and std over repeats, and the fixed pairs of the swap test.

Every probability argument is the judge's ``p(y | x)``, an ``(N, K)`` array (or a dict of them by
head); every log has ``EPS`` inside, as the released S3VAE / C-DSVAE code has.
"""

from __future__ import annotations

import numpy as np

from dsae_cli.errors import DsaeError

EPS = 1e-16  # inside every log, as in the released S3VAE / C-DSVAE code
HEADS = ("action", "skin", "pants", "top", "hair")  # Sprites' heads: the defaults where none are given
ATTRIBUTES = HEADS[1:]
SWAP_SEED = 2018  # the swap pairs depend on this and on the test set only, never on --seed


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of correct predictions; ``pred`` is class ids (N,) or probabilities (N, K)."""
    pred = np.asarray(pred)
    if pred.ndim == 2:
        pred = pred.argmax(-1)
    return float(np.mean(pred == np.asarray(labels)))


def entropy(p: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each categorical distribution along the last axis."""
    p = np.asarray(p, dtype=np.float64)
    return -(p * np.log(p + EPS)).sum(-1)


def kl_categorical(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) (nats) of categorical distributions along the last axis (broadcasts).

    Both are renormalised in float64 first: softmax outputs in float32 sum to 1 only up to ~1e-7,
    enough to make the KL of two near-equal distributions come out slightly negative.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum(-1, keepdims=True)
    q = q / q.sum(-1, keepdims=True)
    return (p * (np.log(p + EPS) - np.log(q + EPS))).sum(-1)


def inception_score(probs: np.ndarray) -> float:
    """IS = exp( mean_x KL(p(y|x) || p(y)) ), p(y) the mean of p(y|x) over the samples; 1 .. K."""
    probs = np.asarray(probs, dtype=np.float64)
    return float(np.exp(kl_categorical(probs, probs.mean(0, keepdims=True)).mean()))


def conditional_entropy(probs: np.ndarray) -> float:
    """H(y|x) = mean_x H(p(y|x)): low when the judge is sure about each sample."""
    return float(entropy(probs).mean())


def marginal_entropy(probs: np.ndarray) -> float:
    """H(y) = H(mean_x p(y|x)): ln K when the samples cover all classes evenly."""
    return float(entropy(np.asarray(probs, dtype=np.float64).mean(0)))


def class_balanced_indices(labels: np.ndarray) -> np.ndarray:
    """For every class that occurs in ``labels``, the indices of its first n samples, n the smallest
    per-class count (the protocol's balanced subset); sorted. Classes that never occur are ignored."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) == 0:
        return np.zeros(0, dtype=np.int64)
    n = counts.min()
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:n] for c in classes]))


def disagreement(p: np.ndarray, q: np.ndarray) -> float:
    """Fraction of rows whose most likely class differs between ``p`` and ``q`` (probabilities or ids)."""
    p, q = np.asarray(p), np.asarray(q)
    a = p.argmax(-1) if p.ndim == 2 else p
    b = q.argmax(-1) if q.ndim == 2 else q
    return float(np.mean(a != b))


def generation_scores(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The protocol's four numbers for judged generations: Acc on all of them; IS, H(y|x), H(y) on the
    class-balanced subset (by ground-truth class)."""
    keep = class_balanced_indices(labels)
    sub = np.asarray(probs)[keep]
    return {
        "acc": accuracy(probs, labels),
        "is": inception_score(sub),
        "h_yx": conditional_entropy(sub),
        "h_y": marginal_entropy(sub),
    }


def joint_accuracy(probs: dict[str, np.ndarray], labels: dict[str, np.ndarray], heads=ATTRIBUTES) -> float:
    """Fraction of samples with every one of ``heads`` right at once."""
    ok = np.ones(len(labels[heads[0]]), dtype=bool)
    for h in heads:
        ok &= np.asarray(probs[h]).argmax(-1) == np.asarray(labels[h])
    return float(ok.mean())


def paper_table_scores(p_data: dict, p_recon: dict, p_gen_f: dict, p_gen_z: dict) -> dict:
    """The DSAE paper's per-attribute disentanglement table (Li & Mandt, ICML 2018, Sprites), for
    every head of ``p_data`` (the action and the content attributes of any benchmark).

    All four arguments are the judge's probabilities ``{head: (N, K)}`` on: the test data x, their
    reconstructions decode(f, z_1:T), the generations with f drawn from p(f) and z_1:T kept
    (``p_gen_f``) and those with f kept and z_1:T drawn from the learned prior (``p_gen_z``).

    The paper's exact formulas could not be re-checked here (no copy of its text was reachable);
    this is the reading implemented, stated so that it can be compared:

    * the latent "in charge" of an appearance attribute (Sprites: skin, pants, top, hair) is f, that of the
      action is z_1:T; the "kept" generation keeps that latent and resamples the other one
      (appearance: ``p_gen_z``; action: ``p_gen_f``), the "random" generation resamples it
      (appearance: ``p_gen_f``; action: ``p_gen_z``);
    * ``disagreement``: fraction of test sequences whose judged class on the kept generation
      differs from the judged class on x (0 is perfect: the latent in charge carries the attribute);
    * ``kl_recon``: mean KL(p(y|x) || p(y|reconstruction)), the reference for how much a
      reconstruction alone moves the judge (small is good);
    * ``kl_random``: mean KL(p(y|x) || p(y|random generation)): how much the attribute changes when
      its latent is resampled (large is good: the latent controls the attribute);
    * ``kl_kept``: mean KL(p(y|x) || p(y|kept generation)), the KL beside the disagreement (small is
      good), reported too so that either reading of the paper's columns can be taken from the table.
    """
    out = {}
    for head in p_data:
        kept, random = (p_gen_f, p_gen_z) if head == "action" else (p_gen_z, p_gen_f)
        out[head] = {
            "disagreement": disagreement(p_data[head], kept[head]),
            "kl_recon": float(kl_categorical(p_data[head], p_recon[head]).mean()),
            "kl_random": float(kl_categorical(p_data[head], random[head]).mean()),
            "kl_kept": float(kl_categorical(p_data[head], kept[head]).mean()),
        }
    return out


def confusion(probs: np.ndarray, labels: np.ndarray, n_classes: int | None = None) -> list[list[int]]:
    """Counts [true class][judged class] of the judge's argmax decisions."""
    labels = np.asarray(labels, dtype=np.int64)
    k = n_classes or max(int(labels.max()) + 1, probs.shape[1])
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (labels, probs.argmax(axis=1)), 1)
    return cm.tolist()


def top_confusions(cm: list[list[int]], names: tuple[str, ...] | None = None, n: int = 3) -> list[dict]:
    """The n most frequent off-diagonal cells of a confusion matrix, as share of the true class."""
    cm_ = np.asarray(cm)
    cells = [(int(cm_[i, j]), i, j) for i in range(len(cm_)) for j in range(len(cm_)) if i != j and cm_[i, j] > 0]
    cells.sort(reverse=True)
    label = (lambda i: names[i]) if names else str
    return [
        {"true": label(i), "judged": label(j), "count": c, "share": round(c / max(1, int(cm_[i].sum())), 4)}
        for c, i, j in cells[:n]
    ]


def mean_std(values) -> dict[str, float]:
    """``{"mean", "std"}`` of a list of numbers (population std; 0 for one value)."""
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std())}


def summarise(rows: list):
    """Turn a list of equally nested dicts of numbers (one per repeat) into the same nesting of mean_std."""
    first = rows[0]
    if isinstance(first, dict):
        return {k: summarise([r[k] for r in rows]) for k in first}
    return mean_std(rows)


# --------------------------------------------------------------------------------------------
# pairs for the swap test


def swap_pairs(char_id: np.ndarray, action: np.ndarray, seed: int = SWAP_SEED) -> np.ndarray:
    """For each sequence a, a partner b with another character (any benchmark's content id) and
    another action, drawn uniformly with a fixed seed (the same pairs on every run for the same test set)."""
    char_id, action = np.asarray(char_id), np.asarray(action)
    n = len(char_id)
    if n == 0:
        raise DsaeError("the swap test needs test sequences; none were given")
    # partners of i = all - same character - same action + (same character and same action)
    _, ci, char_count = np.unique(char_id, return_inverse=True, return_counts=True)
    _, ai, action_count = np.unique(action, return_inverse=True, return_counts=True)
    _, both, both_count = np.unique(ci * (ai.max() + 1) + ai, return_inverse=True, return_counts=True)
    partners = n - char_count[ci] - action_count[ai] + both_count[both]
    if (partners < 1).any():
        raise DsaeError("the swap test needs sequences of at least two characters (contents) and two actions; evaluate more test sequences")
    rng = np.random.RandomState(seed)
    partner = rng.randint(n, size=n)
    bad = (char_id[partner] == char_id) | (action[partner] == action)
    while bad.any():
        partner[bad] = rng.randint(n, size=int(bad.sum()))
        bad = (char_id[partner] == char_id) | (action[partner] == action)
    return partner
