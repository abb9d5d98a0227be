import numpy as np
import pytest
from scipy.stats import spearmanr

from branched_mtl.affinity import representation_dissimilarity, rsa_affinity
from branched_mtl.affinity import rsa as rsa_module

# Orthonormal basis of the zero-mean plane of R^3: a sample at angle t is
# cos(t) U + sin(t) V, zero-mean with unit norm, so the Pearson correlation
# of two samples is cos of their angle difference.
U = np.array([1., -1., 0.]) / np.sqrt(2)
V = np.array([1., 1., -2.]) / np.sqrt(6)


def samples_at(*degrees):
    t = np.deg2rad(degrees)
    return np.cos(t)[:, None] * U + np.sin(t)[:, None] * V


def random_features(seed, num_tasks=3, shape=(8, 4, 3, 3)):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(num_tasks)]


def test_rdm_by_hand():
    rdm = representation_dissimilarity(samples_at(0, 30, 90))
    c30 = np.cos(np.deg2rad(30))
    np.testing.assert_allclose(
        rdm, [[0, 1 - c30, 1], [1 - c30, 0, 0.5], [1, 0.5, 0]], atol=1e-12)


def test_rsa_by_hand():
    # Upper-triangle RDM ranks (pairs 01, 02, 12):
    #   x: angles 0, 30, 90 -> dissimilarities .13, 1, .5    -> ranks 1 3 2
    #   y: angles 0, 90, 100 -> 1, 1.17, .015                -> ranks 2 3 1
    #   z: angles 0, 60, 20 -> .5, .06, .23                  -> ranks 3 1 2
    # rho = 1 - 6 sum(d^2) / (n (n^2 - 1)) with n = 3:
    #   x/y: d = (-1, 0, 1) -> 0.5; x/z: (-2, 2, 0) -> -1; y/z: (-1, 2, -1)
    #   -> -0.5.
    x = samples_at(0, 30, 90)
    y = samples_at(0, 90, 100)[:, None, :]  # extra axis: samples flattened
    z = samples_at(0, 60, 20)
    expected = [[1, 0.5, -1], [0.5, 1, -0.5], [-1, -0.5, 1]]
    np.testing.assert_allclose(rsa_affinity([x, y, z]), expected, atol=1e-12)
    np.testing.assert_allclose(rsa_affinity([x, y]),
                               [[1, 0.5], [0.5, 1]], atol=1e-12)


def test_single_task_gives_one():
    np.testing.assert_array_equal(rsa_affinity(random_features(0, 1)),
                                  [[1.0]])


def test_matches_reference_with_chunked_conversion(monkeypatch):
    # Tiny chunks: the streamed mean/Gram computation must equal corrcoef.
    monkeypatch.setattr(rsa_module, '_CHUNK_ELEMS', 20)
    feats = random_features(1, num_tasks=4)
    feats[2] = feats[2][:, :1]  # feature shapes may differ between tasks
    iu = np.triu_indices(8, k=1)
    uppers = [1 - np.corrcoef(f.reshape(8, -1))[iu] for f in feats]
    expected = np.array([[spearmanr(a, b).statistic for b in uppers]
                         for a in uppers])
    np.testing.assert_allclose(rsa_affinity(feats), expected, atol=1e-12)


def test_invariant_to_scaling_and_offset():
    feats = random_features(2)
    base = rsa_affinity(feats)
    changed = list(feats)
    changed[1] = 7.5 * feats[1] + 3.0
    changed[2] = feats[2] - 100.0
    np.testing.assert_allclose(rsa_affinity(changed), base, atol=1e-10)


def test_identical_features_have_affinity_one():
    feats = random_features(3, num_tasks=2)
    a = rsa_affinity([feats[0], feats[0].copy(), feats[1]])
    assert a[0, 1] == pytest.approx(1.0)
    assert a[0, 2] < 0.99
    np.testing.assert_allclose(a, a.T)
    np.testing.assert_allclose(np.diag(a), 1.0)


def test_float16_and_torch_inputs_match_numpy_float64():
    torch = pytest.importorskip('torch')
    feats = [f.astype(np.float16) for f in random_features(4)]
    expected = rsa_affinity([f.astype(np.float64) for f in feats])
    np.testing.assert_allclose(rsa_affinity(feats), expected, atol=1e-12)
    tensors = [torch.from_numpy(f).requires_grad_(False) for f in feats]
    tensors[0] = tensors[0].float().requires_grad_(True)
    result = rsa_affinity(tensors)
    assert isinstance(result, np.ndarray)
    np.testing.assert_allclose(result, expected, atol=1e-12)
    if torch.cuda.is_available():
        np.testing.assert_allclose(rsa_affinity([t.cuda() for t in tensors]),
                                   expected, atol=1e-12)


def with_value(feats, task, sample, value):
    feats = [f.copy() for f in feats]
    feats[task][sample, 1, 2, 0] = value
    return feats


FEATS = random_features(5)


@pytest.mark.parametrize('features, match', [
    (np.stack(FEATS), 'expected a sequence'),
    ([], 'empty sequence'),
    ([FEATS[0], FEATS[1][:, 0, 0, 0]], r"features\[1\] \(task 'b'\).*ndim=1"),
    ([FEATS[0][:, :1, :1, :1], FEATS[1]], r"features\[0\] \(task 'a'\).*"
     'at least 2 feature values'),
    ([FEATS[0], FEATS[1][:6]], r"features\[1\] \(task 'b'\): has K=6 .*"
     'K=8'),
    ([f[:2] for f in FEATS[:2]], r"features\[0\] \(task 'a'\).*"
     'at least 3 samples, got K=2'),
    (with_value(FEATS, 1, 4, np.nan), r"task 'b'\): NaN value in sample 4"),
    (with_value(FEATS, 0, 6, -np.inf), r"task 'a'\): infinite value in "
     'sample 6'),
])
def test_bad_inputs(features, match):
    with pytest.raises(ValueError, match=match):
        tasks = ['a', 'b', 'c'][:len(features)]
        rsa_affinity(features, tasks=tasks if tasks else None)


def test_constant_sample_names_task_and_sample():
    feats = [f.copy() for f in FEATS]
    feats[2][5] = 0.25
    with pytest.raises(ValueError,
                       match=r"features\[2\] \(task 'c'\): sample\(s\) \[5\] "
                       'are constant'):
        rsa_affinity(feats, tasks=['a', 'b', 'c'])


def test_task_name_count_must_match():
    with pytest.raises(ValueError, match='3 arrays but 2 task names'):
        rsa_affinity(FEATS, tasks=['a', 'b'])


def test_rdm_with_all_equal_entries_is_rejected():
    # Three samples 120 degrees apart: every pair has Pearson -0.5, so the
    # RDM upper triangle is constant and Spearman is undefined.
    with pytest.raises(ValueError, match=r"task 'b'\): all RDM entries"):
        rsa_affinity([samples_at(0, 30, 90), samples_at(0, 120, 240)],
                     tasks=['a', 'b'])
