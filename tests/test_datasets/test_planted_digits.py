import os.path as osp

import numpy as np
import pytest
from scipy.ndimage import rotate

from branched_mtl.datasets import PlantedDigits
from branched_mtl.datasets.factors import (build_task, check_groups,
                                           make_factors, task_labels)
from branched_mtl.datasets.planted_digits import (COLOURS, mnist_digits,
                                                  place_digit, source_pools,
                                                  stripes)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'planted_digits',
                  'resnet18-w8_all-shared_planted-digits.py')

SPECS = dict(
    digit=dict(op='class', factor='digit_0'),
    parity=dict(op='parity', factor='digit_1'),
    large=dict(op='bin', factor='digit_0', edges=[5]),
    rotation=dict(op='bin', factor='rotation_1', edges=[-30, 0, 30]),
    order=dict(op='order', factors=['digit_0', 'digit_1']),
    total=dict(op='sum', factors=['digit_0', 'digit_1']),
    left_x=dict(op='bin', factor='x_0', edges=[0]),
    bg=dict(op='class', factor='bg_colour'),
    stripes=dict(op='class', factor='stripe_orientation'))


def two_digits(split='probe', n=30, **kw):
    return PlantedDigits(SPECS, split=split, num_samples=n, num_digits=2,
                         image_size=(32, 64), **kw)


def test_labels_are_the_functions_of_their_factors():
    ds = two_digits()
    mnist_labels = mnist_digits()[1]
    assert ds.metainfo['num_classes'] == dict(
        digit=10, parity=2, large=2, rotation=4, order=2, total=19,
        left_x=2, bg=4, stripes=4)
    for i in range(len(ds)):
        info = ds[i]
        f, y = info['factors'], info['gt_label']
        d0, d1 = (int(mnist_labels[s]) for s in info['source_digits'])
        assert (f['digit_0'], f['digit_1']) == (d0, d1)
        rot = f['rotation_1']
        assert y == dict(
            digit=d0, parity=d1 % 2, large=int(d0 >= 5),
            rotation=int(rot >= -30) + int(rot >= 0) + int(rot >= 30),
            order=int(d0 > d1), total=d0 + d1, left_x=int(f['x_0'] >= 0),
            bg=f['bg_colour'], stripes=f['stripe_orientation'])
        assert -60 <= rot <= 60 and -3 <= f['x_0'] <= 3
        assert info['img'].shape == (32, 64, 3)
        assert info['img'].dtype == np.uint8
    # every class of a factor shows up: the draw is not degenerate
    assert {ds[i]['gt_label']['stripes'] for i in range(len(ds))} == \
        set(range(4))


def test_bins_put_an_edge_value_in_the_upper_bin():
    factors = make_factors(1, (-60, 60), (0.7, 1), 3, 4, 4, 2)
    task = build_task('r', dict(op='bin', factor='rotation',
                                edges=[-30, 0, 30]), factors)
    values = dict(rotation=np.array([-60, -30.0, -1e-3, 0.0, 29.9, 30, 60]))
    assert task_labels(task, values).tolist() == [0, 1, 1, 2, 2, 3, 3]


def test_images_render_the_factors():
    # one digit, no noise: colours, stripes and placement are checkable
    specs = dict(fg=dict(op='class', factor='fg_colour'))
    ds = PlantedDigits(specs, split='test', num_samples=12, noise=0.0,
                       stripe_contrast=0.5)
    digits = mnist_digits()[0]
    palette = np.array([COLOURS[c] for c in ('red', 'green', 'blue',
                                             'yellow')])
    for i in range(len(ds)):
        info = ds[i]
        f, img = info['factors'], info['img'] / 255.0
        alpha = place_digit(digits[info['source_digits'][0]], (32, 32),
                            (15.5 + f['y'], 15.5 + f['x']), f['rotation'],
                            f['scale'] * 32)
        # the image is the digit in its colour over the grating in the
        # background colour
        grating = stripes((32, 32), 45.0 * f['stripe_orientation'],
                          (4.0, 8.0)[f['stripe_period']],
                          info['stripe_phase'])[..., None]
        bg = grating * 0.5 * palette[f['bg_colour']]
        expected = bg * (1 - alpha[..., None]) + alpha[..., None] * \
            palette[f['fg_colour']]
        assert np.abs(img - expected).max() <= 0.5 / 255 + 1e-6
        assert (alpha > 0.5).sum() > 20 and 0.3 < grating.mean() < 0.7
        # the digit sits where x, y put it (MNIST centres its digits)
        rows, cols = np.nonzero(alpha > 0.5)
        assert abs(rows.mean() - (15.5 + f['y'])) < 3
        assert abs(cols.mean() - (15.5 + f['x'])) < 3


def test_rotation_and_stripes_turn_the_stated_way():
    digit = mnist_digits()[0][7]
    placed = place_digit(digit, (28, 28), (13.5, 13.5), 40, 28)
    ccw = rotate(digit, 40, reshape=False, order=1)
    cw = rotate(digit, -40, reshape=False, order=1)
    assert np.corrcoef(placed.ravel(), ccw.ravel())[0, 1] > 0.99
    assert np.corrcoef(placed.ravel(), cw.ravel())[0, 1] < 0.8
    vertical = stripes((16, 16), 0.0, 4.0, 0.3)
    assert (vertical == vertical[:1]).all()  # constant down each column
    assert (vertical[:, :12] == vertical[:, 4:]).all()  # period 4
    horizontal = stripes((16, 16), 90.0, 8.0, 0.3)
    assert (horizontal == horizontal[:, :1]).all()
    assert not (horizontal == horizontal[:1]).all()


def test_train_probe_and_test_digits_are_disjoint():
    pools = [set(p.tolist()) for p in source_pools((3000, 1000, 1000))]
    assert [len(p) for p in pools] == [3000, 1000, 1000]
    assert not (pools[0] & pools[1] or pools[0] & pools[2]
                or pools[1] & pools[2])
    for split, pool in zip(('train', 'probe', 'test'), pools):
        ds = two_digits(split, n=40)
        used = {s for i in range(len(ds)) for s in ds[i]['source_digits']}
        assert used <= pool
    # the pools do not move with the seed of the images
    other = two_digits('test', n=40, seed=5)
    assert other[0]['factors'] != two_digits('test', n=40)[0]['factors']
    used = {s for i in range(40) for s in other[i]['source_digits']}
    assert used <= pools[2]


def test_task_subset_and_determinism():
    a = two_digits(n=8, tasks=['order'])
    b = two_digits(n=8)
    assert set(a[3]['gt_label']) == {'order'}
    assert np.array_equal(a[3]['img'], b[3]['img'])
    assert a[3]['gt_label']['order'] == b[3]['gt_label']['order']


@pytest.mark.parametrize('spec, message', [
    (dict(op='class', factor='colour'), "unknown factor 'colour'"),
    (dict(op='mean', factor='digit'), "unknown op 'mean'"),
    (dict(op='bin', factor='rotation', edges=[0, 70]),
     r'bin edges \[70.0\] out of range'),
    (dict(op='bin', factor='rotation', edges=[10, 0]), 'must increase'),
    (dict(op='bin', factor='rotation'), 'needs `edges`'),
    (dict(op='class', factor='rotation'), "needs categorical factors"),
    (dict(op='order', factors=['digit']), 'needs `factors`, two factors'),
    (dict(op='class', factor='digit', edges=[3]), 'takes no'),
])
def test_bad_task_specs_name_the_value(spec, message):
    with pytest.raises(ValueError, match=message):
        PlantedDigits(dict(t=spec), num_samples=2)


def test_bad_groups_and_arguments():
    tasks = ['a', 'b', 'c']
    assert check_groups(dict(x=['a'], y=('b', 'c')), tasks) == dict(
        x=['a'], y=['b', 'c'])
    with pytest.raises(ValueError, match="task 'a' is in groups"):
        check_groups(dict(x=['a'], y=['a', 'b', 'c']), tasks)
    with pytest.raises(ValueError, match=r"tasks \['c'\] are in no group"):
        check_groups(dict(x=['a', 'b']), tasks)
    with pytest.raises(ValueError, match="unknown task 'd'"):
        check_groups(dict(x=['a', 'b', 'c', 'd']), tasks)
    spec = dict(t=dict(op='class', factor='digit'))
    with pytest.raises(ValueError, match='split must be one of'):
        PlantedDigits(spec, split='val')
    with pytest.raises(ValueError, match="colours"):
        PlantedDigits(spec, colours=['red', 'mauve'])
    with pytest.raises(ValueError, match='pool_sizes'):
        PlantedDigits(spec, pool_sizes=(4000, 1000, 1000))
    with pytest.raises(ValueError, match='unknown task'):
        PlantedDigits(spec, tasks=['u'])


@pytest.mark.parametrize('name', ['branch_planted_digits.py',
                                  'branch_planted_digits_4task.py'])
def test_shipped_config_heads_match_the_task_set(name):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(osp.dirname(CONFIG), name))
    heads = cfg.model.head.task_heads
    ds_cfg = dict(cfg.test_dataloader.dataset)
    ds_cfg.pop('type')
    ds = PlantedDigits(**dict(ds_cfg, num_samples=4))
    assert list(ds.tasks) == list(cfg.tasks) == list(heads)
    assert {t: h.num_classes for t, h in heads.items()} == {
        t: ds.metainfo['num_classes'][t] for t in ds.tasks}
    assert list(cfg.model.encoder.tasks) == list(heads)
    assert sorted(cfg.test_evaluator.task_metrics) == sorted(heads)
    # the groups a report scores against: disjoint, every task in one, and
    # at least two groups of two or more among the config's tasks
    members = [t for g in cfg.groups.values() for t in g]
    assert len(members) == len(set(members)) and set(heads) <= set(members)
    groups = [[t for t in g if t in heads] for g in cfg.groups.values()]
    groups = [g for g in groups if g]
    assert len(groups) >= (3 if len(heads) == 9 else 2)
    assert all(len(g) >= 2 for g in groups)
    # the three splits read their own pools
    assert [cfg[f'{s}_dataloader'].dataset.split
            for s in ('train', 'val', 'test')] == ['train', 'probe', 'test']


NEW_TASK_SET = '''
_base_ = [{base!r}]
# a new task set: two digits side by side, their order and sum, the
# stripes (`_delete_`: replace the base's task set, not merge into it)
specs = dict(
    order=dict(op='order', factors=['digit_0', 'digit_1']),
    total=dict(op='sum', factors=['digit_0', 'digit_1']),
    stripes=dict(op='class', factor='stripe_orientation'))
planted = dict(digits=['order', 'total'], scene=['stripes'])
tasks = list(specs)
small = dict(task_specs=dict(_delete_=True, **specs),
             groups=dict(_delete_=True, **planted), tasks=tasks,
             num_digits=2, image_size=(32, 64), num_samples=48)
train_dataloader = dict(batch_size=16, dataset=small)
val_dataloader = dict(dataset=small)
test_dataloader = dict(dataset=small)
width = 2
model = dict(
    encoder=dict(tasks=tasks,
                 backbone=dict(base_channels=width, stem_channels=width)),
    head=dict(task_heads=dict(_delete_=True, **{{
        t: dict(type='mmpretrain.LinearClsHead', num_classes=n,
                in_channels=8 * width)
        for t, n in dict(order=2, total=19, stripes=4).items()}})))
val_evaluator = dict(task_metrics=dict(_delete_=True, **{{
    t: dict(type='mmpretrain.Accuracy') for t in tasks}}))
test_evaluator = val_evaluator
iters = 4
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, begin=0,
                        end=iters)]
train_cfg = dict(max_iters=iters, val_interval=iters)
default_hooks = dict(checkpoint=dict(interval=iters))
'''


def test_a_task_set_written_in_a_config_file_trains(tmp_path):
    from branched_mtl.apis.runner import load_config, train
    path = tmp_path / 'new_task_set.py'
    path.write_text(NEW_TASK_SET.format(base=CONFIG))
    cfg = load_config(str(path), str(tmp_path / 'work'))
    runner = train(cfg)
    dataset = runner.train_dataloader.dataset
    assert dataset.metainfo['num_classes'] == dict(order=2, total=19,
                                                   stripes=4)
    labels = [dataset[i]['data_samples'] for i in range(8)]
    assert all(set(s.to_dict()) >= {'order', 'total', 'stripes'}
               for s in labels)
    assert (tmp_path / 'work' / 'iter_4.pth').is_file()
    metrics = runner.test()
    assert {k.split('/')[0] for k in metrics if k != 'score'} == {
        'order', 'total', 'stripes'}
