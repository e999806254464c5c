"""Top-k selection over a score vector: the one helper every ranking in the toolkit uses."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def top_k(scores: npt.ArrayLike, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first; ties keep index order.

    Selection is linear (``np.partition``); only the k selected scores are sorted.

    Example:
        >>> top_k([0.1, 0.9, 0.5, 0.9], 3).tolist()
        [1, 3, 2]
    """
    values = np.asarray(scores)
    n = len(values)
    k = max(0, min(k, n))
    if k == 0:
        return np.arange(0)
    if k < n:
        # linear-time selection of the k-th best value, then ties at that value in index order
        kth = -np.partition(-values, k - 1)[k - 1]
        above = np.flatnonzero(values > kth)
        ties = np.flatnonzero(values == kth)[: k - len(above)]
        top = np.sort(np.concatenate([above, ties]))
    else:
        top = np.arange(n)
    return top[np.argsort(-values[top], kind="stable")]
