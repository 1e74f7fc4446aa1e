"""Per-dimension discretisation of transitions into tokens (Janner et al. 2021, section 3.1).

A transition ``(s, a, r, V)`` of ``D = obs_dim + act_dim + 2`` numbers becomes ``D`` tokens, one per
dimension, each an index into that dimension's ``N`` bins. Bin ``i`` of dimension ``d`` is the interval
``[edges[d, i], edges[d, i + 1])``; values outside the data's range fall into the first or last bin.
A token decodes to its bin's midpoint, so for a value inside the fitted range

    |decode(encode(x)) - x| <= (edges[d, i + 1] - edges[d, i]) / 2.

Two ways to place the edges, both fitted per dimension over the whole dataset in one vectorised pass:

- ``quantile`` (the reference): ``edges[d] = quantiles of column d at 0, 1/N, ..., 1``, so every bin holds
  about the same number of data points and dense regions get fine bins;
- ``uniform``: ``N`` equal-width bins between the column's minimum and maximum.

Discrete actions are tokens already: their dimension gets the edges ``-0.5, 0.5, ..., N - 0.5``, so that
action id ``k`` encodes to token ``k`` and decodes back to ``k`` exactly (this needs ``n_actions <= N``).

The edges live in a persistent buffer, so they are saved in ``model.safetensors`` with the weights
(no pickle), and travel with the policy to the Hub.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from seqrl.errors import SeqRLError

STRATEGIES = ("quantile", "uniform")


class DiscretiserError(SeqRLError):
    """The discretiser cannot be fitted on this data or with these settings."""


def fit_edges(columns: np.ndarray, n_bins: int, strategy: str = "quantile",
              discrete_dims: tuple[int, ...] = ()) -> np.ndarray:
    """Bin edges ``[D, N + 1]`` (float64) for the columns ``[rows, D]`` of raw transition values.

    ``discrete_dims`` are dimensions that hold integer ids (discrete actions); each id gets its own bin.
    """
    if strategy not in STRATEGIES:
        raise DiscretiserError(f"discretiser '{strategy}' is unknown; choose one of {', '.join(STRATEGIES)}.")
    if n_bins < 2:
        raise DiscretiserError(f"n_bins must be at least 2, got {n_bins}.")
    columns = np.asarray(columns, dtype=np.float64)  # [rows, D]
    if columns.ndim != 2 or len(columns) == 0:
        raise DiscretiserError(f"fit_edges needs a non-empty [rows, dims] array, got shape {columns.shape}.")
    if strategy == "quantile":
        edges = np.quantile(columns, np.linspace(0.0, 1.0, n_bins + 1), axis=0).T  # [D, N + 1]
    else:
        low, high = columns.min(axis=0), columns.max(axis=0)  # [D]
        edges = low[:, None] + (high - low)[:, None] * np.linspace(0.0, 1.0, n_bins + 1)  # [D, N + 1]
    for dim in discrete_dims:
        largest = int(columns[:, dim].max())
        if largest >= n_bins:
            raise DiscretiserError(
                f"dimension {dim} holds discrete ids up to {largest}, but there are only {n_bins} bins; "
                f"raise --algo.n_bins to at least {largest + 1}.")
        edges[dim] = np.arange(n_bins + 1) - 0.5
    return edges


class Discretiser(nn.Module):
    """Encodes ``[..., D]`` values to tokens and decodes tokens to bin midpoints, on any device.

    ``edges`` [D, N + 1] is a persistent buffer; ``fitted`` (a 0-d uint8 buffer) says whether
    :meth:`load_edges` has placed edges fitted on data (a new model starts from uniform bins over [-1, 1],
    which only a model that never saw data acts with).
    """

    def __init__(self, dims: int, n_bins: int):
        super().__init__()
        self.dims, self.n_bins = dims, n_bins
        self.register_buffer("edges", torch.linspace(-1.0, 1.0, n_bins + 1).repeat(dims, 1))  # [D, N + 1]
        self.register_buffer("fitted", torch.zeros((), dtype=torch.uint8))

    @torch.no_grad()
    def load_edges(self, edges: np.ndarray) -> None:
        edges = torch.as_tensor(np.asarray(edges), dtype=self.edges.dtype)
        if edges.shape != self.edges.shape:
            raise DiscretiserError(f"edges of shape {tuple(edges.shape)} do not fit {tuple(self.edges.shape)}.")
        self.edges.copy_(edges)
        self.fitted.fill_(1)

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted.item())

    @property
    def midpoints(self) -> torch.Tensor:
        """Decoded value of every token ``[D, N]``."""
        return 0.5 * (self.edges[:, 1:] + self.edges[:, :-1])

    def encode(self, values: torch.Tensor, dims: slice = slice(None)) -> torch.Tensor:
        """Tokens ``[..., d]`` (int64 in [0, N)) of values ``[..., d]`` for the dimensions ``dims``."""
        inner = self.edges[dims, 1:-1].float().contiguous()  # [d, N - 1]: a value equal to an edge goes to the upper bin
        flat = values.float().reshape(-1, inner.shape[0]).T.contiguous()  # [d, rows]
        tokens = torch.searchsorted(inner, flat, right=True)  # [d, rows]
        return tokens.T.reshape(values.shape)

    def decode(self, tokens: torch.Tensor, dims: slice = slice(None)) -> torch.Tensor:
        """Bin midpoints ``[..., d]`` of tokens ``[..., d]``."""
        middle = self.midpoints[dims]  # [d, N]
        flat = tokens.reshape(-1, middle.shape[0]).clamp(0, self.n_bins - 1)  # [rows, d]
        return torch.gather(middle.T, 0, flat).reshape(tokens.shape)

    def encode_numpy(self, values: np.ndarray) -> np.ndarray:
        """:meth:`encode` for a numpy block ``[rows, D]`` (the token sampler's cache)."""
        return self.encode(torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))).numpy()

    @torch.no_grad()
    def reconstruction_error(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean absolute round-trip error per dimension ``[D]``, and the same divided by each column's
        standard deviation (0 where a column is constant)."""
        values_t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        error = (self.decode(self.encode(values_t)) - values_t).abs().double().mean(0).numpy()
        std = values.std(axis=0)
        return error, np.divide(error, std, out=np.zeros_like(error), where=std > 0)
