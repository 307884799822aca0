"""The wavelet factorisation behind the renormalisation-group models (docs/rg.md):

    p(x) = p(x_J) · Π_{j=1..J} p̄_j(x̄_j | x_j),

where one periodic orthogonal DWT level splits the field at scale j−1 into its coarse field x_j
(half the side) and three detail channels x̄_j (cH, cV, cD): ``x_{j−1} = A x_j + B x̄_j`` with the
synthesis matrix [A B] orthogonal. Models learn each conditional on *normalised* variables:

- details: ``d̃_j = (x̄_j − μ_{j,c}) / σ_{j,c}`` per level j and channel c (:class:`~phigen.wavelets.DetailStandardizer`);
- coarse fields: ``x̃_j = (x_j − m_j) / s_j`` per level j = 0 … J (network inputs, the coarse model).

The ratio ``s_j / s_{j−1}`` is the low-pass standard-deviation growth per octave (2 for a
white-noise-free constant field, 2^{1−η/2} ≈ 1.83 for the critical 2D Ising class with η = ¼).

:class:`WaveletFactorisation` holds the wavelet, J and those statistics (a pytree of arrays, stored in
model files) and maps between a field and its normalised multi-scale representation.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields, check_int_at_least
from ..errors import InputError, ParameterError
from ..wavelets import dwt, dwt_level, idwt_level, wavelet_filters

__all__ = ["WaveletFactorisation", "default_levels", "detail_row_norms", "per_scale_std"]


def _device_fields(fields):
    """``as_fields(fields)`` on the device, its checks done on the host: for a device array
    ``as_fields`` compiles a finiteness kernel per shape, which the fits' many level shapes pay for."""
    if isinstance(fields, jax.Array) and not isinstance(fields, jax.core.Tracer):
        fields = np.asarray(fields)
    return jnp.asarray(as_fields(fields))


def default_levels(shape, coarse_size: int = 8) -> int:
    """Number of DWT levels J that brings fields of ``shape`` (H, W) down to about ``coarse_size`` pixels
    on the shorter side (at least 1; limited by the powers of 2 dividing H and W)."""
    h, w = (int(s) for s in shape[-2:])
    j = 0
    while h % 2 ** (j + 1) == 0 and w % 2 ** (j + 1) == 0 and min(h, w) // 2 ** (j + 1) >= coarse_size:
        j += 1
    if j == 0:
        raise InputError(f"fields of shape {(h, w)} are too small or odd-sized for a wavelet factorisation "
                         f"(need sides divisible by 2 and at least {2 * coarse_size})")
    return j


@functools.lru_cache(maxsize=16)
def detail_row_norms(wavelet: str) -> np.ndarray:
    """``‖B^c_{s,·}‖²`` for each detail channel c and site parity s: array (3, 2, 2).

    ``B^c`` is the synthesis matrix of detail channel c (the fine field's response to that channel's
    coefficients); its squared row norm only depends on the parity of the fine site s. Together with
    the coarse rows they sum to 1 (orthogonality); for 2D Haar each channel gives ¼. Computed by
    probing: ``B^c B^cᵀ e_s`` at site s for the four parities on a grid wider than the filter.
    """
    f = wavelet_filters(wavelet)[0].shape[0]
    n = 2 * max(f, 4)
    out = np.zeros((3, 2, 2))
    for a in range(2):
        for b in range(2):
            e = np.zeros((1, n, n), np.float32)
            e[0, a, b] = 1.0
            approx, det = dwt_level(e, wavelet)
            for c in range(3):
                keep = jnp.zeros_like(det).at[:, c].set(det[:, c])
                back = idwt_level(jnp.zeros_like(approx), keep, wavelet)
                out[c, a, b] = float(back[0, a, b])
    return out


class WaveletFactorisation(NamedTuple):
    """Wavelet, number of levels and the normalisation statistics of a training set.

    ``detail_mean``/``detail_std`` (J, 3) per level and channel; ``coarse_mean``/``coarse_std``
    (J+1,) of the coarse fields x_0 (the field itself) … x_J. ``wavelet`` and ``J`` are static.
    """

    wavelet: str
    J: int
    detail_mean: np.ndarray
    detail_std: np.ndarray
    coarse_mean: np.ndarray
    coarse_std: np.ndarray

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def fit(cls, fields, *, wavelet: str = "db4", J: int | None = None, coarse_size: int = 8,
            batch: int = 256) -> "WaveletFactorisation":
        """Statistics of ``fields`` ``(N, H, W)``; ``J`` defaults to :func:`default_levels`."""
        wavelet_filters(wavelet)
        x = as_fields(fields, name="training fields")
        if x.shape[0] < 2:
            raise InputError(f"need at least 2 training fields; got {x.shape[0]}")
        J = default_levels(x.shape, coarse_size) if J is None else check_int_at_least(J, "J", 1)
        h, w = x.shape[-2:]
        if h % 2**J or w % 2**J:
            raise InputError(f"fields of shape {(h, w)} cannot be split into J={J} periodic DWT levels "
                             f"(sides must be multiples of 2^J = {2**J})")
        # accumulate first and second moments in float64 over batches (large sets, small memory)
        s1d, s2d = np.zeros((J, 3)), np.zeros((J, 3))
        s1c, s2c, counts = np.zeros(J + 1), np.zeros(J + 1), np.zeros(J + 1)
        for start in range(0, x.shape[0], batch):
            xb = jnp.asarray(x[start:start + batch])
            coeffs = dwt(xb, wavelet, J)
            levels = [xb] + [None] * J
            a = xb
            for j in range(1, J + 1):
                a, _ = dwt_level(a, wavelet)
                levels[j] = a
            for j, d in enumerate(coeffs.details):
                d = np.asarray(d, np.float64)
                s1d[j] += d.sum(axis=(0, 2, 3))
                s2d[j] += (d * d).sum(axis=(0, 2, 3))
            for j, a in enumerate(levels):
                a = np.asarray(a, np.float64)
                s1c[j] += a.sum()
                s2c[j] += (a * a).sum()
                counts[j] += a.size
        n_det = counts[1:, None]
        dmean = s1d / n_det
        dstd = np.sqrt(np.maximum(s2d / n_det - dmean**2, 0.0))
        cmean = s1c / counts
        cstd = np.sqrt(np.maximum(s2c / counts - cmean**2, 0.0))
        if not np.all(dstd > 0) or not np.all(cstd > 0):
            raise InputError("training fields have a constant wavelet channel (zero standard deviation); "
                             "they cannot be normalised")
        return cls(wavelet, int(J), dmean, dstd, cmean, cstd)

    def to_arrays(self) -> dict:
        """Arrays for a model file (see :meth:`from_arrays`)."""
        return {"detail_mean": self.detail_mean, "detail_std": self.detail_std,
                "coarse_mean": self.coarse_mean, "coarse_std": self.coarse_std}

    @classmethod
    def from_arrays(cls, wavelet: str, J: int, arrays: dict) -> "WaveletFactorisation":
        try:
            return cls(str(wavelet), int(J), *(np.asarray(arrays[k], np.float64) for k in
                                               ("detail_mean", "detail_std", "coarse_mean", "coarse_std")))
        except KeyError as exc:
            raise InputError(f"wavelet factorisation arrays are missing {exc}") from None

    # --- derived quantities ----------------------------------------------------------------------
    @property
    def std_growth(self) -> np.ndarray:
        """Low-pass std growth per octave ``s_j / s_{j−1}`` for j = 1 … J (array (J,))."""
        return self.coarse_std[1:] / self.coarse_std[:-1]

    def level_shape(self, shape, level: int) -> tuple[int, int]:
        """Side lengths of x_level for fields of ``shape``."""
        return tuple(int(s) // 2**level for s in shape[-2:])

    def check_shape(self, shape) -> None:
        h, w = (int(s) for s in shape[-2:])
        if h % 2**self.J or w % 2**self.J:
            raise InputError(f"fields of shape {(h, w)} cannot be split into the model's J={self.J} levels "
                             f"(sides must be multiples of {2**self.J})")

    # --- normalised representation ---------------------------------------------------------------
    def normalise_details(self, details, level: int):
        """``(x̄ − μ_{level,c}) / σ_{level,c}`` for details ``(..., 3, h, w)`` of ``level`` (1 = finest)."""
        j = int(level) - 1
        mu = jnp.asarray(self.detail_mean[j], jnp.float32)[:, None, None]
        sd = jnp.asarray(self.detail_std[j], jnp.float32)[:, None, None]
        return (details - mu) / sd

    def unnormalise_details(self, details, level: int):
        j = int(level) - 1
        mu = jnp.asarray(self.detail_mean[j], jnp.float32)[:, None, None]
        sd = jnp.asarray(self.detail_std[j], jnp.float32)[:, None, None]
        return details * sd + mu

    def normalise_coarse(self, x, level: int):
        """``(x_level − m_level) / s_level`` (level 0 is the field itself)."""
        return (x - float(self.coarse_mean[level])) / float(self.coarse_std[level])

    def unnormalise_coarse(self, x, level: int):
        return x * float(self.coarse_std[level]) + float(self.coarse_mean[level])

    def split(self, x, level: int):
        """One level down: x_{level−1} ``(N, H, W)`` → (x_level ``(N, H/2, W/2)``, normalised details ``(N, 3, H/2, W/2)``)."""
        a, d = dwt_level(x, self.wavelet)
        return a, self.normalise_details(d, level)

    def refine(self, coarse, details_normalised, level: int):
        """One level up: x_level and normalised details → x_{level−1} (unnormalised)."""
        return idwt_level(coarse, self.unnormalise_details(details_normalised, level), self.wavelet)

    def decompose(self, fields) -> tuple[jax.Array, list]:
        """Fields ``(N, H, W)`` → (x_J ``(N, H/2^J, W/2^J)`` unnormalised, [normalised details of levels 1 … J])."""
        x = _device_fields(fields)
        self.check_shape(x.shape)
        details = []
        for j in range(1, self.J + 1):
            x, d = self.split(x, j)
            details.append(d)
        return x, details

    def level_data(self, fields, level: int):
        """Training pairs of one level: (x_level ``(N, h, w)`` unnormalised, normalised details ``(N, 3, h, w)``)."""
        x = _device_fields(fields)
        self.check_shape(x.shape)
        level = int(level)
        if not 1 <= level <= self.J:
            raise ParameterError(f"level must be in 1 … {self.J}; got {level}")
        for j in range(1, level):
            x, _ = dwt_level(x, self.wavelet)
        return self.split(x, level)

    def coarse(self, fields, level: int | None = None):
        """x_level (default x_J) of ``fields``, unnormalised."""
        level = self.J if level is None else int(level)
        x = _device_fields(fields)
        for _ in range(level):
            x, _ = dwt_level(x, self.wavelet)
        return x

    def reconstruct(self, coarse, details: list):
        """Inverse of :meth:`decompose`."""
        x = jnp.asarray(coarse)
        for j in range(self.J, 0, -1):
            x = self.refine(x, details[j - 1], j)
        return x


def per_scale_std(fields, wavelet: str, J: int) -> dict:
    """Standard deviations per scale of ``fields`` ``(N, H, W)``: the diagnostics of the RG models.

    Returns ``{"detail": (J, 3) std of each level's detail channels (level 1 first), "coarse": (J+1,)
    std of x_0 … x_J, "growth": (J,) s_j / s_{j−1}}`` (numpy float64, over fields and pixels).
    """
    x = _device_fields(fields)
    coeffs = dwt(x, wavelet, J)
    detail = np.stack([np.asarray(d, np.float64).std(axis=(0, 2, 3)) for d in coeffs.details])
    coarse = [float(np.asarray(x, np.float64).std())]
    a = x
    for _ in range(J):
        a, _ = dwt_level(a, wavelet)
        coarse.append(float(np.asarray(a, np.float64).std()))
    coarse = np.asarray(coarse)
    return {"detail": detail, "coarse": coarse, "growth": coarse[1:] / coarse[:-1]}


def per_scale_std_null(fields, wavelet: str, J: int, *, groups=None, n_splits: int = 200, seed: int = 0) -> dict:
    """Truth-against-truth null of the std-per-scale error: how far two disjoint halves of ``fields``
    ``(N, H, W)`` differ, so a model's ``max |s_model / s_truth − 1|`` can be read against it.

    Each of ``n_splits`` random splits draws two halves of m fields (:func:`phigen.splits.equal_halves`:
    with ``groups`` — simulation, run, chain — no group on both sides) and records
    ``max_{j,c} |s_A(j,c) / s_B(j,c) − 1|`` over levels j and channels c of :func:`per_scale_std`.
    Returns ``{"max_rel_error": (n_splits,), "mean", "p95", "m"}``. The spread between groups (e.g.
    turbulence runs with different anisotropy) is part of the null, as it is of a held-out truth."""
    from ..splits import equal_halves, half_size

    x = np.asarray(as_fields(fields, name="fields"))
    n_splits = check_int_at_least(n_splits, "n_splits", 1)
    coeffs = dwt(_device_fields(x), wavelet, J)
    # per field, level and channel: sum of squares and sum over pixels, so any half's std is a sum
    sq = np.stack([np.square(np.asarray(d, np.float64)).sum(axis=(2, 3)) for d in coeffs.details], 1)  # (N, J, 3)
    lin = np.stack([np.asarray(d, np.float64).sum(axis=(2, 3)) for d in coeffs.details], 1)
    npix = np.array([d.shape[2] * d.shape[3] for d in coeffs.details], np.float64)[None, :, None]

    def std(idx):
        n = len(idx) * npix[0]
        mu = lin[idx].sum(0) / n
        return np.sqrt(np.maximum(sq[idx].sum(0) / n - mu ** 2, 0.0))

    m = half_size(len(x), groups)
    rng = np.random.default_rng(seed)
    out = np.empty(n_splits)
    for i in range(n_splits):
        a, b = equal_halves(rng, len(x), m, groups)
        out[i] = np.max(np.abs(std(a) / std(b) - 1.0))
    return {"max_rel_error": out, "mean": float(out.mean()), "p95": float(np.percentile(out, 95)), "m": int(m)}
