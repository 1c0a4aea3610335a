"""The torch trainer: a small head over fixed features that records training dynamics.

The only module of ``galton.quality`` that imports torch; ``find_mislabeled`` imports it
lazily. Everything it records comes from the training forward pass itself (no extra
evaluation pass): per mini-batch it reads the logits it already computed, before the
optimiser step, so every value is "per presentation".
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import NDArray

__all__ = ["Recording", "TrainedHead", "resolve_device", "torch_settings", "train_head"]


def resolve_device(device: str | None) -> torch.device:
    """``"auto"``/None: CUDA when present, else CPU; any other string is passed to torch."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def torch_settings(n_threads: int | None) -> Iterator[None]:
    """Set torch's intra-op threads and the BLAS pools' (restored afterwards); flush denormals.

    Denormals: without flushing, one 30-epoch run took 132 s instead of 10 s on this
    machine's CPUs. Threads: two torch threads on a busy two-core machine spin-wait, and so
    do two OpenBLAS threads: the self-influence solve of 100k x 128 took 34 s with two and
    18 s with one there. The BLAS pools (numpy, scipy) are limited with ``threadpoolctl``
    when it is installed (scikit-learn, in the ``dynamics`` extra, brings it); without it
    they keep their setting.
    """
    before = torch.get_num_threads()
    try:
        with contextlib.ExitStack() as stack:
            if n_threads is not None:
                try:
                    from threadpoolctl import threadpool_limits
                except ImportError:  # pragma: no cover - optional
                    pass
                else:
                    stack.enter_context(threadpool_limits(limits=int(n_threads), user_api="blas"))
                torch.set_num_threads(int(n_threads))
            # denormals flushed to zero only while training: the flag is process-wide CPU state
            # (it would make numpy and hypothesis misbehave after the fit), so it is reset on exit
            torch.set_flush_denormal(True)
            try:
                yield
            finally:
                torch.set_flush_denormal(False)
    finally:
        # after the BLAS pools: restoring them can reset the OpenMP pool torch shares
        torch.set_num_threads(before)


@dataclass
class Recording:
    """What one training run recorded, one row per epoch (= per presentation), one column per item."""

    label_probability: NDArray[np.float32]  # (n_epochs, n_items): softmax probability of the training label
    margin: NDArray[np.float32]  # (n_epochs, n_items): logit of the label minus the largest other logit
    correct: NDArray[np.bool_]  # (n_epochs, n_items): argmax == training label
    epoch_seconds: list[float] = field(default_factory=list)


@dataclass
class TrainedHead:
    """A trained head: predicts and exposes its final linear layer (numpy, float64)."""

    model: torch.nn.Sequential
    device: torch.device
    recording: Recording | None
    epoch_seconds: list[float]
    #: (n_epochs, n_eval, n_outputs) softmax of ``eval_features`` after every epoch, when asked
    eval_probabilities: NDArray[np.float32] | None = None

    def _forward(self, features: NDArray, upto: int | None, batch_size: int = 8192) -> NDArray[np.float64]:
        layers = self.model if upto is None else self.model[:upto]
        out = []
        with torch.no_grad():
            for start in range(0, features.shape[0], batch_size):
                xb = torch.as_tensor(features[start : start + batch_size], device=self.device)
                out.append(layers(xb).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0))

    def penultimate(self, features: NDArray) -> NDArray[np.float64]:
        """Inputs of the final linear layer, shape (n_items, d_last)."""
        return self._forward(features, upto=len(self.model) - 1)

    def predict_proba(self, features: NDArray) -> NDArray[np.float64]:
        """Softmax probabilities, shape (n_items, n_outputs)."""
        z = self._forward(features, upto=None)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def final_layer(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        last = self.model[-1]
        return last.weight.detach().double().cpu().numpy(), last.bias.detach().double().cpu().numpy()


def _build(n_features: int, hidden_sizes: Sequence[int], n_outputs: int, generator: torch.Generator):
    sizes = [n_features, *hidden_sizes, n_outputs]
    layers: list[torch.nn.Module] = []
    for i in range(len(sizes) - 1):
        linear = torch.nn.Linear(sizes[i], sizes[i + 1])
        bound = 1.0 / math.sqrt(sizes[i])  # torch's default range, drawn from our own generator
        with torch.no_grad():
            linear.weight.copy_(torch.rand(linear.weight.shape, generator=generator) * 2 * bound - bound)
            linear.bias.copy_(torch.rand(linear.bias.shape, generator=generator) * 2 * bound - bound)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def train_head(
    features: NDArray[np.float32],
    labels: NDArray[np.int64],
    n_outputs: int,
    *,
    hidden_sizes: Sequence[int],
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    seed: int,
    device: torch.device,
    record: bool = True,
    eval_features: NDArray[np.float32] | None = None,
    eval_labels: NDArray[np.int64] | None = None,
    patience: int | None = None,
) -> TrainedHead:
    """Train a linear (``hidden_sizes=()``) or MLP head with Adam and mean cross-entropy.

    With ``record`` it keeps, per epoch and item, the probability of the training label,
    the AUM margin and correctness, taken from the logits of the training forward pass.
    Item order is reshuffled every epoch from ``seed``; the weights are drawn from the
    same seed, so a run is reproducible (on CPU). With ``eval_features`` it also keeps the
    softmax of those items after every epoch (outside the timed epoch), for early stopping;
    with ``eval_labels`` and ``patience`` too, training stops once their mean cross-entropy
    has not improved for ``patience`` epochs (so fewer than ``epochs`` rows may come back).
    """
    generator = torch.Generator().manual_seed(int(seed))
    n_items = features.shape[0]
    model = _build(features.shape[1], hidden_sizes, n_outputs, generator).to(device)
    x = torch.as_tensor(features, device=device)
    y = torch.as_tensor(labels, dtype=torch.int64, device=device)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay, fused=True)
    if record:
        probability = torch.empty((epochs, n_items), dtype=torch.float32, device=device)
        margin = torch.empty((epochs, n_items), dtype=torch.float32, device=device)
    seconds: list[float] = []
    evaluated: list[NDArray[np.float32]] = []
    x_eval = None if eval_features is None else torch.as_tensor(eval_features, device=device)
    nll = torch.nn.functional.nll_loss
    best_loss, since_best = math.inf, 0
    for epoch in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(n_items, generator=generator).to(device)
        # one gather per epoch, then contiguous slices: cheaper than indexing every batch
        x_epoch, y_epoch = x[order], y[order]
        if record:
            p_epoch = torch.empty(n_items, dtype=torch.float32, device=device)
            m_epoch = torch.empty(n_items, dtype=torch.float32, device=device)
        for begin in range(0, n_items, batch_size):
            stop = min(begin + batch_size, n_items)
            yb = y_epoch[begin:stop]
            logits = model(x_epoch[begin:stop])
            log_p = torch.log_softmax(logits, dim=1)
            loss = nll(log_p, yb)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if record:
                with torch.no_grad():
                    z = logits.detach()
                    column = yb[:, None]
                    other = z.scatter(1, column, float("-inf")).amax(dim=1)
                    torch.sub(z.gather(1, column)[:, 0], other, out=m_epoch[begin:stop])
                    torch.exp(log_p.detach().gather(1, column)[:, 0], out=p_epoch[begin:stop])
            optimiser.step()
        if record:
            probability[epoch, order] = p_epoch
            margin[epoch, order] = m_epoch
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
        if x_eval is not None:
            with torch.no_grad():
                evaluated.append(
                    np.concatenate(
                        [
                            torch.softmax(model(x_eval[i : i + 8192]), dim=1).cpu().numpy()
                            for i in range(0, x_eval.shape[0], 8192)
                        ]
                    )
                )
            if patience is not None and eval_labels is not None:
                p = evaluated[-1][np.arange(eval_labels.size), eval_labels]
                held_loss = float(-np.log(np.clip(p, 1e-12, None)).mean())
                best_loss, since_best = (held_loss, 0) if held_loss < best_loss else (best_loss, since_best + 1)
                if since_best >= patience:
                    break
    recording = None
    if record:
        m = margin.cpu().numpy()
        recording = Recording(probability.cpu().numpy(), m, m > 0, seconds)
    model.eval()
    eval_p = np.stack(evaluated) if evaluated else None
    return TrainedHead(model, device, recording, seconds, eval_p)
