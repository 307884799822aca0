"""The registered ``flow`` model: a normalizing flow fitted by maximum likelihood on fields, or by
reverse KL on a Gibbs energy with no data (:meth:`FlowModel.fit_energy`).

Maximum likelihood minimises ``−⟨log q(x)⟩_data / V`` (nats per site) over batches of the training
fields; the output affine starts at the data's pixel mean and standard deviation. Reverse KL
minimises ``⟨log q(x) + U(x)⟩_{x~q} / V`` with reparameterised flow draws: its value is
``(F_q − F)/V − log Z/V`` with ``F = −log Z`` the free energy, so it is bounded below by ``−log Z/V``
and reaches it only for ``q = e^{−U}/Z`` (the variational free energy). The fit record keeps the
loss curve, the importance-sampling estimate of log Z and the ESS/N of the weights.

Options: :class:`FlowFitConfig` (the network's shape, the training settings of
:class:`phigen.nn.TrainConfig`, and ``checkpoint`` / ``checkpoint_every`` / ``stop_at`` for
resumable training). The model samples with the EMA weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields, check_int_at_least
from ..energies.base import Energy
from ..errors import InputError, ModelFileError, ParameterError
from ..models._base import config_from_options, read_model_file, register_model, write_model_file
from ..models._conditions import condition_settings, standardised_condition
from ..nn.init import count_params
from ..nn.train import TrainConfig, train
from .flow import Flow, FlowNetConfig, flow_log_prob, flow_sample, make_flow, resize_flow
from .mcmc import effective_sample_size_fraction, log_weights

__all__ = ["FlowFitConfig", "FlowModel", "MaxLikelihoodLoss", "ReverseKLLoss", "energy_record", "energy_from_record"]


@dataclass(frozen=True)
class FlowFitConfig:
    """Options of ``fit flow`` / :meth:`FlowModel.fit_energy`: the flow's shape
    (:class:`~phigen.flows.flow.FlowNetConfig`), the training settings
    (:class:`~phigen.nn.TrainConfig`; ``batch_size`` is the number of flow draws per step in a
    reverse-KL fit) and resumable training (``checkpoint``, ``checkpoint_every``, ``stop_at``).
    ``sign_symmetric``: Z₂-equivariant couplings, q(−x) = q(x) exactly (``phigen compare`` sets it
    for fields with the φ → −φ symmetry; default: on for a φ⁴ energy, off for data).
    ``eval_samples``: flow draws for the fit record's ESS/N and log Z (reverse KL)."""

    layers: int = FlowNetConfig.layers
    width: int = FlowNetConfig.width
    hidden: int = FlowNetConfig.hidden
    kernel: int = FlowNetConfig.kernel
    spectral: bool = FlowNetConfig.spectral
    coupling: str = FlowNetConfig.coupling   # "affine" (RealNVP) or "spline" (rational-quadratic)
    bins: int = FlowNetConfig.bins
    sign_symmetric: bool | None = None     # Z₂-equivariant couplings; None: True for phi4, False for data
    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup: int = 100
    ema_decay: float = 0.99
    grad_clip: float = 1.0
    chunk: int = 50
    checkpoint: str | None = None
    checkpoint_every: int | None = None
    stop_at: int | None = None
    eval_samples: int = 1024
    data_parallel: bool = False  # split each batch over every device of every process (docs/scale_out.md)

    def net_config(self, symmetric_default: bool) -> FlowNetConfig:
        sym = symmetric_default if self.sign_symmetric is None else bool(self.sign_symmetric)
        return FlowNetConfig(self.layers, self.width, self.hidden, self.kernel, bool(self.spectral), sym,
                             coupling=self.coupling, bins=self.bins)

    def train_config(self) -> TrainConfig:
        return TrainConfig.of(self)


class MaxLikelihoodLoss(eqx.Module):
    """``−⟨log q(x)⟩ / V`` over a batch of fields (nats per site). ``conditional``: the batch is
    ``(B, 1 + D, H, W)``, the field then its D standardised conditions as constant channels."""

    conditional: bool = eqx.field(static=True, default=False)

    def __call__(self, flow, x, key):
        if self.conditional:
            x, c = x[:, 0], x[:, 1:, 0, 0]
            return -jnp.mean(flow_log_prob(flow, x, c)) / (x.shape[-1] * x.shape[-2])
        return -jnp.mean(flow_log_prob(flow, x)) / (x.shape[-1] * x.shape[-2])


class ReverseKLLoss(eqx.Module):
    """``⟨log q(x) + U(x)⟩_{x~q} / V`` with ``n`` reparameterised draws (nats per site)."""

    energy: Energy
    n: int = eqx.field(static=True)

    def __call__(self, flow, _, key):
        x, logq = flow_sample(flow, key, self.n)
        return jnp.mean(logq + self.energy.value(x)) / (x.shape[-1] * x.shape[-2])


def energy_record(energy: Energy) -> dict:
    """A JSON description of a φ⁴ energy (what a flow fitted to it was fitted to)."""
    if getattr(energy, "kappa", None) is None or getattr(energy, "lam", None) is None:
        return {"name": getattr(energy, "name", "custom")}
    return {"name": "phi4", "kappa": float(energy.kappa), "lam": float(energy.lam)}


def energy_from_record(record: dict | None) -> Energy | None:
    """The :class:`~phigen.energies.Phi4` an energy record names, or None."""
    if not record or record.get("name") not in ("phi4", "gaussian_free_field"):
        return None
    from ..energies import Phi4

    return Phi4(record["kappa"], record["lam"])


@register_model("flow")
class FlowModel:
    """A normalizing flow (spectral scaling + checkerboard affine couplings) on periodic fields."""

    fit_config = FlowFitConfig

    def __init__(self, flow: Flow, net_config: FlowNetConfig, losses=None, training: dict | None = None,
                 energy: dict | None = None, conditions: dict | None = None):
        self.flow, self.net_config = flow, net_config
        self.losses = np.zeros((0,), np.float32) if losses is None else np.asarray(losses, np.float32)
        self.training = dict(training or {})
        self.energy_record = dict(energy or {})
        self.conditions = dict(conditions or {})   # a conditional flow's names, mean/std, training range

    @property
    def condition_names(self) -> list:
        """The conditions a conditional flow was fitted on (empty: unconditional)."""
        return list(self.conditions.get("condition_names", []))

    @property
    def field_shape(self) -> tuple[int, int]:
        return tuple(self.flow.shape)

    @property
    def n_params(self) -> int:
        return count_params(self.flow)

    @property
    def energy(self) -> Energy | None:
        """The Gibbs energy a reverse-KL fit targeted (None for a fit on data)."""
        return energy_from_record(self.energy_record)

    # --- fitting ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, fields, *, key, progress=None, conditions=None, condition_names=None,
            config: FlowFitConfig | None = None, **options):
        """Maximum likelihood on ``fields`` ``(N, H, W)``; ``config`` / ``options``: :class:`FlowFitConfig`.
        ``conditions`` ``(N,)`` or ``(N, D)``: a conditional flow p(x | c) (``condition_names`` name
        them); every layer reads the standardised c (:mod:`phigen.flows.layers`)."""
        cfg = config_from_options(FlowFitConfig, config, options, "fit flow")
        x = as_fields(fields, name="training fields")
        if x.shape[0] < 2:
            raise InputError(f"need at least 2 training fields; got {x.shape[0]}")
        mean, std = float(np.mean(x, dtype=np.float64)), float(np.std(x, dtype=np.float64))
        if not std > 0:
            raise InputError("training fields are constant (zero standard deviation)")
        net_config = cfg.net_config(False)
        data, z, cond_settings = x, None, {}
        if conditions is not None:  # the standardised conditions ride along as constant channels
            z, cond_settings = condition_settings(conditions, condition_names, len(x))
            net_config = dataclasses.replace(net_config, cond_channels=z.shape[1])
            data = np.concatenate([x[:, None], np.broadcast_to(z[:, :, None, None], (len(x), z.shape[1],
                                                                                      *x.shape[1:]))], axis=1)
        k_net, k_train = jax.random.split(key)
        flow = make_flow(net_config, x.shape[1:], key=k_net, loc=mean, scale=std)
        fingerprint = {"kind": "flow", "objective": "max-likelihood", "net": net_config.to_dict(),
                       "shape": list(x.shape), "mean": mean, "std": std}
        if cond_settings:  # (only when conditional: unconditional checkpoints of earlier versions still resume)
            fingerprint["conditions"] = cond_settings
        result = cls._train(MaxLikelihoodLoss(conditions is not None), flow, data, cfg, k_train, progress,
                            fingerprint)
        training = cls._record(result.losses, cfg, "max-likelihood", count_params(flow))
        training["train_nll_per_site"] = float(-np.mean(_log_prob_batches(result.ema_model, x, z))
                                               / np.prod(x.shape[1:]))
        return cls(result.ema_model, net_config, result.losses, training, conditions=cond_settings)

    @classmethod
    def fit_energy(cls, energy: Energy, shape, *, key, progress=None, config: FlowFitConfig | None = None,
                   init: "FlowModel | None" = None, **options):
        """Reverse KL on ``p ∝ exp(−energy)`` for fields of ``shape`` (H, W) (an int L: L × L): no data.

        ``init``: a reverse-KL :class:`FlowModel` (typically fitted on a smaller lattice, which is
        cheaper) whose flow, resized to ``shape`` by :func:`~phigen.flows.flow.resize_flow`, starts
        this fit: its network shape replaces ``layers``/``width``/… of the options.

        The fit record gets ``free_energy_variational`` (⟨log q + U⟩, an upper bound of F = −log Z),
        ``log_z`` (importance-sampling estimate with its error) and ``ess_fraction`` (ESS/N of the
        weights), from ``eval_samples`` flow draws."""
        cfg = config_from_options(FlowFitConfig, config, options, "fit flow (reverse KL)")
        if not isinstance(energy, Energy):
            raise ParameterError(f"energy must be a phigen Energy; got {type(energy).__name__}")
        shape = (int(shape), int(shape)) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
        record = energy_record(energy)
        net_config = cfg.net_config(record.get("name") == "phi4")
        k_net, k_train, k_eval = jax.random.split(key, 3)
        init_record = None
        if init is not None:
            if not isinstance(init, FlowModel) or init.net_config.cond_channels:
                raise ParameterError("init must be an unconditional FlowModel (a flow fitted by fit_energy)")
            net_config = init.net_config
            flow = resize_flow(init.flow, net_config, shape)
            init_record = {"shape": list(init.field_shape), "steps": int(init.training.get("steps_done", 0)),
                           "energy": init.energy_record}
        else:
            flow = make_flow(net_config, shape, key=k_net)
        fingerprint = {"kind": "flow", "objective": "reverse-kl", "net": net_config.to_dict(), "shape": list(shape),
                       "energy": record}
        if init_record is not None:
            fingerprint["init"] = init_record
        result = cls._train(ReverseKLLoss(energy, cfg.batch_size), flow, None, cfg, k_train, progress, fingerprint)
        training = cls._record(result.losses, cfg, "reverse-kl", count_params(flow))
        if init_record is not None:
            training["init"] = init_record
        training.update(free_energy_record(result.ema_model, energy, key=k_eval, n=cfg.eval_samples))
        return cls(result.ema_model, net_config, result.losses, training, record)

    @staticmethod
    def _train(loss, flow, data, cfg: FlowFitConfig, key, progress, fingerprint):
        if cfg.data_parallel and data is None:
            raise ParameterError("data_parallel splits the training data's batches; reverse-KL training has no data")
        return train(loss, flow, data, cfg.train_config(), key=key, progress=progress, checkpoint=cfg.checkpoint,
                     checkpoint_every=cfg.checkpoint_every, stop_at=cfg.stop_at, fingerprint=fingerprint,
                     desc=f"fit flow ({fingerprint['objective']})",
                     data_parallel=bool(cfg.data_parallel))

    @staticmethod
    def _record(losses, cfg: FlowFitConfig, objective: str, n_params: int) -> dict:
        head, tail = losses[: max(1, len(losses) // 20)], losses[-max(1, len(losses) // 20):]
        return {"objective": objective, "train_config": asdict(cfg.train_config()), "n_params": n_params,
                "initial_loss": float(head.mean()), "final_loss": float(tail.mean()),
                "steps_done": int(len(losses)), "loss_units": "nats per site"}

    # --- using it --------------------------------------------------------------------------------
    def sample(self, n: int, *, key, batch: int = 256, condition=None):
        """``n`` independent flow draws ``(n, H, W)``; ``condition``: the ``(D,)`` values of a conditional
        flow (in ``condition_names`` order; outside the training range it warns)."""
        n = check_int_at_least(n, "n", 1)
        z = standardised_condition(self.conditions, condition, self.kind)
        out = [np.asarray(_sample_batch(self.flow, jax.random.fold_in(key, i), min(batch, n - s), z))
               for i, s in enumerate(range(0, n, batch))]
        return jnp.asarray(np.concatenate(out))

    def log_prob(self, fields, condition=None):
        """Exact ``log q(x)`` ``(N,)`` of ``fields`` ``(N, H, W)`` (at ``condition`` for a conditional flow)."""
        x = as_fields(fields, name="fields")
        z = standardised_condition(self.conditions, condition, self.kind)
        return jnp.asarray(_log_prob_batches(self.flow, x, z))

    # --- files -----------------------------------------------------------------------------------
    def save(self, path):
        config = {"net": self.net_config.to_dict(), "shape": list(self.field_shape), "energy": self.energy_record,
                  "conditions": self.conditions}
        return write_model_file(path, self.kind, config=config, arrays={"losses": self.losses},
                                modules={"flow": self.flow}, training=self.training)

    @classmethod
    def load(cls, path):
        f = read_model_file(path, cls.kind)
        try:
            net_config = FlowNetConfig(**f.config["net"])
            shape = tuple(int(s) for s in f.config["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"incomplete flow model file: {exc!r}", path=path) from None
        skeleton = eqx.filter_eval_shape(Flow, net_config, shape, key=jax.random.PRNGKey(0))
        conditions = f.config.get("conditions") or {}
        if len(conditions.get("condition_names", [])) != net_config.cond_channels:
            raise ModelFileError(f"flow model file: {net_config.cond_channels} condition channels but conditions "
                                 f"{conditions.get('condition_names', [])}", path=path)
        return cls(f.module("flow", like=skeleton), net_config, f.arrays.get("losses"), f.training,
                   f.config.get("energy"), conditions)


@eqx.filter_jit
def _sample_batch(flow, key, n, cond=None):
    return flow_sample(flow, key, n, cond)[0]


_log_prob_jit = eqx.filter_jit(flow_log_prob)


def _log_prob_batches(flow, x, cond=None, batch: int = 256) -> np.ndarray:
    """``log q`` of ``x`` in batches; ``cond``: None, one ``(D,)`` or per field ``(N, D)`` standardised."""
    def c(s):
        return None if cond is None else (cond if np.ndim(cond) == 1 else cond[s:s + batch])
    return np.concatenate([np.asarray(_log_prob_jit(flow, jnp.asarray(x[s:s + batch]), c(s)), np.float64)
                           for s in range(0, len(x), batch)])


def free_energy_record(flow: Flow, energy: Energy, *, key, n: int) -> dict:
    """ESS/N, the variational free energy ⟨log q + U⟩_q (≥ F = −log Z) and the importance-sampling
    estimate of log Z (``log ⟨w⟩``, error by the delta method) from ``n`` flow draws."""
    n = check_int_at_least(n, "eval_samples", 2)
    _, lw = log_weights(flow, energy, key=key, n=n)
    ok = np.isfinite(lw)
    lw = lw[ok]
    m = lw.max()
    w = np.exp(lw - m)
    log_z = float(m + np.log(w.mean()))
    log_z_err = float(np.std(w, ddof=1) / np.sqrt(len(w)) / w.mean())
    return {"ess_fraction": effective_sample_size_fraction(lw), "free_energy_variational": float(-lw.mean()),
            "log_z": log_z, "log_z_error": log_z_err, "eval_samples": int(n), "non_finite_weights": int((~ok).sum())}
