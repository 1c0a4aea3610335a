"""The torch trainer of galton.quality.perspectives: fits parameters, returns numpy.

The only module of ``galton.quality.perspectives`` that imports torch;
``multi_annotator_model`` and ``jury_model`` import it lazily. The networks are written
functionally over a dict of parameters: the initial values come from numpy (the
caller's generator), so a run is reproducible on CPU, and the trained values go back as
numpy arrays, so prediction needs no torch.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from numpy.typing import NDArray

from ..dynamics._trainer import torch_settings  # one thread, denormals flushed (shared with dynamics)

__all__ = ["fit", "torch_settings"]


def _encode(p: Mapping[str, torch.Tensor], x: torch.Tensor, n_layers: int) -> torch.Tensor:
    h = x
    for layer in range(n_layers):
        h = torch.relu(h @ p[f"enc{layer}.w"] + p[f"enc{layer}.b"])
    return h


def _logits(kind: str, p: Mapping[str, torch.Tensor], x: torch.Tensor, workers: torch.Tensor,
            attributes: torch.Tensor | None, n_layers: int) -> torch.Tensor:
    h = _encode(p, x, n_layers)
    if kind == "heads":  # one linear head per worker, gathered per annotation row
        # head_w = shared + deviation_w: weight decay pulls sparse workers' heads to the shared one
        w = p["shared.w"] + p["heads.w"][workers]
        return torch.einsum("bh,bhk->bk", h, w) + p["shared.b"] + p["heads.b"][workers]
    rater = p["worker.emb"][workers]
    if attributes is not None:
        for j in range(attributes.shape[1]):
            rater = rater + p[f"attr{j}.emb"][attributes[workers, j]]
    z = torch.relu(h @ p["comb.wh"] + rater @ p["comb.wa"] + p["comb.b"])
    return z @ p["out.w"] + p["out.b"]


def fit(
    kind: str,
    params: Mapping[str, NDArray[np.float32]],
    features: NDArray[np.float32],
    items: NDArray[np.int64],
    workers: NDArray[np.int64],
    labels: NDArray[np.int64],
    *,
    attributes: NDArray[np.int64] | None,
    n_layers: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    seed: int,
    device: str | None,
    n_threads: int | None,
) -> tuple[dict[str, NDArray[np.float32]], list[float]]:
    """Adam on the mean cross-entropy of the annotation rows; returns parameters and epoch losses.

    ``kind`` is ``"heads"`` (Davani et al.'s multi-task model) or ``"jury"`` (Gordon et
    al.'s annotator-conditioned model). Rows are reshuffled every epoch from ``seed``.
    """
    with torch_settings(n_threads):
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        generator = torch.Generator().manual_seed(int(seed))
        p = {k: torch.tensor(v, device=dev, requires_grad=True) for k, v in params.items()}
        x = torch.as_tensor(features, device=dev)
        it = torch.as_tensor(items, device=dev)
        wk = torch.as_tensor(workers, device=dev)
        y = torch.as_tensor(labels, device=dev)
        attr = None if attributes is None else torch.as_tensor(attributes, device=dev)
        optimiser = torch.optim.Adam(list(p.values()), lr=learning_rate, weight_decay=weight_decay)
        losses: list[float] = []
        n_rows = int(it.shape[0])
        for _ in range(epochs):
            order = torch.randperm(n_rows, generator=generator).to(dev)
            total = 0.0
            for begin in range(0, n_rows, batch_size):
                rows = order[begin : begin + batch_size]
                logits = _logits(kind, p, x[it[rows]], wk[rows], attr, n_layers)
                loss = torch.nn.functional.cross_entropy(logits, y[rows])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * int(rows.shape[0])
            losses.append(total / max(n_rows, 1))
        trained = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in p.items()}
    return trained, losses
