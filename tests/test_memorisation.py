"""Memorisation check: exact nearest-neighbour distances modulo symmetries, copies flagged, fresh truth not."""

import numpy as np
import pytest

from phigen.errors import InputError, ParameterError
from phigen.stats.memorisation import memorisation_check, nearest_neighbour_distances

L = 16


def _fields(rng, n, size=L):
    k2 = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None, :] ** 2
    amp = np.where(k2 > 0, k2, 1.0) ** -0.75
    amp[0, 0] = 0.0
    x = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(n, size, size))) * amp))
    return (x / x.std()).astype(np.float32)


def _transformed_copies(train, rng):
    """Each training field under a random shift, rotation/reflection and sign: what a memorising
    model that learnt the symmetries would output."""
    out = []
    for x in train:
        y = np.rot90(x, rng.integers(4))
        if rng.integers(2):
            y = y.T
        y = np.roll(y, tuple(rng.integers(0, L, 2)), axis=(0, 1))
        out.append(y * rng.choice([-1.0, 1.0]))
    return np.stack(out).astype(np.float32)


def _brute_force(a, b):
    best = np.inf
    for y in b:
        for g in range(8):
            yy = np.rot90(y, g % 4)
            yy = yy.T if g >= 4 else yy
            for dx in range(L):
                for dy in range(L):
                    z = np.roll(yy, (dx, dy), axis=(0, 1))
                    for s in (1.0, -1.0):
                        best = min(best, np.sum((a - s * z) ** 2) / (np.sum(a ** 2) + np.sum(y ** 2)))
    return np.sqrt(best)


def test_distances_match_brute_force_over_the_group():
    rng = np.random.default_rng(1)
    ref, a = _fields(rng, 5), _fields(rng, 3)
    nn = nearest_neighbour_distances(a, ref)
    expected = np.array([_brute_force(x, ref) for x in a], dtype=np.float64)
    np.testing.assert_allclose(nn.distance, expected, rtol=1e-4)
    # without symmetries: plain normalised L2 distance to the nearest field
    plain = nearest_neighbour_distances(a, ref, symmetries=())
    direct = np.sqrt(np.min((np.sum((a[:, None] - ref[None]) ** 2, axis=(-2, -1)))
                            / (np.sum(a ** 2, axis=(-2, -1))[:, None] + np.sum(ref ** 2, axis=(-2, -1))[None]),
                            axis=1))
    np.testing.assert_allclose(plain.distance, direct, rtol=1e-4)
    assert np.all(plain.distance >= nn.distance - 1e-6)


def test_transformed_copies_found_exactly_and_blocks_agree(monkeypatch):
    rng = np.random.default_rng(2)
    train = _fields(rng, 40)
    copies = _transformed_copies(train, rng)
    nn = nearest_neighbour_distances(copies, train)
    assert nn.distance.max() < 2e-3  # float32 cancellation in ‖a‖² + ‖b‖² − 2⟨a, Tb⟩
    np.testing.assert_array_equal(nn.index, np.arange(40))
    # tiny blocks (many jitted calls, padding on both sides) give the same answer
    import phigen.stats.memorisation as M

    monkeypatch.setattr(M, "_BLOCK_ELEMENTS", 8 * L * L * 3 * 2)
    fresh = _fields(rng, 7)
    small = nearest_neighbour_distances(fresh, train)
    monkeypatch.undo()
    big = nearest_neighbour_distances(fresh, train)
    np.testing.assert_allclose(small.distance, big.distance, rtol=1e-5)
    np.testing.assert_array_equal(small.index, big.index)
    # copies not modulo sign are not found without the sign symmetry, found with it
    flipped = -train[:4]
    assert nearest_neighbour_distances(flipped, train, symmetries=("shifts", "dihedral")).distance.min() > 0.1
    assert nearest_neighbour_distances(flipped, train).distance.max() < 2e-3


def test_memorisation_flags_copies_not_fresh_truth():
    rng = np.random.default_rng(3)
    train, held_out, fresh = _fields(rng, 48), _fields(rng, 32), _fields(rng, 32)
    copies = _transformed_copies(train[:32], rng)
    bad = memorisation_check(copies, train, held_out)
    good = memorisation_check(fresh, train, held_out)
    assert bad["memorised"] and bad["fraction_below"] == 1.0
    assert bad["samples_to_train"]["max"] < 2e-3 < good["samples_to_train"]["min"]
    assert not good["memorised"]
    assert good["fraction_below"] <= good["expected_fraction"] + 4 * good["fraction_std"]
    # fresh truth is exchangeable with the held-out set: similar median distances
    assert 0.8 < good["median_ratio"] < 1.25
    # a partial memoriser (half copies) is flagged too
    half = np.concatenate([copies[:16], fresh[:16]])
    assert memorisation_check(half, train, held_out)["memorised"]


def test_memorisation_errors():
    rng = np.random.default_rng(4)
    a = _fields(rng, 3)
    with pytest.raises(ParameterError):
        nearest_neighbour_distances(a, a, symmetries=("time-reversal",))
    with pytest.raises(InputError):
        nearest_neighbour_distances(a, _fields(rng, 3, size=8))
    with pytest.raises(ParameterError):
        memorisation_check(a, a, a, quantile=1.5)
    # precomputed distances must belong to the sets given, and give the check computed from scratch
    b = _fields(rng, 4)
    with pytest.raises(InputError, match="held_out_to_train has 3 distances for 4 fields"):
        memorisation_check(a, a, b, held_out_to_train=nearest_neighbour_distances(a, a))
    given = memorisation_check(a, b, a, held_out_to_train=nearest_neighbour_distances(a, b),
                               samples_to_train=nearest_neighbour_distances(a, b))
    assert given == memorisation_check(a, b, a)
