"""UAR, confusion matrix, McNemar (against statsmodels) and t confidence intervals (against scipy)."""

import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from emodistill.evaluate import confusion_matrix, mcnemar, mean_ci, uar


def test_confusion_matrix_rows_are_true_classes():
    m = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], n_classes=4)
    assert m.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]


def test_confusion_matrix_rejects_out_of_range():
    with pytest.raises(ValueError, match="y_pred"):
        confusion_matrix([0, 1], [0, 3], n_classes=3)


def test_uar_hand_computed():
    # recalls: class 0 -> 1/2, class 1 -> 2/2, class 2 -> 1/4
    y_true = [0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0, 0, 1]
    assert uar(y_true, y_pred) == pytest.approx((0.5 + 1.0 + 0.25) / 3)


def test_uar_ignores_classes_absent_from_y_true():
    # class 3 is predicted but never true: it must not count as a class with recall 0.
    assert uar([0, 0, 1, 1], [0, 3, 1, 1]) == pytest.approx((0.5 + 1.0) / 2)


def test_uar_differs_from_accuracy_on_imbalance():
    y_true = [0] * 9 + [1]
    y_pred = [0] * 10
    assert uar(y_true, y_pred) == pytest.approx(0.5)


def test_uar_accepts_string_labels():
    assert uar(["neu", "ang", "ang"], ["neu", "ang", "sad"]) == pytest.approx(0.75)


def test_uar_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="equal length"):
        uar([0, 1], [0])


def _predictions_for(table, rng):
    """y_true, pred_a, pred_b whose correctness agreement is the 2x2 `table`."""
    (both, b), (c, neither) = table
    right_a = np.array([1] * both + [1] * b + [0] * c + [0] * neither, dtype=bool)
    right_b = np.array([1] * both + [0] * b + [1] * c + [0] * neither, dtype=bool)
    order = rng.permutation(len(right_a))
    right_a, right_b = right_a[order], right_b[order]
    y_true = rng.integers(0, 4, len(right_a))
    wrong = (y_true + rng.integers(1, 4, len(right_a))) % 4
    return y_true, np.where(right_a, y_true, wrong), np.where(right_b, y_true, wrong)


@pytest.mark.parametrize("exact", [True, False])
def test_mcnemar_matches_statsmodels(exact):
    rng = np.random.default_rng(0)
    for _ in range(250):
        table = rng.integers(0, 40, size=(2, 2))
        table[0, 1] += 1  # keep b + c > 0 (statsmodels divides by zero otherwise)
        y_true, pred_a, pred_b = _predictions_for(table.tolist(), rng)
        ours = mcnemar(y_true, pred_a, pred_b, exact=exact)
        ref = sm_mcnemar(table, exact=exact, correction=True)
        assert ours.table == tuple(map(tuple, table.tolist()))
        assert (ours.b, ours.c) == (table[0, 1], table[1, 0])
        assert ours.statistic == pytest.approx(float(ref.statistic), abs=1e-9)
        assert ours.pvalue == pytest.approx(float(ref.pvalue), abs=1e-9)
        assert ours.exact is exact


def test_mcnemar_uncorrected_chi_square_matches_statsmodels():
    ours = mcnemar(*_predictions_for([[10, 7], [19, 4]], np.random.default_rng(1)), exact=False, correction=False)
    ref = sm_mcnemar([[10, 7], [19, 4]], exact=False, correction=False)
    assert ours.statistic == pytest.approx(ref.statistic, abs=1e-9)
    assert ours.pvalue == pytest.approx(ref.pvalue, abs=1e-9)


def test_mcnemar_identical_predictions_have_no_evidence():
    y_true = np.array([0, 1, 2, 3, 0, 1])
    pred = np.array([0, 1, 0, 3, 2, 1])
    for exact in (True, False):
        result = mcnemar(y_true, pred, pred, exact=exact)
        assert (result.b, result.c) == (0, 0)
        assert result.statistic == 0.0 and result.pvalue == 1.0


def test_mcnemar_no_discordant_pairs_exact_matches_statsmodels():
    y_true, pred_a, pred_b = _predictions_for([[5, 0], [0, 3]], np.random.default_rng(2))
    ours = mcnemar(y_true, pred_a, pred_b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = sm_mcnemar([[5, 0], [0, 3]])
    assert (ours.statistic, ours.pvalue) == (float(ref.statistic), float(ref.pvalue)) == (0.0, 1.0)


def test_mcnemar_all_discordant():
    y_true, pred_a, pred_b = _predictions_for([[0, 12], [0, 0]], np.random.default_rng(3))
    result = mcnemar(y_true, pred_a, pred_b)
    assert result.table == ((0, 12), (0, 0))
    assert result.pvalue == pytest.approx(2 * 0.5 ** 12)
    chi = mcnemar(y_true, pred_a, pred_b, exact=False)
    assert chi.statistic == pytest.approx(11 ** 2 / 12)


@pytest.mark.parametrize("values", [[0.61, 0.64, 0.58, 0.66, 0.6], [1.0, 3.0], np.linspace(0, 1, 17)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_mean_ci_matches_scipy(values, confidence):
    values = np.asarray(values)
    mean, std, low, high = mean_ci(values, confidence)
    ref_low, ref_high = stats.t.interval(confidence, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(values.mean())
    assert std == pytest.approx(values.std(ddof=1))
    assert (low, high) == pytest.approx((ref_low, ref_high), abs=1e-12)


def test_mean_ci_single_value_and_constant_values():
    assert mean_ci([0.7]) == (0.7, 0.0, 0.7, 0.7)
    assert tuple(mean_ci([0.5, 0.5, 0.5])) == pytest.approx((0.5, 0.0, 0.5, 0.5))


def test_mean_ci_rejects_empty_and_bad_confidence():
    with pytest.raises(ValueError, match="at least one"):
        mean_ci([])
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=95)
