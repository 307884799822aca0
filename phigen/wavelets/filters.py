"""Oriented wavelet filter banks in the Fourier domain (Morlet, bump-steerable) for periodic fields.

Every filter is stored as its DFT on the grid of the field, in FFT layout (k = 0 at [0, 0]),
wavenumber k = 2π m / n rad/pixel. The wavelets ψ_{j,l} (j = 0..J-1 scales, l = 0..L-1 orientations)
have central frequency ξ_j = ξ_0 2^{-j} along the angle θ_l = π l / L measured from axis 0 (rows)
towards axis 1; their transforms are real, so ψ(−u) = ψ(u)*, and ψ̂(0) = 0 exactly (zero mean).
Orientations θ_l + π are obtained by complex conjugation for real fields.

Littlewood–Paley sum (frame bounds of the bank for real fields):

    A(k) = Σ_{j,l} ½ (ψ̂_{j,l}(k)² + ψ̂_{j,l}(−k)²) + φ̂(k)²

so that for a real field x,  Σ_{j,l} ‖x∗ψ_{j,l}‖² + ‖x∗φ‖² = (1/V) Σ_k A(k) |x̂(k)|².

Morlet filters follow kymatio's ``morlet_2d`` (σ_j = 0.8·2^j, ξ_j = 3π/4·2^{-j}, slant 4/L), written in
closed form in Fourier (the tests check them against kymatio's own space-domain construction). The bump-steerable
filters (Mallat, Zhang, Rochette 2020) are defined directly in Fourier:

    ψ̂(k) = c · exp(−(|k| − k_j)² / (k_j² − (|k| − k_j)²)) 1_{0<|k|<2k_j} · cos^{p}(arg k − θ_l) 1_{cos>0},

k_j = 0.75π 2^{-j}, p = L − 1, and c² = 4^p / (L binom(2p, p)) so that the angular part of the
Littlewood–Paley sum is exactly 1 (Σ_l cos^{2p}(θ − πl/L) = L binom(2p,p)/4^p for p < L).
"""

from __future__ import annotations

import functools
from math import comb
from typing import NamedTuple

import numpy as np

from ..errors import ParameterError


class FilterBank(NamedTuple):
    """Fourier-domain filter bank for fields of shape ``(H, W)``.

    ``psi`` (J, L, H, W) float64: ψ̂_{j,l}(k), real; ``phi`` (H, W): low-pass φ̂(k) at scale 2^J (φ̂(0) = 1);
    ``xi`` (J,): central frequency of each scale (rad/pixel); ``theta`` (L,): orientation angles;
    ``kind``: ``"morlet"`` or ``"bump"``.
    """

    psi: np.ndarray
    phi: np.ndarray
    xi: np.ndarray
    theta: np.ndarray
    kind: str

    @property
    def J(self) -> int:
        return int(self.psi.shape[0])

    @property
    def L(self) -> int:
        return int(self.psi.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.psi.shape[-2:])


def _check(shape, J, L):
    try:
        h, w = (int(shape), int(shape)) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"shape must be an int or a pair (H, W); got {shape!r}") from exc
    if int(J) != J or J < 1:
        raise ParameterError(f"J must be an integer >= 1; got {J!r}")
    if int(L) != L or L < 1:
        raise ParameterError(f"L must be an integer >= 1; got {L!r}")
    if min(h, w) < 2 ** int(J):
        raise ParameterError(f"fields of shape {(h, w)} are too small for J={J} scales: need H, W >= 2^J = {2 ** int(J)}")
    return (h, w), int(J), int(L)


def _flip(a):
    """a(−k) on the FFT grid (last two axes)."""
    return np.roll(np.flip(a, axis=(-2, -1)), 1, axis=(-2, -1))


def _grid(shape):
    return 2 * np.pi * np.fft.fftfreq(shape[0])[:, None], 2 * np.pi * np.fft.fftfreq(shape[1])[None, :]


def _tiles(extent):
    """Fourier periodisation range: tiles 2πt needed for a function negligible beyond |k| > extent."""
    r = max(1, int(np.ceil(extent / (2 * np.pi))))
    return range(-r, r + 1)


def _gaussian_lowpass(shape, sigma):
    """φ̂(k) of the sampled Gaussian of width σ (pixels): Σ_t exp(−σ²|k + 2πt|²/2), normalised to φ̂(0) = 1."""
    k0, k1 = _grid(shape)
    phi = np.zeros(shape)
    for t0 in _tiles(8.6 / sigma):
        for t1 in _tiles(8.6 / sigma):
            phi += np.exp(-0.5 * sigma**2 * ((k0 + 2 * np.pi * t0) ** 2 + (k1 + 2 * np.pi * t1) ** 2))
    return phi / phi[0, 0]


def _morlet_fourier(shape, sigma, theta, xi, slant):
    """DFT of kymatio's sampled, periodised ``morlet_2d`` in closed form.

    Continuous transform of g_σ(u) e^{iξ·u}: ĝ(k − ξe_θ), ĝ(k) = exp(−σ²/2 (k_∥² + k_⊥²/slant²));
    sampling in space periodises it in Fourier (Σ over tiles 2πt); the Morlet correction K makes
    ψ̂(0) = 0 exactly, as kymatio's K = Σψ/Σ|g| does in space.
    """
    k0, k1 = _grid(shape)
    c, s = np.cos(theta), np.sin(theta)
    gab = np.zeros(shape)
    env = np.zeros(shape)
    extent = xi + 8.6 / (sigma * min(1.0, slant))
    for t0 in _tiles(extent):
        for t1 in _tiles(extent):
            q0, q1 = k0 + 2 * np.pi * t0, k1 + 2 * np.pi * t1
            par, perp = c * q0 + s * q1, -s * q0 + c * q1
            gab += np.exp(-0.5 * sigma**2 * ((par - xi) ** 2 + (perp / slant) ** 2))
            env += np.exp(-0.5 * sigma**2 * (par**2 + (perp / slant) ** 2))
    return gab - (gab[0, 0] / env[0, 0]) * env


@functools.lru_cache(maxsize=16)
def _morlet_cached(shape, J, L, slant):
    psi = np.zeros((J, L) + tuple(shape))
    for j in range(J):
        for l in range(L):
            psi[j, l] = _morlet_fourier(shape, 0.8 * 2**j, np.pi * l / L, 0.75 * np.pi / 2**j, slant)
    psi[:, :, 0, 0] = 0.0
    phi = _gaussian_lowpass(shape, 0.8 * 2 ** (J - 1))
    xi = 0.75 * np.pi / 2.0 ** np.arange(J)
    theta = np.pi * np.arange(L) / L
    for a in (psi, phi, xi, theta):
        a.setflags(write=False)
    return FilterBank(psi, phi, xi, theta, "morlet")


def morlet_filter_bank(shape, J: int, L: int = 4, *, slant: float | None = None) -> FilterBank:
    """Morlet wavelets ψ̂_{j,l} (J scales, L orientations) and Gaussian low-pass φ̂ for fields ``shape``.

    kymatio's Morlet design (σ = 0.8·2^j, ξ = 3π/4·2^-j, slant 4/L by default), evaluated in closed
    form in Fourier (equal to the FFT of kymatio's ``morlet_2d`` up to its π ≈ 3.1415 normalisation,
    ~3e-5 relative, and ~10x faster at 256²). Cached per (shape, J, L, slant); arrays are read-only.
    """
    shape, J, L = _check(shape, J, L)
    slant = 4.0 / L if slant is None else float(slant)
    if not slant > 0:
        raise ParameterError(f"slant must be > 0; got {slant!r}")
    return _morlet_cached(shape, J, L, slant)


@functools.lru_cache(maxsize=16)
def _bump_cached(shape, J, L, p):
    h, w = shape
    psi = np.zeros((J, L, h, w))
    c = np.sqrt(4.0**p / (L * comb(2 * p, p)))
    base0, base1 = _grid(shape)
    theta = np.pi * np.arange(L) / L
    for j in range(J):
        k0 = 0.75 * np.pi / 2**j
        for t0 in (-1, 0, 1):  # periodise in Fourier = sample the continuous wavelet in space
            for t1 in (-1, 0, 1):
                k0x, k1x = base0 + 2 * np.pi * t0, base1 + 2 * np.pi * t1
                k = np.hypot(k0x, k1x)
                inside = (k > 0) & (k < 2 * k0)
                r = np.where(inside, k - k0, 0.0)
                radial = np.where(inside, np.exp(-(r**2) / np.maximum(k0**2 - r**2, 1e-300)), 0.0)
                ang = np.arctan2(k1x, k0x)
                for l in range(L):
                    cth = np.cos(ang - theta[l])
                    psi[j, l] += c * radial * np.where(cth > 0, cth, 0.0) ** p
    psi[:, :, 0, 0] = 0.0
    phi = _gaussian_lowpass(shape, 0.8 * 2 ** (J - 1))
    xi = 0.75 * np.pi / 2.0 ** np.arange(J)
    for a in (psi, phi, xi, theta):
        a.setflags(write=False)
    return FilterBank(psi, phi, xi, theta, "bump")


def bump_steerable_filter_bank(shape, J: int, L: int = 4, *, angular_power: int | None = None) -> FilterBank:
    """Bump-steerable wavelets (compact support 0 < |k| < 2k_j in Fourier) and a Gaussian low-pass.

    ``angular_power`` p (default L − 1, must be < L for an orientation-flat Littlewood–Paley sum).
    """
    shape, J, L = _check(shape, J, L)
    p = L - 1 if angular_power is None else int(angular_power)
    if p < 0:
        raise ParameterError(f"angular_power must be >= 0; got {angular_power!r}")
    return _bump_cached(shape, J, L, p)


def filter_bank(shape, J: int, L: int = 4, kind: str = "morlet", **kwargs) -> FilterBank:
    """Dispatch: ``kind`` = ``"morlet"`` (:func:`morlet_filter_bank`) or ``"bump"`` (:func:`bump_steerable_filter_bank`)."""
    if kind == "morlet":
        return morlet_filter_bank(shape, J, L, **kwargs)
    if kind in ("bump", "bump_steerable", "bump-steerable"):
        return bump_steerable_filter_bank(shape, J, L, **kwargs)
    raise ParameterError(f"unknown filter bank kind {kind!r}; use 'morlet' or 'bump'")


def littlewood_paley(bank: FilterBank, *, include_lowpass: bool = True) -> np.ndarray:
    """Littlewood–Paley sum A(k) = Σ_{j,l} ½(ψ̂(k)² + ψ̂(−k)²) [+ φ̂(k)²], shape (H, W), FFT layout.

    For a real field, Σ_{j,l} mean|x∗ψ_{j,l}|² = (1/V²) Σ_k |x̂(k)|² Σ_{j,l} ψ̂(k)² and the symmetric
    form is what that sum equals after pairing k with −k (|x̂(k)| = |x̂(−k)|).
    """
    sq = np.sum(bank.psi**2, axis=(0, 1))
    a = 0.5 * (sq + _flip(sq))
    if include_lowpass:
        a = a + bank.phi**2
    return a
