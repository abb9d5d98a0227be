"""Every bad input is stopped before any training, with one clear line.

A table of malformed affinity files and of command-line values, each run
through the tool a user would run; each must end in an exit status (no
exception, i.e. no traceback) with a message that names the file, option,
task or value at fault, and must leave nothing trained behind.
"""
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch

from reliability_helpers import (CONFIGS, run_main, tiny_options,
                                 write_main_config)

from branched_mtl.pipeline import branch as branch_module

TASKS = ['left', 'left_parity', 'sum']
LAYERS = ['stem', 'layer1', 'layer2', 'layer3', 'layer4']
ALL_SHARED = osp.join(CONFIGS, 'resnet18-thin_all-shared_multidigits.py')
SINGLE_LEFT = osp.join(CONFIGS,
                       'resnet18-thin_single-task-left_multidigits.py')
# a message quotes what is at fault, never all of it
MAX_MESSAGE = 2000


def affinity_doc(**changes):
    aff = np.tile(np.eye(3) * 0.5 + 0.25, (5, 1, 1))
    doc = dict(tasks=list(TASKS), layers=list(LAYERS), method='rsa',
               affinity=aff.tolist(), meta={})
    doc.update(changes)
    return doc


def with_value(value, method='rsa'):
    doc = affinity_doc(method=method)
    doc['affinity'][2][1][1] = value
    return json.dumps(doc)


def deep_json():
    head = json.dumps(affinity_doc())[:-1].rsplit('"affinity"', 1)[0]
    return head + '"affinity": ' + '[' * 100000 + ']' * 100000 + '}'


def huge_int():
    return with_value(0.5).replace('0.5', '1' + '0' * 4300, 1)


def latin1():
    return json.dumps(affinity_doc(tasks=['caf\u00e9', 'b', 'c']),
                      ensure_ascii=False).encode('latin-1')


# (file content, a phrase the error must hold)
MALFORMED = {
    'diagonal -5': (with_value(-5), r'-5 at block .layer2., tasks '
                    r'.left_parity. / .left_parity.*outside \[-1, 1\]'),
    'string value': (with_value('0.5'), r"'0.5' \(str\).*must be numbers"),
    'boolean value': (with_value(True), r'True \(bool\).*must be numbers'),
    'huge value': (with_value(1e308), r'1e\+308 at .*outside \[-1, 1\]'),
    'tournament above 1': (with_value(1.5, 'tournament'),
                           r'outside \[0, 1\]'),
    'deep nesting': (deep_json(), 'nested too deeply'),
    '4300-digit integer': (huge_int(), 'cannot parse a value'),
    'latin-1 file': (latin1(), 'not UTF-8'),
    '100,000-character task name': (
        json.dumps(affinity_doc(tasks=['x' * 100000, 'b', 'c'])),
        r'tasks\[0\] is 100000 characters long'),
}


def write(path, content):
    mode = 'wb' if isinstance(content, bytes) else 'w'
    with open(path, mode) as f:
        f.write(content)
    return str(path)


@pytest.mark.parametrize('case', list(MALFORMED))
def test_malformed_affinity_files(tmp_path, capsys, case):
    content, phrase = MALFORMED[case]
    path = write(tmp_path / 'affinity.json', content)
    from branched_mtl.affinity import load_affinity
    with pytest.raises(ValueError, match=phrase) as info:
        load_affinity(path)
    message = str(info.value)
    assert path in message and len(message) < MAX_MESSAGE, len(message)

    # the tools that read affinity files: one error line, no traceback
    cfg = write_main_config(tmp_path)
    code, err = run_main('build_tree', [path, cfg, '--alpha', '1', '--out',
                                        str(tmp_path / 'tree.py')], capsys)
    assert code == 2 and path in err and len(err) < MAX_MESSAGE, err
    assert not (tmp_path / 'tree.py').exists()
    code, err = run_main('plot_affinity', [path, '--out-dir',
                                           str(tmp_path / 'plots')], capsys)
    assert code != 0 and path in err and len(err) < MAX_MESSAGE, err
    assert not (tmp_path / 'plots').exists()


@pytest.fixture
def no_training(monkeypatch):
    """BranchJob.run replaced by a recorder: a refused job never gets
    there."""
    ran = []
    monkeypatch.setattr(branch_module.BranchJob, 'run',
                        lambda self: ran.append(self.work_dir))
    return ran


# (the probe part is drawn from the same source, so it changes alike)
TRAIN_TASKS_SUBSET = """
train_dataloader = dict(dataset=dict(dataset=dict(tasks=['left', 'sum'])))
val_dataloader = dict(dataset=dict(dataset=dict(tasks=['left', 'sum'])))
"""
EVAL_EXTRA_TASK = """
val_evaluator = dict(task_metrics=dict(right=dict(type='mmpretrain.Accuracy')))
"""

# (argv after CONFIG --work-dir WD, extra config text, phrase)
BRANCH_CASES = {
    'alpha nan': (['--alpha', 'nan'], '', r'--alpha: must be a finite'),
    'alpha inf': (['--alpha', 'inf'], '', r'--alpha: must be a finite'),
    'alpha negative': (['--alpha', '-1'], '', r'--alpha: must be a finite'),
    'top-n 0': (['--alpha', '1', '--top-n', '0'], '',
                r'--top-n: must be a whole number >= 1'),
    'gpus 0': (['--alpha', '1', '--gpus', '0'], '',
               r'--gpus: must be a whole number >= 1'),
    'random trees -1': (['--alpha', '1', '--random-trees', '-1'], '',
                        r'--random-trees: must be a whole number >= 0'),
    'budget 0.5': (['--budget', '0.5'], '',
                   r"--budget '0.5' is 0 parameters.*did you mean 50%"),
    'budget 400 digits': (['--budget', '9' * 400], '', 'too large'),
    'heads without labels': (['--alpha', '1'], TRAIN_TASKS_SUBSET,
                             r"labels for \['left', 'sum'\] only.*"
                             r"\['left_parity'\] would never be trained"),
    'evaluator task not in model': (['--alpha', '1'], EVAL_EXTRA_TASK,
                                    r"val_evaluator scores task\(s\) "
                                    r"\['right'.*\] that the model does not"),
}


@pytest.mark.parametrize('case', list(BRANCH_CASES))
def test_branch_refuses_before_training(tmp_path, capsys, no_training, case):
    argv, extra, phrase = BRANCH_CASES[case]
    cfg = write_main_config(tmp_path, extra)
    wd = tmp_path / 'wd'
    code, err = run_main('branch', [cfg, '--work-dir', wd] + argv, capsys)
    assert code == 2 and no_training == [], (code, err)
    # (argparse's usage, then) one error line that says it all
    assert sum('error' in line for line in err.splitlines()) == 1, err
    assert re.search(phrase, err.strip().splitlines()[-1]), err
    assert not wd.exists()  # nothing created, nothing trained


def test_branch_work_dir_that_is_a_file(tmp_path, capsys, no_training):
    cfg = write_main_config(tmp_path)
    wd = write(tmp_path / 'wd', 'not a folder')
    code, err = run_main('branch', [cfg, '--work-dir', wd, '--alpha', '1'],
                         capsys)
    assert code == 2 and no_training == []
    assert f'--work-dir {wd} is a file, not a folder' in err
    code, err = run_main('sweep_recombination', [
        cfg, '--work-dir', wd, '--launcher', 'none'], capsys)
    assert code == 2 and f'--work-dir {wd} is a file, not a folder' in err
    with open(wd) as f:
        assert f.read() == 'not a folder'


def test_build_tree_budget_and_out(tmp_path, capsys):
    aff = write(tmp_path / 'a.json', json.dumps(affinity_doc()))
    cfg = write_main_config(tmp_path)
    code, err = run_main('build_tree', [aff, cfg, '--budget', '0.5', '--out',
                                        str(tmp_path / 't.py')], capsys)
    assert code == 2 and "'0.5' is 0 parameters" in err, err
    blocker = write(tmp_path / 'file', '')
    out = osp.join(blocker, 'sub', 't.py')
    code, err = run_main('build_tree', [aff, cfg, '--alpha', '1', '--out',
                                        out], capsys)
    assert code == 2, err
    assert f'--out {out}: {blocker} is a file, not a folder' in err
    code, err = run_main('compute_affinity', [
        '--method', 'rsa', str(tmp_path), '--out', out], capsys)
    assert code != 0 and f'{blocker} is a file' in err, err
    code, err = run_main('plot_affinity', [aff, '--out-dir', blocker],
                         capsys)
    assert code != 0 and f'--out-dir {blocker} is a file' in err, err


class NotAllowed:
    """A type no checkpoint may hold: unpickling it could run code."""


def train_argv(cfg, wd, *extra, iters=2):
    return [cfg, '--work-dir', str(wd), *extra, '--cfg-options',
            *tiny_options(str(wd), iters=iters, ckpt_interval=iters)]


def checkpoints(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith('.pth')) \
        if osp.isdir(folder) else []


def test_train_bad_checkpoint_files(tmp_path, capsys):
    empty = write(tmp_path / 'empty.pth', b'')
    code, err = run_main('train', [
        ALL_SHARED, '--work-dir', str(tmp_path / 'a'), '--cfg-options',
        *tiny_options(str(tmp_path / 'a'), iters=2, ckpt_interval=2),
        f'load_from={empty}'], capsys)
    assert code == 2, err
    assert f'checkpoint {empty} is empty or cut short' in err, err
    assert checkpoints(tmp_path / 'a') == []

    unsafe = str(tmp_path / 'unsafe.pth')
    torch.save({'state_dict': {}, 'evil': NotAllowed()}, unsafe)
    code, err = run_main('train', train_argv(
        ALL_SHARED, tmp_path / 'b', '--resume', unsafe), capsys)
    assert code == 2, err
    assert f'checkpoint {unsafe} holds' in err and 'could run code' in err
    assert 'weights_only' not in err  # never the advice to turn it off
    assert checkpoints(tmp_path / 'b') == []

    truncated = write(tmp_path / 'cut.pth', open(unsafe, 'rb').read()[:300])
    code, err = run_main('test', [ALL_SHARED, truncated, '--work-dir',
                                  str(tmp_path / 'c'), '--cfg-options',
                                  *tiny_options(str(tmp_path / 'c'))],
                         capsys)
    assert code == 2 and f'checkpoint {truncated} is' in err, err
    assert 'truncated or corrupt' in err or 'cut short' in err, err


FIVE_TASKS_TWO_LABELLED = """
_base_ = [{base!r}]
train_dataloader = dict(dataset=dict(dataset=dict(tasks=['left', 'right'])))
"""
ONE_TASK_FIVE_METRICS = """
_base_ = [{base!r}]
tasks5 = ['left', 'right', 'left_parity', 'right_parity', 'sum']
val_evaluator = dict(_delete_=True, type='branched_mtl.MultiTaskMetric',
                     task_metrics={{t: dict(type='mmpretrain.Accuracy')
                                   for t in tasks5}})
test_evaluator = val_evaluator
"""


def test_train_and_test_refuse_mismatched_tasks(tmp_path, capsys):
    cfg = write(tmp_path / 'five.py',
                FIVE_TASKS_TWO_LABELLED.format(base=ALL_SHARED))
    code, err = run_main('train', train_argv(cfg, tmp_path / 'a'), capsys)
    assert code == 2, err
    assert ("gives labels for ['left', 'right'] only, so the head(s) of "
            "['left_parity', 'right_parity', 'sum'] would never be trained"
            in err), err
    assert checkpoints(tmp_path / 'a') == []

    cfg = write(tmp_path / 'one.py',
                ONE_TASK_FIVE_METRICS.format(base=SINGLE_LEFT))
    code, err = run_main('train', train_argv(cfg, tmp_path / 'b'), capsys)
    assert code == 2, err
    assert ("val_evaluator: its MultiTaskMetric scores task(s) ['right', "
            "'left_parity', 'right_parity', 'sum'] that the model does not "
            "predict (the model has ['left'])") in err, err
    assert checkpoints(tmp_path / 'b') == []
    # tools/test.py: refused before the checkpoint is even read
    ckpt = write(tmp_path / 'any.pth', b'')
    code, err = run_main('test', [cfg, ckpt, '--work-dir',
                                  str(tmp_path / 'c')], capsys)
    assert code == 2 and 'test_evaluator: its MultiTaskMetric scores' in err
