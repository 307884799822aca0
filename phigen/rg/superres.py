"""Super-resolution with the RG models: coarse-to-fine sampling that starts at given coarse fields.

The wavelet factorisation ``p(x) = p(x_J) Π_j p̄_j(x̄_j | x_j)`` makes super-resolution a truncation of
ordinary sampling: given the low-pass ``x_j`` of a field (its periodic orthogonal DWT approximation
after ``j`` levels, :func:`coarse_grain`), WC-RG and WSGM draw the details of levels ``j … 1`` from
their conditionals ``p̄(x̄_l | x_l)`` and reconstruct. The DWT is orthogonal, so the low-pass of every
output equals its input up to float rounding — exactly, not approximately (docs/rg.md,
"Super-resolution").

The input is the DWT approximation of the *model's* wavelet (``db4`` by default), in the field's own
units: ``x_j`` has ``2^j`` times the local mean of the field (the orthonormal filters' DC gain is √2 per
axis and level). :func:`coarse_grain` makes it from full-resolution fields; :func:`coarse_grain_file`
(``phigen coarse-grain``) from a phigen file, recording the level and wavelet so that
``phigen sample --from-coarse`` can check them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import errors as E
from .._validation import as_fields, check_int_at_least

__all__ = ["coarse_grain", "coarse_grain_file", "coarse_level", "read_coarse"]

COARSE_LEVELS_PARAM = "coarse_grained_levels"
COARSE_WAVELET_PARAM = "coarse_grained_wavelet"


def coarse_grain(fields, levels: int, *, wavelet: str = "db4") -> np.ndarray:
    """The DWT low-pass ``x_j`` ``(N, H/2^j, W/2^j)`` float32 of ``fields`` ``(N, H, W)`` after ``levels``
    = j periodic orthogonal DWT levels of ``wavelet``: what super-resolution starts from."""
    from ..wavelets.dwt import dwt_level

    x = as_fields(fields, name="fields")
    j = check_int_at_least(levels, "levels", 1)
    h, w = x.shape[-2:]
    if h % 2**j or w % 2**j:
        raise E.ParameterError(f"{j} DWT levels need sides divisible by 2^{j} = {2**j}; got {h}×{w}")
    out = []
    for start in range(0, len(x), 256):  # bounded memory for large files
        a = x[start:start + 256]
        for _ in range(j):
            a, _ = dwt_level(a, wavelet)
        out.append(np.asarray(a, np.float32))
    return np.concatenate(out)


def coarse_level(coarse_shape, shape, J: int, *, kind: str) -> int:
    """The level j with ``shape = coarse_shape·2^j`` (1 ≤ j ≤ J): where sampling of a model with J levels
    starts when it is given coarse fields of ``coarse_shape``; a ParameterError naming the sizes it accepts."""
    (h, w), (H, W) = (int(s) for s in coarse_shape), (int(s) for s in shape)
    ok = [(H // 2**j, W // 2**j) for j in range(1, J + 1) if H % 2**j == 0 and W % 2**j == 0]
    for j in range(1, J + 1):
        if (h * 2**j, w * 2**j) == (H, W):
            return j
    sizes = ", ".join(f"{a}×{b}" for a, b in ok)
    raise E.ParameterError(f"{kind} draws {H}×{W} fields from coarse fields of one of its {J} levels ({sizes}); "
                           f"got {h}×{w} (pass shape= for another output size)")


def read_coarse(source, *, wavelet: str | None = None) -> tuple[np.ndarray, dict]:
    """``(coarse fields (N, h, w) float32, record)`` from a phigen file path or an array. A file written by
    :func:`coarse_grain_file` records its wavelet; a different ``wavelet`` (the model's) is refused, since
    the model's conditionals would then see a low-pass they were not fitted on."""
    from ..io import open_fields

    if isinstance(source, (str, Path)):
        with open_fields(source) as ds:
            x = ds.load()
            params = dict(ds.params or {})
            groups = None if ds.groups is None else np.asarray(ds.groups)
            group_kind = ds.group_kind
        have = params.get(COARSE_WAVELET_PARAM)
        if wavelet is not None and have is not None and have != wavelet:
            raise E.InputError(f"these coarse fields are the {have} low-pass, the model's wavelet is {wavelet}; "
                               f"coarse-grain with --wavelet {wavelet}", path=source)
        record = {"from_coarse": str(source), "coarse_levels": params.get(COARSE_LEVELS_PARAM), "groups": groups,
                  "group_kind": group_kind, "params": params}
    else:
        x, record = source, {"from_coarse": "array", "groups": None, "params": {}}
    return np.asarray(as_fields(x, name="coarse fields"), np.float32), record  # refuses NaN/inf


def coarse_grain_file(data, out, levels: int, *, wavelet: str = "db4", overwrite: bool = False,
                      progress: bool | None = None) -> Path:
    """Write the low-pass :func:`coarse_grain` of every field of the phigen file ``data`` to ``out``, with
    its groups, conditions and parameters, plus the level and wavelet (``phigen coarse-grain``)."""
    from ..io import open_fields, write_fields
    from .._progress import say

    with open_fields(data) as ds:
        x = ds.load()
        params = {**dict(ds.params or {}), COARSE_LEVELS_PARAM: int(levels), COARSE_WAVELET_PARAM: str(wavelet)}
        names = list(ds.condition_names or []) or None
        cond = np.asarray(ds.conditions()) if names else None
        groups, gkind, field = ds.groups, ds.group_kind, ds.field
    a = coarse_grain(x, levels, wavelet=wavelet)
    if "pixel_size" in params:  # the coarse pixels are 2^j field pixels wide
        params["pixel_size"] = float(params["pixel_size"]) * 2 ** int(levels)
    say(progress, f"coarse-grain: {len(a)} fields {x.shape[-2]}×{x.shape[-1]} → {a.shape[-2]}×{a.shape[-1]} "
                  f"({wavelet}, {levels} levels)")
    return write_fields(out, a, field=field, generator="phigen.rg.superres:coarse_grain", params=params,
                        conditions=cond, condition_names=names, groups=groups,
                        group_kind=gkind if groups is not None else None, overwrite=overwrite,
                        config={"source": str(data), "levels": int(levels), "wavelet": str(wavelet),
                                "scale": f"x_j = the orthonormal DWT approximation (2^{int(levels)} × the local mean)"})
