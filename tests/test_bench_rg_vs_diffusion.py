"""benchmarks/rg_vs_diffusion.py helpers that do not need a model run: ``--save-samples`` files."""

import numpy as np

from phigen.io import open_fields


def test_save_samples_writes_a_phigen_file_per_row(tmp_path, load_script):
    bench = load_script("benchmarks/rg_vs_diffusion.py")
    x = np.random.default_rng(0).standard_normal((5, 8, 8)).astype(np.float32)
    bench._save_samples(tmp_path / "out", "data/turbulence_64.h5", "scattering-canonical nfe=64", x,
                        "turbulence", {"nu": 1e-3})
    (f,) = sorted((tmp_path / "out").glob("*.h5"))
    assert f.name == "turbulence_64__scattering-canonical_nfe=64.h5"
    with open_fields(f) as ds:
        np.testing.assert_array_equal(np.asarray(ds[:]), x)
        assert ds.field == "turbulence" and ds.group_kind == "field" and len(np.unique(ds.groups)) == 5
        assert dict(ds.params) == {"nu": 1e-3}
    # a second run of the same row replaces the file rather than failing on it
    bench._save_samples(tmp_path / "out", "data/turbulence_64.h5", "scattering-canonical nfe=64", x[:2],
                        "turbulence", {"nu": 1e-3})
    with open_fields(f) as ds:
        assert len(ds) == 2
