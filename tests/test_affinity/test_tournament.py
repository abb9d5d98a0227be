import numpy as np
import pytest

from branched_mtl.affinity import (performance_matrix, performance_vector,
                                   tournament_affinity, tournament_matrix)


def losses_from_rankings(counts):
    """Per-sample losses of 3 sources from {ranking (best first): count}."""
    columns = []
    for ranking, count in counts.items():
        loss = np.empty(3)
        for position, source in enumerate(ranking):
            loss[int(source)] = position
        columns += [loss] * count
    return np.stack(columns, axis=1)


def test_source_that_always_wins_is_clipped():
    # w01 = 1 -> 0.999, w10 = 0 -> 0.001, diagonal 0 -> 0.001, so
    # W' = [[1, 999], [1/999, 1]]: eigenvalue 2, eigenvector (999, 1).
    losses = np.array([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]])
    np.testing.assert_allclose(
        performance_vector(losses), [0.999, 0.001], rtol=0, atol=1e-12)


def test_ties_count_for_neither_source():
    # Sample 0 is a tie. Source 0 wins samples 1 and 3, source 1 wins
    # sample 2: w01 = 2/4, w10 = 1/4 (a non-strict comparison would give
    # 3/4 and 2/4, i.e. (0.6, 0.4)). For S = 2 the eigenvector of
    # [[1, a/b], [b/a, 1]] is (a, b) / (a + b) = (2/3, 1/3).
    losses = np.array([[1., 2., 3., 4.], [1., 3., 2., 5.]])
    np.testing.assert_allclose(tournament_matrix(losses),
                               [[0, 0.5], [0.25, 0]])
    np.testing.assert_allclose(
        performance_vector(losses), [2 / 3, 1 / 3], rtol=0, atol=1e-12)


def test_three_sources_consistent_tournament():
    # 15 samples ranked 012 x8, 021 x2, 102 x2, 210 x3 give w01/w10 = 10/5,
    # w02/w20 = 12/3, w12/w21 = 10/5, i.e. W'_ij = v_i / v_j for
    # v = (4, 2, 1): W' v = 3 v, so the vector is (4, 2, 1) / 7.
    losses = losses_from_rankings({'012': 8, '021': 2, '102': 2, '210': 3})
    assert losses.shape == (3, 15)
    np.testing.assert_allclose(
        performance_vector(losses), np.array([4, 2, 1]) / 7, atol=1e-12)


def test_all_ties_give_uniform_vector():
    losses = np.ones((3, 5))
    np.testing.assert_allclose(performance_vector(losses), [1 / 3] * 3)


def test_vector_only_depends_on_loss_ranking():
    rng = np.random.default_rng(0)
    losses = rng.random((4, 20))
    vec = performance_vector(losses)
    assert np.all(vec > 0)
    assert vec.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(performance_vector(np.exp(3 * losses) + 2),
                               vec, atol=1e-12)


def test_tournament_affinity_by_hand():
    losses = np.array([
        # target 0: the tie case above -> P[0] = (2/3, 1/3)
        [[1., 2., 3., 4.], [1., 3., 2., 5.]],
        # target 1: source 0 always lower -> P[1] = (0.999, 0.001)
        [[0., 0., 0., 0.], [1., 1., 1., 1.]],
    ])
    off = (1 / 3 + 0.999) / 2
    expected = np.array([[2 / 3, off], [off, 0.001]])
    np.testing.assert_allclose(tournament_affinity(losses), expected,
                               atol=1e-12)
    np.testing.assert_allclose(performance_matrix(losses),
                               [[2 / 3, 1 / 3], [0.999, 0.001]], atol=1e-12)


def test_affinity_is_symmetric_and_rows_of_p_sum_to_one():
    losses = np.random.default_rng(1).random((4, 4, 30))
    p = performance_matrix(losses)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    a = tournament_affinity(losses)
    np.testing.assert_allclose(a, a.T)
    np.testing.assert_allclose(a, (p + p.T) / 2)


def test_torch_tensors_match_numpy():
    torch = pytest.importorskip('torch')
    losses = np.random.default_rng(2).random((3, 3, 12)).astype(np.float32)
    expected = tournament_affinity(losses)
    tensor = torch.from_numpy(losses).requires_grad_(True)
    result = tournament_affinity(tensor)
    assert isinstance(result, np.ndarray)
    np.testing.assert_allclose(result, expected, atol=1e-12)
    np.testing.assert_allclose(performance_vector(tensor[0]),
                               performance_vector(losses[0]), atol=1e-12)
    if torch.cuda.is_available():
        np.testing.assert_allclose(tournament_affinity(tensor.cuda()),
                                   expected, atol=1e-12)


@pytest.mark.parametrize('losses, match', [
    (np.ones(5), r'ndim=1'),
    (np.ones((2, 2, 5)), r'ndim=3'),
    (np.ones((2, 2)), r'at least 3 samples, got K=2'),
    (np.zeros((0, 5)), r'at least one source'),
])
def test_performance_vector_rejects_bad_shapes(losses, match):
    with pytest.raises(ValueError, match=match):
        performance_vector(losses)


@pytest.mark.parametrize('value, kind', [(np.nan, 'NaN'),
                                         (np.inf, 'infinite')])
def test_non_finite_losses_name_target_source_and_sample(value, kind):
    losses = np.ones((2, 2, 4))
    losses[1, 0, 3] = value
    with pytest.raises(
            ValueError,
            match=rf"target 1 \('b'\).*{kind} loss for source 0 \('a'\) "
            r'at sample 3'):
        tournament_affinity(losses, tasks=['a', 'b'])


@pytest.mark.parametrize('losses, match', [
    (np.ones((2, 5)), r'ndim=2'),
    (np.ones((2, 3, 5)), r'targets \(2\) and sources \(3\) differ'),
    (np.ones((2, 2, 2)), r'target 0.*K=2'),
])
def test_tournament_affinity_rejects_bad_shapes(losses, match):
    with pytest.raises(ValueError, match=match):
        tournament_affinity(losses)


def test_task_name_count_must_match():
    with pytest.raises(ValueError, match='3 task names'):
        tournament_affinity(np.ones((2, 2, 4)), tasks=['a', 'b', 'c'])
