"""The torch path of RSA (any device) gives the numpy/scipy path's numbers
and errors, ties in the Spearman ranks included."""
import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from branched_mtl.affinity import rsa_affinity
from branched_mtl.affinity.rsa import average_ranks, rdm_upper_triangle

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def random_features(seed, num_tasks=4, shape=(12, 5, 3, 3)):
    rng = np.random.default_rng(seed)
    # ReLU-like features with task-dependent structure, as block outputs
    base = rng.standard_normal(shape)
    return [np.maximum(base * (t + 1) + rng.standard_normal(shape), 0) + 0.01
            * rng.standard_normal(shape) for t in range(num_tasks)]


@pytest.mark.parametrize('device', DEVICES)
def test_torch_path_equals_scipy(device):
    feats = random_features(0)
    expected = rsa_affinity(feats)
    got = rsa_affinity(feats, device=device)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # torch tensors in, in float16 as AffinityHook stores them
    half = [torch.from_numpy(f.astype(np.float16)).to(device) for f in feats]
    expected_half = rsa_affinity([f.cpu().numpy() for f in half])
    np.testing.assert_allclose(rsa_affinity(half, device=device),
                               expected_half, rtol=0, atol=1e-12)
    # the test itself would catch a wrong answer: tasks differ
    assert np.abs(expected - np.eye(len(feats))).max() > 0.05


@pytest.mark.parametrize('device', DEVICES)
def test_rdm_triangle_equals_numpy(device):
    feat = random_features(1, num_tasks=1, shape=(9, 40))[0]
    ref = rdm_upper_triangle(feat)
    got = rdm_upper_triangle(feat, device=device)
    assert got.device.type == device and got.dtype == torch.float64
    np.testing.assert_allclose(got.cpu().numpy(), ref, rtol=0, atol=1e-14)
    assert ref.shape == (9 * 8 // 2, )


def test_average_ranks_ties_like_scipy():
    rng = np.random.default_rng(3)
    for values in (rng.integers(0, 4, 50).astype(float),  # many ties
                   np.array([2., 2., 2., 2.]),  # one tie group only
                   np.array([3., 1., 2., 1., 3., 3.]),
                   rng.standard_normal(30)):  # no ties
        np.testing.assert_array_equal(
            average_ranks(torch.from_numpy(values)).numpy(),
            rankdata(values, method='average'))


def test_ties_in_rdm_match_scipy():
    # Binary features of few values and duplicated samples: many exactly
    # equal RDM entries (integer Gram matrices are exact in float64, so both
    # paths see the same ties). Ordinal ranks would give other numbers.
    rng = np.random.default_rng(5)
    feats = []
    for _ in range(3):
        f = rng.integers(0, 2, (10, 6)).astype(float)
        f[:, 0], f[:, 1] = 0, 1  # no constant sample
        f[7] = f[2]
        feats.append(f)
    triangles = [rdm_upper_triangle(f) for f in feats]
    assert max(len(t) - len(np.unique(t)) for t in triangles) >= 10
    expected = rsa_affinity(feats)
    np.testing.assert_allclose(rsa_affinity(feats, device='cpu'), expected,
                               rtol=0, atol=1e-12)

    # ordinal (first-come) ranks instead of average ones change the result
    def ordinal(t):
        ranks = rankdata(t, method='ordinal')
        return (ranks - ranks.mean()) / np.linalg.norm(ranks - ranks.mean())
    r = [ordinal(t) for t in triangles]
    assert abs(r[0] @ r[1] - expected[0, 1]) > 1e-6


def test_two_tasks_and_one_task():
    feats = random_features(2, num_tasks=2)
    np.testing.assert_allclose(rsa_affinity(feats, device='cpu'),
                               rsa_affinity(feats), atol=1e-12)
    assert rsa_affinity(feats[:1], device='cpu').tolist() == [[1.0]]


def test_memmap_float16_streams_in_chunks(tmp_path, monkeypatch):
    from branched_mtl.affinity import rsa as rsa_module
    feats = random_features(4, num_tasks=3, shape=(10, 8, 4, 4))
    paths = []
    for i, f in enumerate(feats):
        paths.append(tmp_path / f'{i}.npy')
        np.save(paths[-1], f.astype(np.float16))
    expected = rsa_affinity([np.load(p).astype(np.float64) for p in paths])
    # tiny chunks, so that several column chunks are summed
    monkeypatch.setattr(rsa_module, '_CHUNK_ELEMS', 100)
    got = rsa_affinity([np.load(p, mmap_mode='r') for p in paths],
                       device='cpu')
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


FEATS = random_features(6, num_tasks=3)


def with_value(index, value):
    feats = [f.copy() for f in FEATS]
    feats[1][index] = value
    return feats


@pytest.mark.parametrize('features, match', [
    (with_value((4, 1, 2, 0), np.nan), r"task 'b'\): NaN value in sample 4 "
     r'\(flattened feature index 15\)'),
    (with_value((6, 0, 0, 1), -np.inf), r"task 'b'\): infinite value in "
     'sample 6'),
    (with_value((5, ), 0.25), r"task 'b'\): sample\(s\) \[5\] are constant"),
    ([f[:2] for f in FEATS], 'at least 3 samples, got K=2'),
    ([FEATS[0], FEATS[1][:, 0, 0, 0], FEATS[2]], r"task 'b'\).*ndim=1"),
    ([FEATS[0], FEATS[1][:6], FEATS[2]], r"task 'b'\): has K=6"),
])
@pytest.mark.parametrize('device', [None] + DEVICES)
def test_same_errors_on_both_paths(features, match, device):
    with pytest.raises(ValueError, match=match):
        rsa_affinity(features, tasks=['a', 'b', 'c'], device=device)


def test_complex_tensor_rejected():
    feats = [torch.from_numpy(f) for f in FEATS]
    feats[2] = feats[2].to(torch.complex64)
    with pytest.raises(ValueError, match=r"task 'c'\): unsupported dtype"):
        rsa_affinity(feats, tasks=['a', 'b', 'c'], device='cpu')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_tensors_use_the_gpu_by_default(monkeypatch):
    from branched_mtl.affinity import rsa as rsa_module
    seen = []
    real = rsa_module._rdm_torch

    def spy(features, name, device):
        seen.append(torch.device(device).type)
        return real(features, name, device)
    monkeypatch.setattr(rsa_module, '_rdm_torch', spy)
    feats = [torch.from_numpy(f).cuda() for f in FEATS]
    np.testing.assert_allclose(rsa_affinity(feats), rsa_affinity(FEATS),
                               atol=1e-12)
    assert seen == ['cuda'] * 3
