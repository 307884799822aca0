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


# --- verdict figures: ±2 s.e. bands, residual panels, correlations, null distributions ----------
def _band_at(band, x):
    """(lower, upper) of a fill_between band at each x (vertices grouped by their x value)."""
    v = np.concatenate([p.vertices for p in band.get_paths()])
    lo, hi = [], []
    for xi in x:
        y = v[np.isclose(v[:, 0], xi, rtol=1e-12, atol=0), 1]
        lo.append(y.min())
        hi.append(y.max())
    return np.array(lo), np.array(hi)


def _line(ax, label):
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return line


def _spectra(rng, n, k, bias=1.0, rel=0.1):
    return bias * k ** -3 * (1.0 + rel * rng.standard_normal((n, k.size)))


def test_sem_band_is_two_standard_errors_and_ratio_panel_flags_a_5_percent_bias(rng):
    k = np.linspace(0.1, 3.0, 30)
    truth = _spectra(rng, 200, k)
    biased, fair = _spectra(rng, 200, k, bias=1.05), _spectra(rng, 200, k)
    fig = P.plot_power_spectra(k, {"biased": biased, "fair": fair}, truth=truth, band="sem", residuals="ratio")
    main, res = fig.axes
    assert main.get_shared_x_axes().joined(main, res) and res.get_xscale() == "log"
    assert main.get_xlabel() == "" and "k" in res.get_xlabel()
    assert "ratio" in res.get_ylabel() and "2 s.e." in res.get_ylabel()
    # main panel: a ±2 s.e. band around the truth's mean, said so in the legend
    (band,) = _bands(main)
    lo, hi = _band_at(band, k)
    mean, se = truth.mean(0), truth.std(0, ddof=1) / np.sqrt(200)
    np.testing.assert_allclose(hi - mean, 2 * se, rtol=1e-9)
    np.testing.assert_allclose(mean - lo, 2 * se, rtol=1e-9)
    assert any("±2 s.e." in t.get_text() and "N=200" in t.get_text() for t in main.get_legend().get_texts())
    np.testing.assert_allclose(_line(main, "biased").get_ydata(), biased.mean(0))  # models as means
    assert _line(main, "biased").get_linewidth() < _line(main, "truth").get_linewidth()
    # residual panel: the truth's relative band around 1; the biased model outside it everywhere
    (rband,) = _bands(res)
    rlo, rhi = _band_at(rband, k)
    np.testing.assert_allclose(rhi - 1, 2 * se / mean, rtol=1e-9)
    r_biased = _line(res, "biased").get_ydata()
    np.testing.assert_allclose(r_biased, biased.mean(0) / mean)
    assert np.all(r_biased > rhi)
    r_fair = _line(res, "fair").get_ydata()
    assert np.mean((r_fair > rlo) & (r_fair < rhi)) > 0.6  # a fair model mostly inside
    lo_y, hi_y = res.get_ylim()
    assert lo_y < 1 < 1.05 < hi_y  # the bias is on scale


def test_ratio_panel_merges_bins_and_keeps_far_models_readable(rng):
    k = np.linspace(0.1, 3.0, 40)
    truth = _spectra(rng, 50, k, rel=0.3)
    small, far = _spectra(rng, 50, k, bias=1.03, rel=0.3), _spectra(rng, 50, k, bias=3.0, rel=0.3)
    fig = P.plot_power_spectra(k, {"small": small, "far": far}, truth=truth, band="sem", residuals="ratio",
                               residual_bins=6, loglog=False)
    res = fig.axes[1]
    line = _line(res, "small")
    x = line.get_xdata()
    assert 2 <= x.size <= 6
    edges = np.linspace(k.min(), k.max(), 7)
    idx = np.clip(np.searchsorted(edges, k, side="right") - 1, 0, 5)
    groups = [np.flatnonzero(idx == g) for g in range(6) if np.any(idx == g)]
    t_bin = np.stack([truth[:, g].mean(1) for g in groups], 1)
    m_bin = np.stack([small[:, g].mean(1) for g in groups], 1)
    np.testing.assert_allclose(x, [k[g].mean() for g in groups])
    np.testing.assert_allclose(line.get_ydata(), m_bin.mean(0) / t_bin.mean(0))
    _, rhi = _band_at(_bands(res)[0], x)
    np.testing.assert_allclose(rhi - 1, 2 * t_bin.std(0, ddof=1) / np.sqrt(50) / t_bin.mean(0), rtol=1e-9)
    # the far model does not squash the axis: it is off scale and its range is written in the panel
    lo_y, hi_y = res.get_ylim()
    assert hi_y < 1.5 and lo_y > 0.5
    assert any("far off scale" in t.get_text() for t in res.texts)
    assert not any("small off scale" in t.get_text() for t in res.texts)


def test_z_score_panels_for_structure_functions_pdfs_and_minkowski(rng):
    r = np.arange(1.0, 11.0)
    truth = 3.0 + 0.2 * rng.standard_normal((40, 10))
    model = 3.1 + 0.4 * rng.standard_normal((10, 10))
    fig = P.plot_structure_functions(r, {"m": model}, truth=truth, ylabel="F", band="sem", residuals="z")
    main, res = fig.axes
    z = _line(res, "m").get_ydata()
    expected = (model.mean(0) - truth.mean(0)) / np.sqrt(model.var(0, ddof=1) / 10 + truth.var(0, ddof=1) / 40)
    np.testing.assert_allclose(z, expected, rtol=1e-12)
    levels = sorted(ln.get_ydata()[0] for ln in res.get_lines() if ln.get_linestyle() == "--")
    assert levels == [-2.0, 2.0] and "z-score" in res.get_ylabel()

    tf, mf = rng.standard_normal((20, 16, 16)), 1.3 * rng.standard_normal((20, 16, 16))
    fig = P.plot_pdfs({"wide": mf}, truth=tf, bins=20, band="sem", residuals="z")
    main, res = fig.axes
    assert main.get_yscale() == "log" and "z-score" in res.get_ylabel()
    zp = _line(res, "wide").get_ydata()
    assert np.nanmax(np.abs(zp)) > 4  # a 30 % wider PDF is far outside ±2 in the tails

    nu = np.linspace(-2, 2, 9)
    t3 = tuple(rng.standard_normal((30, 9)) for _ in range(3))
    m3 = tuple(0.5 + rng.standard_normal((30, 9)) for _ in range(3))
    fig = P.plot_minkowski(nu, {"m": m3}, truth=t3, band="sem", residuals="z")
    assert len(fig.axes) == 6
    for j in range(3):
        assert f"V_{j}" in fig.axes[j].get_ylabel() and "z-score" in fig.axes[3 + j].get_ylabel()
        assert len(_bands(fig.axes[j])) == 1  # the truth's band only: models drawn as means
        assert np.all(_line(fig.axes[3 + j], "m").get_ydata() > 0)


def test_residuals_need_a_truth_and_small_groups_have_no_band(rng):
    k = np.arange(1.0, 9.0)
    fig = P.plot_power_spectra(k, {"A": rng.uniform(1, 2, (5, 8))}, band="sem", residuals="ratio")
    (ax,) = fig.axes  # no truth: no residual panel; the model gets its own ±2 s.e. band
    assert len(_bands(ax)) == 1
    fig = P.plot_power_spectra(k, {"A": rng.uniform(1, 2, (5, 8))}, truth=rng.uniform(1, 2, (1, 8)),
                               band="sem", residuals="z")
    main, res = fig.axes
    assert _bands(main) == [] and np.isfinite(_line(res, "A").get_ydata()).all()
    fig2, (a1, a2) = plt.subplots(2, 1)
    assert P.plot_power_spectra(k, {"A": k}, truth=np.ones((3, 8)) * k, residuals="ratio", ax=(a1, a2)) is fig2
    with pytest.raises(ParameterError):
        P.plot_power_spectra(k, {"A": k}, truth=np.ones((3, 8)), residuals="ratio", ax=a1)
    with pytest.raises(ParameterError):
        P.plot_power_spectra(k, {"A": k}, band="2sigma")
    with pytest.raises(ParameterError):
        P.plot_bispectrum(k, {"A": k}, truth=np.ones((3, 8)), residuals="chi2")


def test_bispectrum_auto_residual_ratio_when_positive_else_z(rng):
    k = np.linspace(0.2, 2.0, 6)
    pos = 1.0 + 0.1 * rng.standard_normal((30, 6))
    fig = P.plot_bispectrum(k, {"A": 1.1 * pos}, truth=pos, band="sem", residuals="auto")
    assert "ratio" in fig.axes[1].get_ylabel()
    zero = 0.1 * rng.standard_normal((30, 6))
    fig = P.plot_bispectrum(k, {"A": zero + 0.5}, truth=zero, band="sem", residuals="auto")
    assert "z-score" in fig.axes[1].get_ylabel()


def test_spectrum_correlation_matrices_and_differences(rng):
    k = np.linspace(0.1, 2.0, 12)
    common = rng.standard_normal((60, 1))
    truth = 1.0 + 0.1 * rng.standard_normal((60, 12))
    model = 1.0 + 0.1 * (rng.standard_normal((60, 12)) + common)  # correlated across k
    fig = P.plot_spectrum_correlation(k, {"model": model}, truth=truth)
    panels = [a for a in fig.axes[:-1] if a.axison]  # the last Axes is the colourbar
    meshes = [c for a in panels for c in a.collections]
    assert len(meshes) == 3  # truth, model, model − truth
    ct, cm = np.corrcoef(truth.T), np.corrcoef(model.T)
    np.testing.assert_allclose(np.asarray(meshes[0].get_array()).reshape(12, 12), ct, atol=1e-12)
    np.testing.assert_allclose(np.asarray(meshes[1].get_array()).reshape(12, 12), cm, atol=1e-12)
    np.testing.assert_allclose(np.asarray(meshes[2].get_array()).reshape(12, 12), cm - ct, atol=1e-12)
    np.testing.assert_allclose(P.spectrum_correlation(model), cm)
    clims = {m.get_clim() for m in meshes}
    assert len(clims) == 1
    lo, hi = clims.pop()
    assert lo == -hi and hi >= 1.0
    titles = [a.get_title() for a in fig.axes]
    assert "truth (N=60)" in titles and "model − truth" in titles
    assert any("k" in a.get_xlabel() for a in fig.axes) and any("k" in a.get_ylabel() for a in fig.axes)
    one = P.plot_spectrum_correlation(k, {"m": model[:1]})  # N = 1: undefined, drawn blank
    assert "undefined" in one.axes[0].get_title()


def test_plot_null_distributions_p95_lines_and_far_models(rng):
    null = {"P(k) χ²": rng.chisquare(20, 300) / 20, "KS": rng.uniform(0.01, 0.2, 300)}
    models = {"good": {"P(k) χ²": 1.1, "KS": 0.05}, "bad": {"P(k) χ²": 400.0, "KS": 0.5},
              "partial": {"KS": float("nan")}}
    fig = P.plot_null_distributions(null, models, p95={"P(k) χ²": 1.6}, title="null")
    a1, a2 = fig.axes[:2]
    assert fig.get_suptitle() == "null"
    dashed = [ln for ln in a1.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_xdata()[0] == pytest.approx(1.6)
    (d2,) = [ln for ln in a2.get_lines() if ln.get_linestyle() == "--"]
    assert d2.get_xdata()[0] == pytest.approx(np.percentile(null["KS"], 95))  # default: from the null
    for ax, dname in ((a1, "P(k) χ²"), (a2, "KS")):
        for name in ("good", "bad"):
            v = models[name][dname]
            assert _line(ax, name).get_xdata()[0] == pytest.approx(v)
            assert ax.get_xlim()[0] < v < ax.get_xlim()[1]
            assert any(t.get_text() == f"{v:.3g}" for t in ax.texts)
        assert sum(bar.get_height() for bar in ax.patches) == null[dname].size  # the whole null, binned
    assert a1.get_xscale() == "log"  # 400 vs a null near 1
    assert a2.get_xscale() == "linear"  # 0.5 vs a null up to 0.2: extended range instead
    assert "partial" in a2.get_xlabel()  # a non-finite value is listed, not drawn
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"good", "bad", "null 95th percentile"} <= legend
    with pytest.raises(InputError):
        P.plot_null_distributions({}, models)
    with pytest.raises(InputError):
        P.plot_null_distributions(null, {"m": 1.0})


def test_write_figures_new_figures_and_bias_outside_band(tmp_path, monkeypatch, rng):
    from phigen import report

    figs = {}
    save = P.save_figure

    def keep(fig, path, **kw):
        figs[os.path.basename(os.path.splitext(str(path))[0])] = fig
        return save(fig, path, **kw)

    monkeypatch.setattr(P, "save_figure", keep)
    truth = rng.standard_normal((24, 32, 32)).astype(np.float32)
    paths = report.write_figures({"truth": truth, "model": 1.1 * truth[::-1], "one": truth[:1]}, tmp_path,
                                 truth="truth")
    assert "spectrum_correlation" in report.FIGURE_NAMES
    assert set(paths) == set(report.FIGURE_NAMES)
    assert all(os.path.isfile(p) and os.path.getsize(p) > 1000 for p in paths.values())
    assert len(figs["spectrum_correlation"].axes) == 2 * 3 + 1  # two rows of three panels, a colourbar
    for name in ("pdf", "flatness"):
        assert "z-score" in figs[name].axes[1].get_ylabel()
    assert len(figs["minkowski"].axes) == 6

    figs.clear()
    paths = report.write_figures({"a": truth, "b": truth[::-1]}, tmp_path / "none")  # shapes compiled above
    assert set(paths) == set(report.FIGURE_NAMES)
    assert len(figs["power_spectrum"].axes) == 1  # no truth: no residual panels

    # 96 fields of 64², P(k) 5 % high: above the truth's ±2 s.e. band at every k > 1 of the ratio panel
    figs.clear()
    truth = rng.standard_normal((96, 64, 64)).astype(np.float32)
    biased = np.sqrt(1.05) * rng.standard_normal((96, 64, 64)).astype(np.float32)
    report.write_figures({"truth": truth, "biased": biased}, tmp_path / "bias", truth="truth",
                         names=("power_spectrum",))
    main, res = figs["power_spectrum"].axes
    line = _line(res, "biased")
    _, rhi = _band_at(_bands(res)[0], line.get_xdata())
    high_k = line.get_xdata() > 1.0
    assert high_k.sum() >= 4 and np.all(line.get_ydata()[high_k] > rhi[high_k])
    assert res.get_ylim()[1] > 1.05
