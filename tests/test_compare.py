"""``phigen compare``: every report file with finite numbers; the floor beats a bad model; CLI."""

import json
import math

import jax
import numpy as np
import pytest

from phigen.cli import main
from phigen.compare import compare_models
from phigen.errors import ParameterError
from phigen.io import open_fields, write_fields
from phigen.models import MODELS, register_model

L = 16


class _WhiteNoise:
    """Test double: white noise with the training set's mean and variance (a deliberately bad model)."""

    def __init__(self, mean, std, shape):
        self.mean, self.std, self.field_shape, self.training = mean, std, tuple(shape), {}

    n_params = 2

    @classmethod
    def fit(cls, fields, *, key=None, progress=None):
        x = np.asarray(fields)
        return cls(float(x.mean()), float(x.std()), x.shape[1:])

    def sample(self, n, *, key):
        return self.mean + self.std * jax.random.normal(key, (int(n), *self.field_shape))

    def save(self, path):
        pass  # nothing worth keeping


class _CopyTraining:
    """Test double: returns its training fields, shifted, rotated and sign-flipped (a memoriser)."""

    n_params = 0

    def __init__(self, fields):
        self.fields, self.field_shape, self.training = np.asarray(fields), fields.shape[1:], {}

    @classmethod
    def fit(cls, fields, *, key=None, progress=None):
        return cls(np.asarray(fields))

    def sample(self, n, *, key):
        seed = int(jax.random.randint(key, (), 0, 2 ** 30))
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(self.fields), int(n))
        out = [np.roll(np.rot90(self.fields[i], rng.integers(4)), tuple(rng.integers(0, L, 2)), axis=(0, 1))
               * rng.choice([-1.0, 1.0]) for i in idx]
        return np.stack(out).astype(np.float32)

    def save(self, path):
        pass


@pytest.fixture(scope="module", autouse=True)
def _test_models():
    register_model("test-white-noise")(_WhiteNoise)
    register_model("test-copy")(_CopyTraining)
    yield
    MODELS.pop("test-white-noise", None)
    MODELS.pop("test-copy", None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """48 skewed fields of 16²: x = g + ½(g² − 1), g Gaussian with P(k) ∝ k^-1.5 (non-Gaussian, so
    the bispectrum and Minkowski functionals can tell a Gaussian or white-noise model apart)."""
    rng = np.random.default_rng(0)
    k2 = np.fft.fftfreq(L)[:, None] ** 2 + np.fft.fftfreq(L)[None, :] ** 2
    amp = np.where(k2 > 0, k2, 1.0) ** -0.75
    amp[0, 0] = 0.0
    g = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(48, L, L))) * amp))
    g /= g.std()
    path = tmp_path_factory.mktemp("data") / "skewed.h5"
    write_fields(path, (g + 0.5 * (g ** 2 - 1)).astype(np.float32), field="custom", generator="test")
    return path


def _numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


@pytest.fixture(scope="module")
def report(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    metrics = compare_models(data, models=("gaussian", "test-white-noise", "test-copy"), out_dir=out, seed=0)
    return out, metrics


def test_compare_writes_every_file_with_finite_numbers(report):
    out, metrics = report
    for name in ("report.md", "report.html", "metrics.json"):
        assert (out / name).stat().st_size > 0
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert {"fields.png", "power_spectrum.png", "pdf.png", "minkowski.png", "bispectrum.png"} <= set(pngs)
    on_disk = json.loads((out / "metrics.json").read_text())  # strict JSON: no NaN/inf
    values = list(_numbers(on_disk))
    assert values and all(math.isfinite(v) for v in values)
    assert on_disk["data"]["n_held_out"] == 24 and on_disk["data"]["n_train"] == 24
    for kind in ("gaussian", "test-white-noise", "test-copy"):
        with open_fields(out / "samples" / f"{kind}.h5") as ds:
            assert len(ds) == 24 and ds.sample_shape == (L, L)
            assert ds.config["model_kind"] == kind
        m = on_disk["models"][kind]
        assert m["sample_seconds_per_field"] > 0 and m["fit_seconds"] >= 0
    assert (out / "models" / "gaussian.h5").exists()
    # the figures and the table appear in both reports
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    for fig in metrics["figures"].values():
        assert f"]({fig})" in md and f"src='{fig}'" in page and (out / fig).exists()
    assert "truth vs truth (floor)" in md and "truth vs truth (floor)" in page
    assert md.count("\n| test-white-noise |") == 2  # main table and memorisation table


def test_floor_below_bad_model_on_every_distance(report):
    _, metrics = report
    bad = metrics["models"]["test-white-noise"]["distances"]
    n = 0
    for stat, block in bad.items():
        for dname, d in block.items():
            # several floor spreads above the floor; the floor's own spread is over 3 splits
            assert d["model"] > d["floor"] + 3 * d["floor_std"], (stat, dname, d)
            n += 1
    assert n >= 7
    # the Gaussian model has the right spectrum: within the floor's spread there
    ps = metrics["models"]["gaussian"]["distances"]["power_spectrum"]["chi2"]
    assert ps["model"] < ps["floor"] + 3 * ps["floor_std"] + 3.0


def test_memorisation_flag_in_the_report(report):
    out, metrics = report
    assert metrics["models"]["test-copy"]["memorisation"]["memorised"]
    assert not metrics["models"]["gaussian"]["memorisation"]["memorised"]
    assert not metrics["models"]["test-white-noise"]["memorisation"]["memorised"]
    assert "| test-copy |" in (out / "report.md").read_text() and "MEMORISED" in (out / "report.md").read_text()


def test_compare_cli_loads_model_file_and_reports(report, data, tmp_path, capsys):
    out, metrics = report
    model_file = out / "models" / "gaussian.h5"
    rc = main(["compare", str(data), "--models", "gaussian", "-o", str(tmp_path / "r"), "--model-file",
               f"gaussian={model_file}", "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "truth vs truth (floor)" in printed and str(tmp_path / "r" / "report.md") in printed
    again = json.loads((tmp_path / "r" / "metrics.json").read_text())
    # same split, same model, same sample seed: the same distances as the fitted run
    assert again["models"]["gaussian"]["distances"] == json.loads(
        (out / "metrics.json").read_text())["models"]["gaussian"]["distances"]
    # bad usage is one error line, exit 1
    rc = main(["compare", str(data), "--models", "gaussian", "-o", str(tmp_path / "x"), "--set-model", "nodot=1"])
    assert rc == 1 and "KIND.KEY=VALUE" in capsys.readouterr().err
    rc = main(["compare", str(data), "--models", "gaussian", "-o", str(tmp_path / "x"), "--set-model",
               "diffusion.steps=3"])
    assert rc == 1 and "diffusion" in capsys.readouterr().err


def test_compare_rejects_bad_arguments(data, tmp_path):
    with pytest.raises(ParameterError):
        compare_models(data, models=(), out_dir=tmp_path)
    with pytest.raises(ParameterError):
        compare_models(data, models=("gaussian", "gaussian"), out_dir=tmp_path)
    with pytest.raises(ParameterError):
        compare_models(data, models=("gaussian",), out_dir=tmp_path, fit_options={"diffusion": {"steps": 1}})
    with pytest.raises(ParameterError):
        compare_models(data, models=("no-such-model",), out_dir=tmp_path)


def test_field_statistics_closed_forms(tmp_path):
    """U₄ = 0 for a Gaussian magnetisation; flatness = 3 for Gaussian increments; columns in the table."""
    from phigen.compare import field_statistics

    # U₄ is a ratio of fourth moments: a few hundred fields before its jackknife error is honest
    x = np.random.default_rng(5).normal(size=(512, 8, 8)).astype(np.float32)
    phi4 = field_statistics(x, "phi4", {"kappa": 0.25, "lam": 0.02})
    assert abs(phi4["U4"]["value"]) < 4 * phi4["U4"]["error"]
    assert abs(phi4["chi"]["value"] - (1 - 2 / np.pi)) < 4 * phi4["chi"]["error"]  # V·var|m| for m ~ N(0, 1/V)
    # per-field ratio S₄/S₂² is biased low by O(1/pixels): 32² fields keep that below the error bar
    turb = field_statistics(np.random.default_rng(7).normal(size=(32, 32, 32)), "turbulence", {})["flatness_r1"]
    assert turb["r"] == 1.0 and abs(turb["value"] - 3.0) < 4 * turb["error"]
    assert field_statistics(x, "custom", {}) == {}
    x = np.random.default_rng(6).normal(size=(32, L, L)).astype(np.float32)
    write_fields(tmp_path / "phi4.h5", x, field="phi4", params={"kappa": 0.25, "lam": 0.02})
    metrics = compare_models(tmp_path / "phi4.h5", models=("gaussian",), out_dir=tmp_path / "r")
    assert set(metrics["models"]["gaussian"]["field_statistics"]) == {"U4", "chi"}
    assert "| U₄ | χ |" in (tmp_path / "r" / "report.md").read_text()
