"""Tests of phigen.plot: what each figure contains, that it saves as a readable PNG, and bad input."""

import os
import subprocess
import sys
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")  # tests never need a display; the library's own choice is tested in a subprocess

import jax.numpy as jnp
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from phigen import plot as P
from phigen.errors import InputError, ParameterError


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _images(fig):
    return [im for a in fig.axes for im in a.get_images()]


def _bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def _band_limits(band):
    v = np.concatenate([p.vertices for p in band.get_paths()])
    return v[:, 1].min(), v[:, 1].max()


# --- images --------------------------------------------------------------------------------------
def test_plot_fields_grid_shared_symmetric_scale_and_cap(rng):
    x = rng.standard_normal((20, 16, 12)).astype(np.float32)
    x[18, 0, 0] = 50.0  # beyond max_fields: must not influence the colour scale
    fig = P.plot_fields(jnp.asarray(x), titles=[f"f{i}" for i in range(20)], suptitle="truth")
    images = _images(fig)
    assert len(images) == 16
    m = np.abs(x[:16]).max()
    for im in images:
        assert im.get_clim() == pytest.approx((-m, m), rel=1e-6)
    assert len(fig.axes) == 16 + 1  # 16 panels and one colourbar
    assert [a.get_title() for a in fig.axes[:16]] == [f"f{i}" for i in range(16)]
    assert fig.get_suptitle() == "truth"
    np.testing.assert_array_equal(images[3].get_array(), x[3])


def test_plot_fields_layout_non_symmetric_and_user_axes(rng):
    x = rng.uniform(2.0, 5.0, size=(5, 8, 8))
    fig = P.plot_fields(x, ncols=3, symmetric=False)
    assert len(_images(fig)) == 5
    assert sum(not a.axison for a in fig.axes) == 1  # 2x3 grid, one spare panel switched off
    assert _images(fig)[0].get_clim() == pytest.approx((x.min(), x.max()))
    fig2, axes = plt.subplots(1, 2)
    assert P.plot_fields(x[:2], ax=axes, vmin=-1, vmax=1) is fig2
    assert _images(fig2)[1].get_clim() == (-1, 1)
    single = P.plot_fields(x[0])  # one (H, W) field
    assert len(_images(single)) == 1


def test_plot_fields_bad_input(rng):
    x = rng.standard_normal((4, 8, 8))
    with pytest.raises(InputError):
        P.plot_fields(x[0, 0])  # 1-D
    bad = x.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(InputError):
        P.plot_fields(bad)
    with pytest.raises(InputError):
        P.plot_fields(x, titles=["a", "b"])
    with pytest.raises(ParameterError):
        P.plot_fields(x, ncols=0)
    with pytest.raises(ParameterError):
        P.plot_fields(x, ax=plt.subplots(1, 2)[1])


def test_plot_field_grids_rows_share_one_scale(rng):
    truth = rng.standard_normal((6, 8, 8))
    model = 3.0 * rng.standard_normal((2, 8, 8))  # fewer fields than n_per_group
    fig = P.plot_field_grids({"truth": truth, "model A": model, "model B": jnp.asarray(truth[:4])},
                             n_per_group=4)
    images = _images(fig)
    assert len(images) == 4 + 2 + 4
    m = max(np.abs(truth[:4]).max(), np.abs(model).max())
    clims = {im.get_clim() for im in images}
    assert len(clims) == 1 and clims.pop() == pytest.approx((-m, m), rel=1e-6)  # float32 fields
    panels = fig.axes[:12]
    assert [panels[r * 4].get_ylabel() for r in range(3)] == ["truth", "model A", "model B"]
    assert [a.axison for a in panels[4:8]] == [True, True, False, False]
    assert len(fig.axes) == 12 + 1
    with pytest.raises(InputError):
        P.plot_field_grids({})
    with pytest.raises(InputError):
        P.plot_field_grids([truth, model])
    with pytest.raises(InputError):
        P.plot_field_grids({"truth": truth, "empty": np.zeros((0, 8, 8))})


# --- curves --------------------------------------------------------------------------------------
def test_plot_power_spectra_means_band_and_guides(rng):
    k = np.linspace(0.0, 3.0, 31)  # k = 0 included: masked on the log axes, not an error
    truth = (1.0 + k) ** -3 * rng.exponential(size=(12, k.size))
    model = (1.0 + k) ** -2 * rng.exponential(size=(7, k.size))
    fig = P.plot_power_spectra(k, {"A": model, "B": (1.0 + k) ** -3}, truth=truth,
                               reference_slopes=[-3, -5 / 3])
    (ax,) = fig.axes
    assert ax.get_xscale() == ax.get_yscale() == "log"
    lines = ax.get_lines()
    assert len(lines) == 1 + 2 + 2
    assert [ln.get_label() for ln in lines[:3]] == ["truth", "A", "B"]
    np.testing.assert_allclose(lines[0].get_ydata(), truth.mean(0))
    np.testing.assert_allclose(lines[1].get_ydata(), model.mean(0))  # a model is drawn as its mean
    (band,) = _bands(ax)  # only the truth has a band
    lo, hi = _band_limits(band)
    assert hi == pytest.approx((truth.mean(0) + truth.std(0, ddof=1)).max(), rel=1e-9)
    assert lo > 0  # clipped positive on the log axis
    for line, s in zip(lines[3:], (-3, -5 / 3)):
        kk, yy = line.get_xdata(), line.get_ydata()
        slope = np.diff(np.log(yy)) / np.diff(np.log(kk))
        np.testing.assert_allclose(slope, s, rtol=1e-9)
        assert line.get_linestyle() == "--"
    assert "k" in ax.get_xlabel() and "P(k)" in ax.get_ylabel()
    assert ax.get_legend() is not None

    no_truth = P.plot_power_spectra(k[1:], {"A": model[:, 1:]}, loglog=False)
    assert _bands(no_truth.axes[0]) == [] and no_truth.axes[0].get_xscale() == "linear"


def test_plot_power_spectra_bad_shapes(rng):
    k = np.arange(1.0, 11.0)
    with pytest.raises(InputError, match="x axis has 10"):
        P.plot_power_spectra(k, {"A": np.ones(9)})
    with pytest.raises(InputError):
        P.plot_power_spectra(k, {"A": np.ones((2, 3, 10))})
    with pytest.raises(InputError):
        P.plot_power_spectra(k, {"A": np.ones(10)}, truth=np.ones((4, 11)))
    with pytest.raises(InputError):
        P.plot_power_spectra(k[:, None], {"A": np.ones(10)})
    with pytest.raises(InputError):
        P.plot_power_spectra(k, np.ones(10))  # not a mapping
    with pytest.raises(InputError):
        P.plot_power_spectra(k, {})
    with pytest.raises(InputError):
        P.plot_power_spectra(k, {"A": np.full(10, np.inf)})


def test_plot_power_spectra_into_given_axes():
    fig, (a1, a2) = plt.subplots(1, 2)
    k = np.arange(1.0, 6.0)
    assert P.plot_power_spectra(k, {"A": k ** -2}, ax=a2) is fig
    assert len(a2.get_lines()) == 1 and len(a1.get_lines()) == 0


def test_plot_pdfs_densities_and_truth_band(rng):
    truth = rng.standard_normal((10, 16, 16))
    model = rng.laplace(size=(5, 16, 16))
    fig = P.plot_pdfs({"model": model}, truth=truth, bins=40)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    t_line, m_line = ax.get_lines()
    lo = min(truth.min(), model.min())
    hi = max(truth.max(), model.max())
    edges = np.linspace(lo, hi, 41)
    expected, _ = np.histogram(model, bins=edges, density=True)
    np.testing.assert_allclose(m_line.get_ydata(), expected, rtol=1e-12)
    # fields of equal size: the mean of the per-field densities is the pooled density
    pooled, _ = np.histogram(truth, bins=edges, density=True)
    np.testing.assert_allclose(t_line.get_ydata(), pooled, rtol=1e-12, atol=1e-15)
    assert len(_bands(ax)) == 1
    assert t_line.get_linewidth() > m_line.get_linewidth()

    thick = P.plot_pdfs({"model": model}, truth=truth.ravel())  # 1-D truth: thick line, no band
    assert _bands(thick.axes[0]) == [] and len(thick.axes[0].get_lines()) == 2


def test_plot_pdfs_mass_outside_range_is_not_renormalised(rng):
    v = rng.standard_normal(20000)
    fig = P.plot_pdfs({"v": v}, bins=50, value_range=(0.0, 10.0), logy=False)
    line = fig.axes[0].get_lines()[0]
    width = 10.0 / 50
    assert np.sum(line.get_ydata()) * width == pytest.approx(np.mean(v >= 0), abs=1e-12)
    edges = np.array([-1.0, 0.0, 0.5, 1.0])
    y = P.plot_pdfs({"v": v}, bins=edges).axes[0].get_lines()[0].get_ydata()
    np.testing.assert_allclose(y, np.histogram(v, edges)[0] / (v.size * np.diff(edges)))


def test_plot_pdfs_bad_input(rng):
    with pytest.raises(InputError):
        P.plot_pdfs({"a": np.array([1.0, np.nan])})
    with pytest.raises(InputError):
        P.plot_pdfs({"a": np.array([])})
    with pytest.raises(ParameterError):
        P.plot_pdfs({"a": rng.standard_normal(10)}, bins=0)
    with pytest.raises(ParameterError):
        P.plot_pdfs({"a": rng.standard_normal(10)}, bins=[0.0, 1.0, 0.5])


class _MF(NamedTuple):  # the shape of phigen.stats' MinkowskiFunctionals
    thresholds: np.ndarray
    v0: np.ndarray
    v1: np.ndarray
    v2: np.ndarray


def test_plot_minkowski_three_panels(rng):
    nu = np.linspace(-2.5, 2.5, 21)
    gauss = (0.5 * (1 - np.tanh(nu)), np.exp(-nu ** 2 / 2), nu * np.exp(-nu ** 2 / 2))
    truth = _MF(nu, *(g + 0.05 * rng.standard_normal((8, nu.size)) for g in gauss))
    model2d = tuple(g + 0.1 * rng.standard_normal((4, nu.size)) for g in gauss)
    fig = P.plot_minkowski(nu, {"2d": model2d, "1d": gauss}, truth=truth, gaussian=gauss)
    assert len(fig.axes) == 3
    for j, ax in enumerate(fig.axes):
        assert len(ax.get_lines()) == 1 + 2 + 1  # truth, two models, Gaussian closed form
        assert len(_bands(ax)) == 2  # truth and the 2-D model
        assert f"V_{j}" in ax.get_ylabel() and "nu" in ax.get_xlabel()
        np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), truth[1 + j].mean(0))
        assert ax.get_lines()[-1].get_linestyle() == "--"
    assert fig.axes[0].get_legend() is not None

    with pytest.raises(InputError):
        P.plot_minkowski(nu, {"bad": gauss[:2]})
    with pytest.raises(InputError):
        P.plot_minkowski(nu, {"bad": (gauss[0], gauss[1], gauss[2][:-1])})
    with pytest.raises(InputError):
        P.plot_minkowski(nu, {"m": gauss}, gaussian=model2d)
    with pytest.raises(ParameterError):
        P.plot_minkowski(nu, {"m": gauss}, ax=plt.subplots(1, 2)[1])


def test_plot_bispectrum_and_structure_functions(rng):
    k = np.linspace(0.2, 2.0, 12)
    fig = P.plot_bispectrum(k, {"A": 0.1 * rng.standard_normal((5, 12))}, truth=rng.standard_normal((9, 12)))
    (ax,) = fig.axes
    assert len(ax.get_lines()) == 3  # truth, A, the Q = 0 line
    assert len(_bands(ax)) == 1 and "Q(k)" in ax.get_ylabel()
    with pytest.raises(InputError):
        P.plot_bispectrum(k, {"A": np.ones(11)})

    r = np.arange(1.0, 17.0)
    fig = P.plot_structure_functions(r, {"A": r ** 0.7}, truth=r ** 2 / 3 * rng.uniform(0.5, 1.5, (6, 16)),
                                     ylabel=r"$S_2(r)$")
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_ylabel() == r"$S_2(r)$"
    assert len(ax.get_lines()) == 2 and len(_bands(ax)) == 1
    with pytest.raises(TypeError):
        P.plot_structure_functions(r, {"A": r})  # ylabel is required
    with pytest.raises(InputError):
        P.plot_structure_functions(r[:, None], {"A": r}, ylabel="S")


def test_plot_series_shared_and_own_x_errors_and_bands(rng):
    kappa = np.linspace(0.26, 0.28, 9)
    u4 = {f"L={n}": 0.6 + 0.01 * n * (kappa - 0.27) for n in (8, 16)}
    fig = P.plot_series(kappa, u4, errors={"L=8": np.full(9, 0.01)}, xlabel=r"$\kappa$", ylabel=r"$U_4$",
                        marker="o")
    (ax,) = fig.axes
    assert len(ax.containers) == 1  # error bars on L=8 only
    assert len(ax.get_lines()) >= 2 and _bands(ax) == []
    assert sorted(ax.get_legend_handles_labels()[1]) == ["L=16", "L=8"]

    loss = {"a": rng.uniform(1, 2, (3, 50)), "b": np.linspace(2, 1, 20)}
    fig = P.plot_series({"a": np.arange(50), "b": np.arange(20)}, loss, xlabel="step", ylabel="loss",
                        logy=True)
    (ax,) = fig.axes
    assert [len(ln.get_xdata()) for ln in ax.get_lines()] == [50, 20]
    assert len(_bands(ax)) == 1 and ax.get_yscale() == "log"

    with pytest.raises(InputError):
        P.plot_series(kappa, u4, errors={"L=32": np.ones(9)}, xlabel="k", ylabel="u")
    with pytest.raises(InputError):
        P.plot_series({"L=8": kappa}, u4, xlabel="k", ylabel="u")
    with pytest.raises(InputError):
        P.plot_series(kappa, u4, errors={"L=8": np.ones((2, 9))}, xlabel="k", ylabel="u")
    with pytest.raises(InputError):
        P.plot_series(kappa[:-1], u4, xlabel="k", ylabel="u")


# --- saving --------------------------------------------------------------------------------------
def test_save_figure_writes_readable_png_and_closes(tmp_path, rng):
    k = np.arange(1.0, 20.0)
    figs = [P.plot_power_spectra(k, {"A": k ** -2}, truth=k ** -2 * rng.exponential(size=(5, 19)))
            for _ in range(2)]
    w_in, h_in = figs[0].get_size_inches()
    p120 = P.save_figure(figs[0], tmp_path / "a" / "b" / "spectra.png")
    p60 = P.save_figure(figs[1], tmp_path / "low", dpi=60)  # no suffix: PNG added
    assert p120.is_file() and p120.stat().st_size > 1000 and p60.suffix == ".png"
    img, low = mpimg.imread(p120), mpimg.imread(p60)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    # tight bbox trims the margins only: size close to figsize * dpi, and it scales with dpi
    assert 0.75 * h_in * 120 < img.shape[0] <= h_in * 120 + 30
    assert 0.75 * w_in * 120 < img.shape[1] <= w_in * 120 + 30
    assert abs(img.shape[0] - 2 * low.shape[0]) <= 3 and abs(img.shape[1] - 2 * low.shape[1]) <= 3
    assert img[..., :3].min() < 0.2 and img[..., :3].std() > 0.05  # something dark was drawn
    assert not any(plt.fignum_exists(f.number) for f in figs)

    fig = P.plot_fields(rng.standard_normal((3, 8, 8)))
    with pytest.raises(ParameterError):
        P.save_figure(fig, tmp_path / "x.jpg")
    assert P.save_figure(fig, tmp_path / "f.pdf").stat().st_size > 0


_HEADLESS_SCRIPT = """
import numpy as np, matplotlib
from phigen import plot as P
p = P.save_figure(P.plot_power_spectra(np.arange(1.0, 9.0), {"A": np.arange(1.0, 9.0) ** -2}), PATH)
import matplotlib.image as mpimg
print(matplotlib.get_backend().lower(), mpimg.imread(p).shape[0] > 50)
"""


@pytest.mark.parametrize("user_backend", [None, "svg"])
def test_backend_choice_headless_and_user_respected(tmp_path, user_backend):
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY")}
    if user_backend:
        env["MPLBACKEND"] = user_backend
    out = subprocess.run([sys.executable, "-c", _HEADLESS_SCRIPT.replace("PATH", repr(str(tmp_path / "f.png")))],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    backend, ok = out.stdout.split()
    assert backend == (user_backend or "agg") and ok == "True"
