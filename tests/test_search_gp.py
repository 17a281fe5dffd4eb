"""The GP behind the tiny formula: recovers a known curve, calibrated bands, exact interpolation, scoped x64."""
import json

import jax
import numpy as np
import pytest

from tinynet_jax.errors import SearchError
from tinynet_jax.search.gp import GPFit, fit_gp


def truth(x):
  return 0.8 + 0.15 * np.tanh(x) + 0.05 * x


def test_recovers_a_smooth_curve_and_its_band_is_calibrated():
  grid = np.linspace(-3, 0, 40)
  covered, widths, errors = [], [], []
  for seed in range(12):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-3, 0, 16))
    fit = fit_gp(x, truth(x) + rng.normal(0, 0.02, x.shape))
    mean, std = fit.predict(grid)
    errors.append(np.mean(np.abs(mean - truth(grid))))
    covered.append(np.mean(np.abs(mean - truth(grid)) <= 2 * std))
    widths.append(np.mean(4 * std))
  rate = float(np.mean(covered))
  print(f"2-sigma coverage {rate:.2f}, mean band width {np.mean(widths):.3f}, mean error {np.mean(errors):.4f}")
  assert np.mean(errors) < 0.015  # noise is 0.02: the mean follows the curve, not the noise
  assert 0.75 <= rate <= 1.0  # MAP hyper-parameters from 16 points: under the nominal 95% (measured 0.83)
  assert np.mean(widths) < 0.1  # and the band is not trivially wide


def test_interpolates_the_paper_points_and_keeps_x64_scoped():
  c = np.array([0.873, 0.520, 0.258, 0.134, 0.063])
  r = np.array([0.86, 0.84, 0.825, 0.68, 0.475])
  fit = fit_gp(np.log(c), r)
  mean, _ = fit.predict(np.log(c))
  np.testing.assert_allclose(mean, r, atol=0.02)
  assert jax.numpy.zeros(1).dtype == np.float32 and not jax.config.jax_enable_x64
  again = GPFit.from_dict(json.loads(json.dumps(fit.to_dict())))
  np.testing.assert_array_equal(again.predict(np.log(c))[0], mean)


@pytest.mark.parametrize("x, y, needle", [([0, 1], [0, 1], "at least 3"), ([0, 1, np.nan], [0, 1, 2], "finite"),
                                          ([0, 1, 2], [0, 1], "length"), ([1, 1, 1], [0, 1, 2], "equal")])
def test_bad_input(x, y, needle):
  with pytest.raises(SearchError, match=needle):
    fit_gp(x, y)


def test_corrupt_record():
  with pytest.raises(SearchError):
    GPFit.from_dict({"x": [1.0], "y": [1.0], "params": {}})
