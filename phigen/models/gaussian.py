"""The Gaussian model: the best Gaussian field with the data's mean and 2D power spectrum.

Fit: ``μ = ⟨x⟩`` (one number, the fields being statistically homogeneous) and the full 2D spectrum
``P(k) = ⟨|x̂(k) − μ̂(k)|²⟩ / V`` averaged over the training fields (not isotropised, so lattice
anisotropy is kept). Sample: ``x = μ + IFFT(FFT(w) · √P)`` with white noise w — a stationary
Gaussian field with exactly that spectrum. It is the reference every non-Gaussian model must beat
on statistics beyond the spectrum (PDF, bispectrum, Minkowski functionals).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._base import read_model_file, register_model, write_model_file


@register_model("gaussian")
class GaussianSpectrumModel:
    """Stationary Gaussian field with the training set's mean and 2D power spectrum."""

    def __init__(self, mean: float, spectrum: np.ndarray, training: dict | None = None):
        self.mean = float(mean)
        self.spectrum = np.asarray(spectrum, dtype=np.float32)  # (H, W), |x̂|²/V convention
        self.training = training or {}

    @property
    def field_shape(self) -> tuple[int, int]:
        return tuple(self.spectrum.shape)

    @property
    def n_params(self) -> int:
        # the spectrum of a real field is Hermitian-symmetric: H·(W//2+1) independent values, + the mean
        h, w = self.spectrum.shape
        return h * (w // 2 + 1) + 1

    @classmethod
    def fit(cls, fields, *, key, progress=None):
        x = np.asarray(fields, dtype=np.float64)
        mean = float(x.mean())
        xh = np.fft.fft2(x - mean)
        spectrum = np.mean(np.abs(xh) ** 2, axis=0) / (x.shape[-1] * x.shape[-2])
        return cls(mean, spectrum)

    def sample(self, n: int, *, key):
        amp = jnp.sqrt(jnp.asarray(self.spectrum))
        w = jax.random.normal(key, (int(n), *self.field_shape), jnp.float32)
        return self.mean + jnp.real(jnp.fft.ifft2(jnp.fft.fft2(w) * amp))

    def save(self, path):
        return write_model_file(path, self.kind, config={"shape": list(self.field_shape)},
                                arrays={"mean": np.float32(self.mean), "spectrum": self.spectrum},
                                training=self.training)

    @classmethod
    def load(cls, path):
        f = read_model_file(path, cls.kind)
        return cls(float(f.arrays["mean"]), f.arrays["spectrum"], f.training)
