"""``phigen compare``: every report file with finite numbers; the null flags a bad model; leak guard; CLI."""

import json
import math

import jax
import numpy as np
import pytest

from phigen.cli import main
from phigen.compare import compare_models, scattering_distance
from phigen.errors import InputError, ParameterError
from phigen.io import open_fields, write_fields
from phigen.models import read_model_file, write_model_file

L = 16


class _WhiteNoise:
    """Test double: white noise with the training set's mean and variance (a deliberately bad model)."""

    def __init__(self, mean, std, shape):
        self.mean, self.std, self.field_shape, self.training = mean, std, tuple(shape), {}

    n_params = 2

    @classmethod
    def fit(cls, fields, *, key, progress=None):
        x = np.asarray(fields)
        return cls(float(x.mean()), float(x.std()), x.shape[1:])

    def sample(self, n, *, key):
        return self.mean + self.std * jax.random.normal(key, (int(n), *self.field_shape))

    def save(self, path):
        return write_model_file(path, self.kind, config={"mean": self.mean, "std": self.std,
                                                         "shape": list(self.field_shape)})

    @classmethod
    def load(cls, path):
        c = read_model_file(path, cls.kind).config
        return cls(c["mean"], c["std"], c["shape"])


class _CopyTraining:
    """Test double: returns its training fields, shifted, rotated and sign-flipped (a memoriser)."""

    n_params = 0

    def __init__(self, fields):
        self.fields, self.field_shape, self.training = np.asarray(fields), fields.shape[1:], {}

    @classmethod
    def fit(cls, fields, *, key, progress=None):
        return cls(np.asarray(fields))

    def sample(self, n, *, key):
        seed = int(jax.random.randint(key, (), 0, 2 ** 30))
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(self.fields), int(n))
        out = [np.roll(np.rot90(self.fields[i], rng.integers(4)), tuple(rng.integers(0, L, 2)), axis=(0, 1))
               * rng.choice([-1.0, 1.0]) for i in idx]
        return np.stack(out).astype(np.float32)

    def save(self, path):
        return write_model_file(path, self.kind, config={}, arrays={"fields": self.fields})

    @classmethod
    def load(cls, path):
        return cls(read_model_file(path, cls.kind).arrays["fields"])


class _SignAware(_WhiteNoise):
    """Test double with a ``sign_symmetric`` fit option: records what it was given."""

    calls: list = []

    @classmethod
    def fit(cls, fields, *, key, progress=None, sign_symmetric: bool = False):
        cls.calls.append(sign_symmetric)
        return super().fit(fields, key=key)


@pytest.fixture(scope="module", autouse=True)
def _test_models(register_test_model):
    register_test_model("test-white-noise")(_WhiteNoise)
    register_test_model("test-copy")(_CopyTraining)
    register_test_model("test-sign-aware")(_SignAware)


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
    assert "null: truth vs truth (mean / 95th pct.)" in md and "null: truth vs truth (mean / 95th pct.)" in page
    # main table, memorisation table and one row per distance in the table of every distance
    n_dist = sum(len(b) for b in metrics["models"]["test-white-noise"]["distances"].values())
    assert md.count("\n| test-white-noise |") == 2 + n_dist
    assert "records no groups" in md   # a file without groups says so once
    # every column issue #8 asks for (no field statistics for a "custom" field)
    header = next(line for line in md.splitlines() if line.startswith("| model |"))
    for col in ("P(k) χ²", "P(k) log-RMS", "P(k) corr. RMS", "PDF W₁/σ", "bispectrum χ²", "Minkowski χ²",
                "scattering χ²", "off / distances", "parameters", "fit time (s)", "sampling (s/field)"):
        assert col in header and f"<th>{col}</th>" in page, col
    sc = on_disk["scattering_spectra"]
    assert sc["J"] == 2 and sc["L"] == 4 and sc["n_stats"] > 10  # 16² fields: J = log2(16) − 2
    assert set(on_disk["timings"]) == {"truth", "models", "figures", "total"}
    assert on_disk["timings"]["total"] >= sum(t["fit"] + t["sample"] for t in on_disk["timings"]["models"].values())


def test_null_flags_a_bad_model_on_every_distance(report):
    _, metrics = report
    bad = metrics["models"]["test-white-noise"]
    n = 0
    for stat, block in bad["distances"].items():
        for dname, d in block.items():
            null = metrics["null"]["distances"][stat][dname]["values"]
            assert len(null) == metrics["n_splits"] == 200
            assert np.isclose(d["null_p95"], np.quantile(null, 0.95)) and np.isclose(d["null_mean"], np.mean(null))
            if dname == "corr_rms":   # white noise and the data both have nearly uncorrelated P(k) bins
                continue
            # beyond every one of the null's 200 splits: p = 1/201
            assert d["model"] > max(null) and d["verdict"] == "off" and d["p_value"] == 1 / 201, (stat, dname, d)
            n += 1
    assert n >= 9 and "scattering_spectra" in bad["distances"]
    assert bad["verdict"]["n_off"] >= n and bad["verdict"]["n_distances"] == n + 1
    # the Gaussian model has the right spectrum: consistent with the null there ...
    g = metrics["models"]["gaussian"]["distances"]
    assert g["power_spectrum"]["log_rms"]["verdict"] == "consistent"
    # ... but not the skewness the scattering spectra and the bispectrum see
    assert g["scattering_spectra"]["chi2"]["verdict"] == "off" and g["bispectrum"]["chi2_B"]["verdict"] == "off"


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
    assert "null: truth vs truth" in printed and str(tmp_path / "r" / "report.md") in printed
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


def test_scattering_distance_is_the_registered_statistic(data):
    """scattering_distance is compare() on the registered scattering statistic: same numbers, and a
    fresh draw from the truth's own law is consistent with the null where white noise is far off."""
    from phigen.stats import compare

    with open_fields(data) as ds:
        x = ds[:]
    samples, truth = x[:16], x[16:]
    d = scattering_distance(samples, truth, seed=3, n_splits=50)
    ref = compare(samples, truth, statistics=("scattering_spectra",), seed=3, n_splits=50)["scattering_spectra"]
    assert d["distances"] == ref["distances"]
    c = d["distances"]["chi2"]
    assert d["J"] == 2 and len(d["truth"]["mean"]) == d["n_stats"]
    assert c["verdict"] == "consistent"   # same law
    noise = np.random.default_rng(1).normal(size=samples.shape).astype(np.float32) * samples.std()
    far = scattering_distance(noise, truth, seed=3, n_splits=50)["distances"]["chi2"]
    assert far["verdict"] == "off" and far["model"] > 10 * far["null_p95"]
    with pytest.raises(InputError):
        scattering_distance(samples[:, :8, :8], truth)


def test_sign_symmetric_passed_where_the_field_has_the_symmetry(tmp_path):
    """φ⁴ data: a model whose fit takes sign_symmetric gets True unless the caller set it; others are
    left alone; a field without the symmetry gets False. All recorded in metrics.json and the report."""
    x = np.random.default_rng(2).normal(size=(16, L, L)).astype(np.float32)
    write_fields(tmp_path / "phi4.h5", x, field="phi4", params={"kappa": 0.25, "lam": 0.02})
    write_fields(tmp_path / "custom.h5", x, field="custom")
    compare_models(tmp_path / "phi4.h5", models=("test-sign-aware", "gaussian"), out_dir=tmp_path / "a")
    on_disk = json.loads((tmp_path / "a" / "metrics.json").read_text())
    sym = on_disk["models"]["test-sign-aware"]
    assert sym["fit_options"] == {} and sym["fit_options_used"] == {"sign_symmetric": True}
    assert sym["symmetry_fit"]["sign_symmetric"] is True and sym["symmetry_fit"]["set_by"].startswith("compare")
    assert on_disk["models"]["gaussian"]["symmetry_fit"]["sign_symmetric"] is None
    assert "sign_symmetric=True (set by compare" in (tmp_path / "a" / "report.md").read_text()
    assert _SignAware.calls[-1] is True  # the model's fit really received it
    m = compare_models(tmp_path / "phi4.h5", models=("test-sign-aware",), out_dir=tmp_path / "b",
                       fit_options={"test-sign-aware": {"sign_symmetric": False}})
    assert m["models"]["test-sign-aware"]["symmetry_fit"] == {"sign_symmetric": False, "set_by": "fit options"}
    assert _SignAware.calls[-1] is False
    m = compare_models(tmp_path / "custom.h5", models=("test-sign-aware",), out_dir=tmp_path / "c")
    assert m["models"]["test-sign-aware"]["fit_options_used"] == {}
    assert m["models"]["test-sign-aware"]["symmetry_fit"]["sign_symmetric"] is False


def test_memorisation_needs_closeness_specific_to_the_training_set():
    """Samples closer to *every* data field than data fields are to each other (a smoother field of the
    same magnetisation: d² ≈ 1 − 2/(1.25 + 2) vs 1 − 2/4) pass the nearest-neighbour check's threshold
    but are not copies: the specificity is ≈ 0 and they are not flagged. Shifted training fields are."""
    from phigen.compare import memorisation, memorisation_reference

    rng = np.random.default_rng(4)

    def law(n, noise):
        sign = rng.choice([-1.0, 1.0], size=(n, 1, 1))
        return (sign + noise * rng.normal(size=(n, 8, 8))).astype(np.float32)

    train, held_out = law(32, 1.0), law(32, 1.0)
    sym = ("shifts", "dihedral", "sign")
    smooth = memorisation(law(32, 0.5), train, held_out, symmetries=sym)
    assert smooth["closer_than_truth"] and not smooth["memorised"]
    spec = smooth["specificity"]
    assert abs(spec["value"]) < 4 * spec["std"] and spec["fraction_below_held_out"] > 0.5
    copies = np.roll(train[rng.integers(0, 32, 32)], 3, axis=-1)
    copied = memorisation(copies, train, held_out, symmetries=sym)
    assert copied["memorised"] and copied["specificity"]["value"] > 0.9
    # the truth-only distances computed once (as compare_models does for all its models) change nothing
    ref = memorisation_reference(train, held_out, symmetries=sym)
    assert memorisation(copies, train, held_out, symmetries=sym, reference=ref) == copied
    assert memorisation(law(32, 0.5), train, held_out, symmetries=sym, reference=ref)["specificity"]["std"] > 0
    with pytest.raises(ParameterError, match="reference was computed for other sets"):
        memorisation(copies, train, held_out[:16], symmetries=sym, reference=ref)


def test_compare_refuses_a_model_that_saw_the_held_out_truth(data, tmp_path, capsys):
    """`phigen fit` with its default --test-fraction 0 trains on every field: compare --model-file
    refuses it with one line (exit 1, no report); fitted on compare's training split it is accepted."""
    leaky, clean = tmp_path / "leaky.h5", tmp_path / "clean.h5"
    assert main(["fit", "gaussian", str(data), "-o", str(leaky), "--quiet"]) == 0
    assert main(["fit", "gaussian", str(data), "-o", str(clean), "--test-fraction", "0.5", "--split-seed", "0",
                 "--quiet"]) == 0
    capsys.readouterr()
    rc = main(["compare", str(data), "--models", "gaussian", "-o", str(tmp_path / "r1"), "--model-file",
               f"gaussian={leaky}", "--quiet", "--n-splits", "20"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "trained on 24 of the 24 held-out fields" in err, err
    assert not (tmp_path / "r1" / "report.md").exists()
    rc = main(["compare", str(data), "--models", "gaussian", "-o", str(tmp_path / "r2"), "--model-file",
               f"gaussian={clean}", "--quiet", "--n-splits", "20"])
    assert rc == 0
    m = json.loads((tmp_path / "r2" / "metrics.json").read_text())
    assert m["models"]["gaussian"]["leak_check"]["n_overlap"] == 0 and m["n_splits"] == 20
    with pytest.raises(ParameterError):
        compare_models(data, models=("gaussian",), out_dir=tmp_path / "r3", n_splits=5)
