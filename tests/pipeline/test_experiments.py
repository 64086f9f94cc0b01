"""Experiments: seeded inputs, error metrics, and the reference path against published
SOFA/ERFA test values (t_erfa_c.c) — in-process, small n."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.adapters.numpy_newton import solve_kepler, true_anomaly
from pipeline.catalog import EXPERIMENTS as CATALOG
from pipeline.experiments.common import (DE421_END_JD, EPOCH_SPAN_DAYS, J2000, RAD2MAS,
                                         sph_to_vec, vector_angle)
from pipeline.registry import ADAPTERS, EXPERIMENTS

EPOCH_KEYS = (("tt1", "tt2"), ("ut1_1", "ut1_2"), ("tdb1", "tdb2"))


def reference_outputs(name: str, inputs: dict) -> np.ndarray:
    adapter = ADAPTERS[EXPERIMENTS[name].reference_adapter]()
    adapter.check_available()
    return adapter.compute(name, adapter.prepare(name, inputs))


@pytest.mark.parametrize("name", CATALOG)
def test_inputs_are_deterministic_per_seed(name: str) -> None:
    exp = EXPERIMENTS[name]
    a, b, c = exp.generate_inputs(50, 7), exp.generate_inputs(50, 7), exp.generate_inputs(50, 8)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].shape == (50,) and a[key].dtype == np.float64
        assert a[key].tobytes() == b[key].tobytes(), key
    assert any(not np.array_equal(a[k], c[k]) for k in a), "another seed must give other inputs"
    # a prefix of a larger draw is not required, but n must be honoured exactly
    assert all(len(v) == 1 for v in exp.generate_inputs(1, 7).values())


def test_experiments_draw_different_epochs_for_the_same_seed() -> None:
    a = EXPERIMENTS["frame_rotation_bpn"].generate_inputs(20, 1)["tt2"]
    b = EXPERIMENTS["precession"].generate_inputs(20, 1)["tt2"]
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("name", CATALOG)
def test_epochs_lie_in_the_documented_range(name: str) -> None:
    inputs = EXPERIMENTS[name].generate_inputs(2000, 3)
    for first, second in EPOCH_KEYS:
        if first in inputs:
            assert np.all(inputs[first] == J2000)
            jd = inputs[first] + inputs[second]
            assert jd.min() >= J2000 and jd.max() <= J2000 + EPOCH_SPAN_DAYS
            if first == "tdb1":
                assert jd.max() < DE421_END_JD


@pytest.mark.parametrize("name", CATALOG)
def test_reference_returns_the_declared_columns_and_zero_self_error(name: str) -> None:
    exp = EXPERIMENTS[name]
    out = reference_outputs(name, exp.generate_inputs(20, 5))
    assert out.shape == (20, len(exp.output_columns))
    assert np.all(np.isfinite(out))
    assert np.all(exp.error(out, out) == 0.0)


@pytest.mark.parametrize("name", CATALOG)
def test_error_is_nan_for_a_nan_row_and_refuses_a_wrong_shape(name: str) -> None:
    exp = EXPERIMENTS[name]
    out = reference_outputs(name, exp.generate_inputs(4, 5))
    cand = out.copy()
    cand[2] = np.nan
    err = exp.error(out, cand)
    assert np.isnan(err[2]) and np.all(np.isfinite(np.delete(err, 2)))
    with pytest.raises(ValueError, match=name):
        exp.error(out, out[:, :1] if out.shape[1] > 1 else np.hstack([out, out]))


def _rotation_about_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_vector_error_measures_a_known_small_rotation() -> None:
    exp = EXPERIMENTS["frame_rotation_bpn"]
    ref = np.array([[1.0, 0.0, 0.0], [0.0, np.sqrt(0.5), np.sqrt(0.5)]])
    one_mas = 1.0 / RAD2MAS
    cand = ref @ _rotation_about_z(one_mas).T
    # a vector on the equator moves by the full angle, one at 45 deg dec by cos(45 deg) of it
    np.testing.assert_allclose(exp.error(ref, cand), [1.0, np.sqrt(0.5)], rtol=1e-9)


def test_lonlat_error_is_an_angular_separation_not_a_longitude_difference() -> None:
    exp = EXPERIMENTS["equ_ecl"]
    lat = np.radians(80.0)
    ref = np.array([[0.1, lat]])
    cand = np.array([[0.1 + 1e-6, lat]])
    np.testing.assert_allclose(exp.error(ref, cand), 1e-6 * np.cos(lat) * RAD2MAS, rtol=1e-6)


def test_gmst_era_error_wraps_and_takes_the_larger_column() -> None:
    exp = EXPERIMENTS["gmst_era"]
    ref = np.array([[2 * np.pi - 1e-9, 1.0]])
    cand = np.array([[1e-9, 1.0 + 3e-9]])  # 2e-9 rad across the wrap, 3e-9 rad in ERA
    np.testing.assert_allclose(exp.error(ref, cand), 3e-9 * RAD2MAS, rtol=1e-6)


def test_horizontal_error_uses_azimuth_north_through_east() -> None:
    exp = EXPERIMENTS["equ_horizontal"]
    ref = np.array([[0.0, 0.0]])
    cand = np.array([[2 * np.pi - 1e-8, 0.0]])
    np.testing.assert_allclose(exp.error(ref, cand), 1e-8 * RAD2MAS, rtol=1e-6)


# --- the reference path against SOFA/ERFA published test values (t_erfa_c.c) ---

def test_gmst06_published_value_through_the_erfa_adapter() -> None:
    d = {"ut1_1": np.array([2400000.5]), "ut1_2": np.array([53736.0]),
         "tt1": np.array([2400000.5]), "tt2": np.array([53736.0]), "delta_t": np.array([0.0])}
    out = reference_outputs("gmst_era", d)
    assert abs(out[0, 0] - 1.754174971870091203) < 1e-12
    d2 = dict(d, ut1_2=np.array([54388.0]))
    assert abs(reference_outputs("gmst_era", d2)[0, 1] - 0.4022837240028158102) < 1e-12


PNM06A_50123_9999 = np.array([
    [0.9999995832794205484, 0.8372382772630962111e-3, 0.3639684771140623099e-3],
    [-0.8372533744743683605e-3, 0.9999996486492861646, 0.4132905944611019498e-4],
    [-0.3639337469629464969e-3, -0.4163377605910663999e-4, 0.9999999329094260057],
])


def test_pnm06a_published_matrix_through_the_erfa_adapter() -> None:
    basis = np.eye(3)
    d = {"tt1": np.full(3, 2400000.5), "tt2": np.full(3, 50123.9999),
         "x": basis[:, 0].copy(), "y": basis[:, 1].copy(), "z": basis[:, 2].copy()}
    out = reference_outputs("frame_rotation_bpn", d)   # row j = matrix applied to e_j = column j
    np.testing.assert_allclose(out.T, PNM06A_50123_9999, rtol=0, atol=1e-12)


def test_eqec06_and_gst06a_hd2ae_published_values() -> None:
    d = {"tt1": np.array([1234.5]), "tt2": np.array([2440000.5]),
         "ra": np.array([1.234]), "dec": np.array([0.987])}
    np.testing.assert_allclose(reference_outputs("equ_ecl", d)[0],
                               [1.342509918994654619, 0.5926215259704608132], atol=1e-14)
    # gst06a(53736) = 1.754166137675019159; pick ra so the hour angle is exactly 1.1 (hd2ae test)
    gst = 1.754166137675019159
    h = {"ut1_1": np.array([2400000.5]), "ut1_2": np.array([53736.0]),
         "tt1": np.array([2400000.5]), "tt2": np.array([53736.0]), "delta_t": np.array([0.0]),
         "ra": np.array([gst - 1.1]), "dec": np.array([1.2]), "lon": np.array([0.0]),
         "lat": np.array([0.3])}
    np.testing.assert_allclose(reference_outputs("equ_horizontal", h)[0],
                               [5.916889243730066194, 0.4472186304990486228], atol=1e-12)


def test_sun_and_moon_truth_distances_are_physical() -> None:
    for name, lo, hi in (("solar_position", 0.983 * 149597870.7, 1.0168 * 149597870.7),
                         ("lunar_position", 356000.0, 407000.0)):
        out = reference_outputs(name, EXPERIMENTS[name].generate_inputs(200, 11))
        r = np.linalg.norm(out, axis=1)
        assert r.min() > lo and r.max() < hi, name


def test_sun_truth_at_j2000_points_at_the_known_place() -> None:
    # Geometric Sun at 2000-01-01 12h TDB: RA 18h45m (281.3 deg), Dec -23.03 deg (to ~0.05 deg)
    d = {"tdb1": np.array([J2000]), "tdb2": np.array([0.0])}
    v = reference_outputs("solar_position", d)[0]
    ra = np.degrees(np.arctan2(v[1], v[0])) % 360.0
    dec = np.degrees(np.arcsin(v[2] / np.linalg.norm(v)))
    assert abs(ra - 281.29) < 0.05 and abs(dec + 23.03) < 0.05


def test_numpy_newton_solves_keplers_equation() -> None:
    rng = np.random.default_rng(0)
    m = rng.uniform(-np.pi, np.pi, 5000)
    e = rng.uniform(0.0, 0.999, 5000)
    ecc = solve_kepler(m, e)
    assert np.max(np.abs(ecc - e * np.sin(ecc) - m)) < 4e-15
    np.testing.assert_allclose(true_anomaly(solve_kepler(m, np.zeros_like(m)), 0.0), m, atol=1e-15)
    # M outside [-pi, pi) is folded first: the same orbit position, so the same nu
    np.testing.assert_allclose(true_anomaly(solve_kepler(m + 2 * np.pi, e), e),
                               true_anomaly(ecc, e), atol=1e-12)


def test_sph_to_vec_and_vector_angle_are_consistent() -> None:
    a = sph_to_vec(np.array([0.0]), np.array([0.0]))
    b = sph_to_vec(np.array([np.pi / 2]), np.array([0.0]))
    np.testing.assert_allclose(vector_angle(a, b), [np.pi / 2])
