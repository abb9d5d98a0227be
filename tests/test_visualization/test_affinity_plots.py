import os.path as osp
import runpy

import numpy as np
import pytest

from branched_mtl.affinity import save_affinity
from branched_mtl.visualization import (mean_offdiagonal_affinity,
                                        plot_affinity_heatmaps,
                                        plot_affinity_vs_depth)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'analysis', 'plot_affinity.py')
TASKS = ['semseg', 'depth', 'normals']
LAYERS = ['layer1', 'layer2', 'layer3', 'layer4', 'head']


def make_affinity(num_layers=len(LAYERS), num_tasks=len(TASKS)):
    a = np.random.default_rng(0).random((num_layers, num_tasks, num_tasks))
    a = (a + a.transpose(0, 2, 1)) / 2
    a[:, np.arange(num_tasks), np.arange(num_tasks)] = 1.0
    return a


def assert_png(path, min_width):
    import matplotlib.image as mpimg
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    height, width = mpimg.imread(path).shape[:2]
    assert width >= min_width and height > 100


def test_mean_offdiagonal_affinity():
    a = np.array([[[1, 0.2, 0.4], [0.2, 1, 0.6], [0.4, 0.6, 1]],
                  [[5, 1, 1], [1, 5, 1], [1, 1, 5]]])
    np.testing.assert_allclose(mean_offdiagonal_affinity(a), [0.4, 1.0])
    with pytest.raises(ValueError, match='N >= 2'):
        mean_offdiagonal_affinity(np.ones((2, 1, 1)))


def test_plot_functions_write_pngs(tmp_path):
    affinity = make_affinity()
    heat = tmp_path / 'a' / 'heat.png'
    plot_affinity_heatmaps(affinity, TASKS, LAYERS, heat, title='t')
    # five splits are laid out on a 4 x 2 grid: wider than one subplot
    assert_png(heat, min_width=800)
    depth = tmp_path / 'depth.png'
    plot_affinity_vs_depth(affinity, TASKS, LAYERS, depth, label='demo')
    assert_png(depth, min_width=300)
    with pytest.raises(ValueError, match=r'shape \(5, 3, 3\), expected'):
        plot_affinity_heatmaps(affinity, TASKS[:2], LAYERS, heat)


def test_plot_tool(tmp_path, capsys):
    path = tmp_path / 'affinity.json'
    save_affinity(path, TASKS, LAYERS, 'rsa', make_affinity(), {})
    out_dir = tmp_path / 'plots'
    main = runpy.run_path(TOOL, run_name='plot_affinity')['main']
    main([str(path), '--out-dir', str(out_dir)])
    for name in ('affinity_heatmaps.png', 'affinity_vs_depth.png'):
        assert_png(out_dir / name, min_width=300)
    assert 'affinity_vs_depth.png' in capsys.readouterr().out

    (tmp_path / 'bad.json').write_text('{}')
    with pytest.raises(SystemExit, match='plot_affinity: error: .*missing'):
        main([str(tmp_path / 'bad.json'), '--out-dir', str(out_dir)])
