"""The field-kind spec (phigen.fields.kind): one declaration read by generate, the CLI, compare,
generalisation, groups and checks."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import phigen
from phigen import errors as E
from phigen.cli import build_parser, main
from phigen.fields.kind import (FieldKind, FieldOption, build_parameters, field_kind, field_kinds, kind_symmetries,
                                parse_grid, parse_range, register_field_kind)


def _build(size, seed, *, n, path, progress, batch_size, level=1.0, copies=3, _private=None):
    def make_batch(b, c):
        x = np.full((c, size, size), level, np.float32) + np.arange(c, dtype=np.float32)[:, None, None]
        return x, None, np.arange(b * batch_size, b * batch_size + c)

    return make_batch, {"level": float(level), "copies": int(copies)}, {"group_kind": "field"}, None


def test_builtin_kinds_declare_their_builders_parameters():
    kinds = field_kinds()
    assert {"gaussian", "phi4", "turbulence", "cosmic-web"} <= set(kinds)
    for name, spec in kinds.items():
        if name not in ("gaussian", "phi4", "turbulence", "cosmic-web"):
            continue
        # every physical parameter of the builder is a CLI option, and only those
        assert {o.name for o in spec.options} == build_parameters(spec.build), name
        assert spec.groups is not None, name
    assert kinds["phi4"].sign_symmetric and not kinds["turbulence"].sign_symmetric
    assert kind_symmetries("cosmic_web") == ("shifts", "dihedral")       # the underscore spelling is the same kind
    assert kind_symmetries("something-else") == ("shifts", "dihedral", "sign")  # unknown: the default
    assert field_kind("cosmic_web") is kinds["cosmic-web"]
    with pytest.raises(E.ParameterError, match="unknown field kind 'nope'.*phi4"):
        field_kind("nope", required=True)


def test_cli_generate_options_come_from_the_specs():
    sub = next(a for a in build_parser()._actions if getattr(a, "choices", None) and "generate" in a.choices)
    gen = sub.choices["generate"]
    flags = {opt for a in gen._actions for opt in a.option_strings}
    for spec in field_kinds().values():
        for opt in spec.options:
            assert opt.flag in flags, (spec.name, opt.flag)
    # --dt was missing before the options were derived; a bool option is a flag, a range parses LO:HI
    assert "--dt" in flags and "--snapshots-per-run" in flags
    assert parse_range("0.2:0.4", "r") == (0.2, 0.4) and parse_range((1, 2), "r") == (1.0, 2.0)
    for bad in ("0.4", "a:b", "0.5:0.1", 3):
        with pytest.raises(E.ParameterError, match="r"):
            parse_range(bad, "r")
    assert parse_grid("0.34", "g") == 0.34 and parse_grid(0.3, "g") == 0.3 and parse_grid([0.3], "g") == 0.3
    assert parse_grid("0.25:0.40:4", "g") == (0.25, 0.3, 0.35, 0.4) and parse_grid("0.1,0.2", "g") == (0.1, 0.2)
    for bad in ("0.2:0.3", "0.2:0.3:1", "x", []):
        with pytest.raises(E.ParameterError, match="g"):
            parse_grid(bad, "g")


def test_spec_is_validated():
    with pytest.raises(E.ParameterError, match="unknown symmetries"):
        FieldKind("k", _build, symmetries=("shifts", "rotation"))
    with pytest.raises(E.ParameterError, match="sign_symmetric"):
        FieldKind("k", _build, symmetries=("shifts",), sign_symmetric=True)
    with pytest.raises(E.ParameterError, match=r"options \['temperature'\] are not keyword parameters"):
        FieldKind("k", _build, options=(FieldOption("temperature"),))
    with pytest.raises(E.ParameterError, match="twice"):
        FieldKind("k", _build, options=(FieldOption("level"), FieldOption("level")))
    with pytest.raises(E.ParameterError, match="type"):
        FieldOption("x", type=list)
    with pytest.raises(E.ParameterError, match="FieldKind"):
        register_field_kind("k")
    # private builder keywords are not parameters
    assert build_parameters(_build) == {"level", "copies"}

    def clash(size, seed, *, n, path, progress, count=1):
        return None

    with pytest.raises(E.ParameterError, match=r"\['count'\] are taken by phigen generate"):
        FieldKind("k", clash, options=(FieldOption("count", int),))


def test_a_new_kind_is_one_registration(tmp_path, capsys):
    spec = register_field_kind(FieldKind(
        "test-plateau", _build, default_batch_size=4, help="constant fields",
        options=(FieldOption("level", float, "the constant"), FieldOption("copies", int, "unused")),
        groups=lambda n, bs, cfg: (np.arange(n, dtype=np.int64), "field", "each its own"),
        symmetries=("shifts",),
        statistics=lambda x, p: {"mean": {"value": float(np.mean(x)), "error": 0.0}},
        statistic_labels={"mean": "⟨φ⟩"}), replace=True)
    # a different builder under a taken name is refused; the same one again is not
    with pytest.raises(E.ParameterError, match="already registered"):
        register_field_kind(FieldKind("test-plateau", lambda size, seed, *, n, path, progress: None))
    assert register_field_kind(spec) is spec

    path = phigen.generate("test-plateau", tmp_path / "p.h5", size=8, n=6, level=2.5, progress=False)
    with phigen.open_fields(path) as ds:
        assert ds.field == "test-plateau" and ds.params["level"] == 2.5 and len(ds) == 6
        np.testing.assert_array_equal(ds[:][:, 0, 0], 2.5 + np.array([0, 1, 2, 3, 0, 1]))
    from phigen.compare import field_statistics
    from phigen.generators import generator_groups, reconstruct_groups

    assert field_statistics(np.ones((3, 8, 8)), "test-plateau", {})["mean"]["value"] == 1.0
    assert kind_symmetries("test-plateau") == ("shifts",)
    np.testing.assert_array_equal(reconstruct_groups(path)[0], np.arange(6))
    np.testing.assert_array_equal(generator_groups("test-plateau", 3, 4, {})[0], np.arange(3))
    # the CLI takes the new kind's options; another kind's option is refused by the generator
    assert main(["generate", "test-plateau", "--size", "8", "-n", "2", "-o", str(tmp_path / "q.h5"),
                 "--level", "-1", "--quiet"]) == 0
    assert main(["generate", "test-plateau", "--size", "8", "-n", "2", "-o", str(tmp_path / "r.h5"),
                 "--kappa", "0.3", "--quiet"]) == 1
    assert "test-plateau does not take kappa" in capsys.readouterr().err
    # a kind without physics checks says which kinds have some
    with pytest.raises(E.ParameterError, match="no physics checks for field kind 'test-plateau'.*turbulence"):
        phigen.check_file(path)


def test_compare_reads_sign_symmetry_from_the_spec():
    from phigen.compare import _symmetry_fit_options

    opts, rec = _symmetry_fit_options("wcrg", "phi4", {})
    assert opts["sign_symmetric"] is True and "have the φ → −φ symmetry" in rec["set_by"]
    opts, rec = _symmetry_fit_options("wcrg", "turbulence", {})
    assert "sign_symmetric" not in opts and rec["sign_symmetric"] is False
    assert inspect.signature(FieldKind).parameters["sign_symmetric"].default is False
