"""Statistics against float32 on the same test items: McNemar exact, paired bootstrap CI, per-class F1.

The question they answer: is a codec's accuracy distinguishable from float32, how big can the drop
be (95% CI), and which class suffers most.
"""

from __future__ import annotations

import numpy as np

N_BOOTSTRAP = 1000


def mcnemar_exact(correct_base: np.ndarray, correct_other: np.ndarray) -> float:
    """Two-sided exact McNemar p-value (binomial test on the discordant pairs); 1.0 when there are none."""
    from scipy.stats import binomtest

    a = np.asarray(correct_base, bool)
    b = np.asarray(correct_other, bool)
    only_base = int(np.sum(a & ~b))
    only_other = int(np.sum(~a & b))
    n = only_base + only_other
    if n == 0:
        return 1.0
    return float(binomtest(only_base, n, 0.5, alternative="two-sided").pvalue)


def paired_bootstrap_ci(
    score_base: np.ndarray,
    score_other: np.ndarray,
    n_resamples: int = N_BOOTSTRAP,
    seed: int = 0,
    statistic=None,
    level: float = 0.95,
) -> tuple[float, float]:
    """95% CI of mean(other) - mean(base) (or ``statistic(idx)`` differences) over paired resamples of the test items.

    ``score_*`` are per-item scores (1/0 correctness for accuracy). With ``statistic`` given it is
    called as ``statistic(idx) -> difference`` for each resample instead (e.g. an R² difference).
    """
    rng = np.random.default_rng(seed)
    n = len(score_base)
    idx = rng.integers(0, n, size=(n_resamples, n))
    if statistic is None:
        diff = np.asarray(score_other, np.float64) - np.asarray(score_base, np.float64)
        stats = diff[idx].mean(axis=1)
    else:
        stats = np.array([statistic(i) for i in idx])
    alpha = (1.0 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """F1 per class (in ``classes`` order); 0 where a class is neither present nor predicted."""
    from sklearn.metrics import f1_score

    return f1_score(y_true, y_pred, labels=classes, average=None, zero_division=0.0)


def worst_class_drop(
    y_true: np.ndarray, pred_base: np.ndarray, pred_other: np.ndarray, classes: np.ndarray | None = None
) -> tuple[int, float]:
    """(class id, F1 change) of the class whose F1 falls most against float32, over classes in the test set."""
    classes = np.unique(y_true) if classes is None else np.asarray(classes)
    diff = per_class_f1(y_true, pred_other, classes) - per_class_f1(y_true, pred_base, classes)
    i = int(np.argmin(diff))
    return int(classes[i]), float(diff[i])
