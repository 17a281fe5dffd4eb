"""Gaussian-process regression for the tiny formula (tinygp), fitted in float64 scoped to the fit.

Model: standardised y = m(x) + f(x) + noise, with a linear mean m(x) = a + b x (so a budget outside the
sampled FLOPs range follows the trend instead of falling back to a constant), f ~ GP(0, s² ExpSquared(l)) and
white noise σ_n² (floored, so 5 exact points still give a well-conditioned fit). a, b, log s, log l, log σ_n
maximise the marginal likelihood times weak log-normal priors on s (around 1, the standardised scale) and l
(around half the x span), by L-BFGS-B from a few length scales; l is kept within [0.1, 10] x the x span.
Plain maximum likelihood from 5-16 points picks over-confident fits: on noisy samples of a known curve its
±2σ band covered the truth 68% of the time, with the priors 83% (nominal 95%; tests/test_search_gp.py).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Sequence

import numpy as np
import threadpoolctl

from tinynet_jax.errors import SearchError

_NOISE_FLOOR = 1e-3  # standardised units
_PRIOR_STD = 1.0  # of log amplitude and log length scale
_NAMES = ("intercept", "slope", "log_amplitude", "log_scale", "log_noise")  # the fitted hyper-parameters
_KEYS = (*_NAMES, "y_shift", "y_scale")


def _as_vector(name: str, values) -> np.ndarray:
  try:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
  except (TypeError, ValueError):
    raise SearchError(f"GP {name} must be numbers") from None
  if not np.all(np.isfinite(array)):
    raise SearchError(f"GP {name} must be finite")
  return array


def _gp(params: dict, x):
  import jax.numpy as jnp
  import tinygp
  kernel = jnp.exp(2 * params["log_amplitude"]) * tinygp.kernels.ExpSquared(scale=jnp.exp(params["log_scale"]))
  mean = lambda t: params["intercept"] + params["slope"] * t  # noqa: E731
  noise = jnp.exp(2 * params["log_noise"]) + _NOISE_FLOOR ** 2
  return tinygp.GaussianProcess(kernel, x, diag=noise, mean=mean)


def _one_blas_thread():
  """L-BFGS-B's tiny BLAS calls, with OpenBLAS's threads spinning against XLA's, took 0.9 s a fit on 2 cores
  (measured; 18 ms with one BLAS thread)."""
  return threadpoolctl.threadpool_limits(1, user_api="blas")


@functools.cache
def _jitted() -> dict:
  """The jitted objective and posterior, built once: x, y and the prior's centre are arguments, not constants
  closed over, so repeated fits with the same number of points reuse one compilation (a sweep analysis fits
  two GPs, the planted-optimum simulation hundreds)."""
  import jax

  def log_likelihood(theta, x, z):
    return _gp(dict(zip(_NAMES, theta)), x).log_probability(z)

  def loss(theta, x, z, log_scale_centre):
    params = dict(zip(_NAMES, theta))
    prior = (params["log_amplitude"] - 0.0) ** 2 + (params["log_scale"] - log_scale_centre) ** 2
    return -log_likelihood(theta, x, z) + 0.5 * prior / _PRIOR_STD ** 2

  def predict(theta, x, z, x_new):
    _, conditioned = _gp(dict(zip(_NAMES, theta)), x).condition(z, x_new, diag=0.0)
    return conditioned.loc, conditioned.variance

  return {"log_likelihood": jax.jit(log_likelihood), "value_and_grad": jax.jit(jax.value_and_grad(loss)),
          "predict": jax.jit(predict)}


@dataclasses.dataclass(frozen=True)
class GPFit:
  x: tuple[float, ...]
  y: tuple[float, ...]
  params: dict[str, float]
  log_marginal_likelihood: float

  def predict(self, x_new) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation of the latent function (noise excluded) at `x_new`."""
    import jax
    import jax.numpy as jnp
    x_new = _as_vector("inputs", x_new)
    shift, scale = self.params["y_shift"], self.params["y_scale"]
    with jax.enable_x64(True):
      theta = jnp.asarray([self.params[k] for k in _NAMES], jnp.float64)
      y = (jnp.asarray(self.y, jnp.float64) - shift) / scale
      mean, variance = _jitted()["predict"](theta, jnp.asarray(self.x, jnp.float64), y,
                                           jnp.asarray(x_new, jnp.float64))
      mean = np.asarray(mean, np.float64)
      std = np.sqrt(np.maximum(np.asarray(variance, np.float64), 0.0))
    return mean * scale + shift, std * scale

  def to_dict(self) -> dict[str, Any]:
    return {"x": list(self.x), "y": list(self.y), "params": dict(self.params),
            "log_marginal_likelihood": self.log_marginal_likelihood}

  @classmethod
  def from_dict(cls, data: Any) -> "GPFit":
    try:
      params = {k: float(data["params"][k]) for k in _KEYS}
      fit = cls(tuple(float(v) for v in data["x"]), tuple(float(v) for v in data["y"]), params,
                float(data["log_marginal_likelihood"]))
    except (KeyError, TypeError, ValueError) as e:
      raise SearchError(f"not a GP fit record ({type(e).__name__}: {e})") from None
    if len(fit.x) != len(fit.y) or not fit.x:
      raise SearchError("GP fit record has mismatched or empty x and y")
    return fit


def fit_gp(x: Sequence[float], y: Sequence[float], *, min_points: int = 3) -> GPFit:
  """Maximum-marginal-likelihood GP through (x, y)."""
  import jax
  import jax.numpy as jnp
  from scipy.optimize import minimize
  x, y = _as_vector("inputs", x), _as_vector("targets", y)
  if len(x) != len(y):
    raise SearchError(f"GP inputs and targets differ in length ({len(x)} vs {len(y)})")
  if len(x) < min_points:
    raise SearchError(f"need at least {min_points} points to fit a GP, got {len(x)}")
  span = float(x.max() - x.min())
  if span <= 0:
    raise SearchError("GP inputs are all equal; need points at different FLOPs")
  shift = float(y.mean())
  scale = float(y.std()) or 1.0
  z = (y - shift) / scale
  bounds = [(-10, 10), (-10 / span, 10 / span), (math.log(1e-3), math.log(10.0)),
            (math.log(0.1 * span), math.log(10 * span)), (math.log(1e-4), math.log(2.0))]
  jitted = _jitted()
  with jax.enable_x64(True):
    xs, zs = jnp.asarray(x, jnp.float64), jnp.asarray(z, jnp.float64)
    centre = jnp.asarray(math.log(0.5 * span), jnp.float64)

    def objective(theta):
      value, grad = jitted["value_and_grad"](jnp.asarray(theta, jnp.float64), xs, zs, centre)
      return float(value), np.asarray(grad, np.float64)

    slope0 = float(np.polyfit(x, z, 1)[0])
    best = None
    with _one_blas_thread():
      for scale_factor in (0.3, 1.0, 3.0):
        start = np.array([0.0, np.clip(slope0, *bounds[1]), 0.0, math.log(scale_factor * span), math.log(0.1)])
        result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds)
        if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
          best = result
    if best is not None:
      marginal = float(jitted["log_likelihood"](jnp.asarray(best.x, jnp.float64), xs, zs))  # standardised targets
  if best is None:
    raise SearchError("the GP fit did not converge")
  params = {k: float(v) for k, v in zip(_NAMES, best.x)}
  params.update(y_shift=shift, y_scale=scale)
  return GPFit(tuple(map(float, x)), tuple(map(float, y)), params, marginal)
