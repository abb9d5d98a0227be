"""branched_mtl.registry.METHODS: a method registered from a user's module
(through the config's custom_imports) runs through tools/branch.py and
tools/analysis/compare_methods.py like the package's own; the pipeline
names no project."""
import importlib.util
import json
import os
import os.path as osp
import re
import sys

import pytest
from mmengine.config import Config

from branched_mtl.pipeline.methods import (REFERENCES, AffinityMethod,
                                           build_method, method_label,
                                           method_names)
from branched_mtl.tree import count_relabellings
from branched_mtl.utils.errors import UserError

from test_branch import THREE, TINY  # noqa: I100  (tests/test_pipeline)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TASKS = ['left', 'left_parity', 'sum']
# every block shared but the last, where sum goes alone: its
# relabellings put left or left_parity alone instead
TOY_TREE_LAST = [['left', 'left_parity'], ['sum']]

# a user's module, imported through custom_imports
TOY_MODULE = '''
from branched_mtl.pipeline.methods import BaseMethod, Decision
from branched_mtl.registry import METHODS


@METHODS.register_module(name='toy_last_apart', force=True)
class ToyLastApart(BaseMethod):
    """Shares every block but the last, where `sum` goes alone."""
    label = 'toy: sum apart at the end'
    settings_key = 'toy'

    def decide(self, ctx):
        job = ctx.job
        # the single-task models are trained before any method decides
        assert all(f'single_task/{t}' in job.results for t in job.tasks)
        nb = len(job.info['block_names'])
        key = ctx.key(f'{self.name}/search')
        with ctx.costs.measure(key):
            tree = [[list(job.tasks)] for _ in range(nb - 1)]
            tree.append([['left', 'left_parity'], ['sum']])
        return Decision(branches=tree, fingerprint=tree, cost_keys=[key],
                        search=dict(seed=ctx.seed, budget=ctx.budget_text,
                                    settings=ctx.settings))
'''

IMPORTS = """
custom_imports = dict(imports=['toy_method_plugin'],
                      allow_failed_imports=False)
toy = dict(note='the method\\'s own settings')
"""


def _tool(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def forget_new_methods():
    """The registry is one per process: a method a test registers is taken
    out again, so that later tests' default method lists do not run it."""
    from branched_mtl.registry import METHODS
    before = set(METHODS.module_dict)
    yield
    for name in set(METHODS.module_dict) - before:
        METHODS.module_dict.pop(name)
    # and their modules: importing one again registers it again
    for module in [m for m in sys.modules if m.startswith(
            'toy_method_plugin')]:
        del sys.modules[module]


@pytest.fixture
def toy_config(tmp_path, monkeypatch):
    plugin = tmp_path / 'plugin'
    plugin.mkdir()
    (plugin / 'toy_method_plugin.py').write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(plugin))
    cfg = tmp_path / 'toy.py'
    cfg.write_text(TINY + THREE + IMPORTS)
    return str(cfg)


def _record(work_dir, name):
    with open(osp.join(work_dir, 'stages',
                       name.replace('/', '__') + '.json')) as f:
        return json.load(f)['result']


def test_the_package_registers_its_methods():
    names = method_names()
    assert names[:4] == ['rsa', 'tournament', 'tag', 'tag_groups']
    for name in ('rsa', 'tournament', 'tag'):
        assert isinstance(build_method(name), AffinityMethod)
    assert not isinstance(build_method('tag_groups'), AffinityMethod)
    assert method_label('rsa') == 'RSA tree'
    assert method_label('single_task') == 'single-task'
    with pytest.raises(UserError, match=r"--affinity: unknown method "
                       r"'nosuch'; registered: rsa, tournament, tag"):
        build_method('nosuch', '--affinity')


def test_toy_method_through_branch_and_compare(tmp_path, toy_config,
                                               capsys):
    """... and a second method whose tree is a random tree of the first
    (same config and seed, so the same model) takes that model's result:
    it is trained and tested once, whatever stage recorded it."""
    plugin = tmp_path / 'plugin' / 'toy_method_plugin.py'
    plugin.write_text(plugin.read_text() + TOY_MODULE.replace(
        "name='toy_last_apart'", "name='toy_left_apart'").replace(
        'ToyLastApart', 'ToyLeftApart').replace(
        "[['left', 'left_parity'], ['sum']]", "[['left'], "
        "['left_parity', 'sum']]"))
    branch = _tool(osp.join(ROOT, 'tools', 'branch.py'), 'branch_tool_toy')
    wd = str(tmp_path / 'branch')
    assert branch.main([toy_config, '--work-dir', wd, '--affinity',
                        'toy_last_apart', '--budget', '80%',
                        '--random-trees', '0']) == 0, capsys.readouterr().err
    tree = _record(wd, 'tree')
    nb = len(tree['branches'])
    expected = [[TASKS]] * (nb - 1) + [TOY_TREE_LAST]
    assert tree['branches'] == expected
    # the method's own settings reach it; no affinity was measured
    assert tree['search']['settings'] == dict(note="the method's own "
                                              'settings')
    assert not osp.exists(osp.join(wd, 'stages', 'affinity.json'))
    written = Config.fromfile(osp.join(wd, 'tree', 'branched.py'))
    assert written.model.encoder.branches == expected
    assert _record(wd, 'branched')['branches'] == expected
    report = open(osp.join(wd, 'report.md')).read()
    assert 'decided by the method `toy_last_apart`' in report

    # the same method in a comparison, beside all-shared
    compare = _tool(osp.join(ROOT, 'tools', 'analysis',
                             'compare_methods.py'), 'compare_tool_toy')
    cw = str(tmp_path / 'compare')
    assert compare.main([toy_config, '--work-dir', cw, '--budget', '80%',
                         '--methods',
                         'all_shared,toy_last_apart,toy_left_apart',
                         '--random-trees', '2']) == 0, \
        capsys.readouterr().err
    out = capsys.readouterr().out
    with open(osp.join(cw, 'comparison.json')) as f:
        doc = json.load(f)
    seed = doc['per_seed']['0']
    assert set(seed) == {'single_task', 'all_shared', 'toy_last_apart',
                         'toy_left_apart'}
    toy = seed['toy_last_apart']
    assert toy['status'] == 'done', toy
    assert set(toy['models']) == {'tree', 'random/0', 'random/1'}
    assert toy['models']['tree']['branches'] == expected
    for k in (0, 1):
        rand = toy['models'][f'random/{k}']['branches']  # a relabelling
        assert rand != expected and rand[:-1] == expected[:-1]
        assert sorted(len(g) for g in rand[-1]) == [1, 2]
    # both relabellings are drawn (there are two), so one is the second
    # method's tree (in the order random trees are drawn in: another
    # order of the groups builds the modules in another order, so another
    # model): the same model, one training, its result under both names
    records = {n: _record(osp.join(cw, 'seed_0'), f'toy_last_apart/{n}')
               for n in ('tree', 'random/0', 'random/1')}
    left = _record(osp.join(cw, 'seed_0'), 'toy_left_apart/tree')
    assert left['branches'][-1] == [['left'], ['left_parity', 'sum']]
    twin = [n for n, r in records.items()
            if r['branches'] == left['branches']]
    assert twin and twin[0].startswith('random/'), records
    assert left == records[twin[0]] and left['model']
    assert not osp.isdir(osp.join(cw, 'seed_0', 'toy_left_apart', 'tree'))
    assert re.search(r'toy_left_apart/tree: the same model as '
                     r'\S*toy_last_apart__' + twin[0].replace('/', '__'),
                     out), out
    # ... and its relabellings are the first method's tree and its other
    # random tree: nothing of the second method trained at all
    assert not osp.isdir(osp.join(cw, 'seed_0', 'toy_left_apart'))
    assert len({r['model'] for r in records.values()}) == 3
    assert toy['search'] == dict(seed=0, budget='80%', settings=dict(
        note="the method's own settings"))
    assert toy['cost']['parts'] == ['toy_last_apart/search']
    assert toy['cost']['missing'] == []
    # the method's settings are kept out of the config the models train
    # with, and written beside it for the method
    assert 'toy' not in Config.fromfile(osp.join(cw, 'config.py'))
    assert Config.fromfile(osp.join(cw, 'toy_last_apart_config.py')).toy
    md = open(osp.join(cw, 'comparison.md')).read()
    assert 'toy: sum apart at the end' in md
    assert count_relabellings(expected, TASKS) == 3


def test_the_pipeline_names_no_project():
    """Projects depend on the package, never the other way round: the
    package's code names none of them, as a method, module or path (they
    register through custom_imports; prose may cite the papers)."""
    pattern = re.compile(r'\bltb\b|\badashare\b|learning_to_branch|'
                         r'\bprojects[./]')
    found = []
    for folder, _, files in os.walk(osp.join(ROOT, 'branched_mtl')):
        for name in files:
            if name.endswith('.py'):
                path = osp.join(folder, name)
                for i, line in enumerate(open(path), 1):
                    code = line.split('#', 1)[0]
                    if pattern.search(code):
                        found.append(f'{osp.relpath(path, ROOT)}:{i}: '
                                     f'{line.strip()}')
    assert not found, '\n'.join(found)
    assert REFERENCES == ('single_task', 'all_shared')


def test_registered_methods_are_forgotten_after_each_test():
    assert 'toy_last_apart' not in method_names()
    assert 'toy_by_option' not in method_names()


def test_cfg_options_can_import_a_method(tmp_path, monkeypatch):
    """``--cfg-options custom_imports.imports=[...]`` registers a method
    for a config that imports none."""
    from branched_mtl.pipeline.compare import Comparison
    plugin = tmp_path / 'plugin'
    plugin.mkdir()
    (plugin / 'toy_method_plugin_opts.py').write_text(
        TOY_MODULE.replace("name='toy_last_apart'", "name='toy_by_option'"))
    monkeypatch.syspath_prepend(str(plugin))
    cfg = tmp_path / 'plain.py'
    cfg.write_text(TINY + THREE)
    with pytest.raises(UserError, match="unknown method\\(s\\) "
                       "\\['toy_by_option'\\]"):
        Comparison(str(cfg), str(tmp_path / 'a'), [0], budget='80%',
                   methods=['toy_by_option'])
    job = Comparison(str(cfg), str(tmp_path / 'b'), [0], budget='80%',
                     methods=['toy_by_option'], cfg_options={
                         'custom_imports': dict(
                             imports=['toy_method_plugin_opts'])})
    assert job.methods == ['single_task', 'toy_by_option']


def test_method_imports_leave_the_models_fingerprints(tmp_path,
                                                     monkeypatch):
    """Adding a project's method to a comparison retrains nothing: the
    modules that only register methods are left out of the config the
    models train with (and so of their fingerprints); other imports stay."""
    from branched_mtl.pipeline.compare import Comparison
    from branched_mtl.pipeline.stage_runner import config_text
    plugin = tmp_path / 'plugin'
    plugin.mkdir()
    (plugin / 'toy_method_plugin_fp.py').write_text(
        TOY_MODULE.replace("name='toy_last_apart'", "name='toy_fp'"))
    (plugin / 'toy_plain_module.py').write_text('VALUE = 1\n')
    monkeypatch.syspath_prepend(str(plugin))
    cfg = tmp_path / 'plain.py'
    cfg.write_text(TINY + THREE)
    plain = Comparison(str(cfg), str(tmp_path / 'a'), [0], budget='80%',
                       methods=['all_shared'])
    with_method = Comparison(
        str(cfg), str(tmp_path / 'b'), [0], budget='80%',
        methods=['toy_fp'], cfg_options={'custom_imports': dict(
            imports=['branched_mtl', 'toy_method_plugin_fp'])})
    assert with_method.methods == ['single_task', 'toy_fp']
    assert with_method.cfg.custom_imports.imports == ['branched_mtl']
    assert config_text(with_method.cfg) == config_text(plain.cfg)
    # a module that registers no method may change how a model trains
    other = Comparison(
        str(cfg), str(tmp_path / 'c'), [0], budget='80%',
        methods=['toy_fp'], cfg_options={'custom_imports': dict(
            imports=['branched_mtl', 'toy_method_plugin_fp',
                     'toy_plain_module'])})
    assert other.cfg.custom_imports.imports == ['branched_mtl',
                                                'toy_plain_module']
    assert config_text(other.cfg) != config_text(plain.cfg)


def test_a_methods_record_key_holds_only_the_branch_settings_it_reads(
        tmp_path):
    """The tournament's sweep settings rerun the tournament, not the RSA
    or TAG trees; TAG's settings rerun TAG and its own selection, not the
    tournament; a setting every method reads (the probe) reruns them all."""
    from branched_mtl.pipeline.compare import Comparison
    from branched_mtl.pipeline.methods import branch_settings
    branch = dict(probe=dict(num_samples=64), sweep=dict(iters=60),
                  tag=dict(iters=100), random_trees=3)
    assert branch_settings(branch, 'rsa') == dict(
        probe=dict(num_samples=64), random_trees=3)
    assert branch_settings(branch, 'tournament') == dict(
        probe=dict(num_samples=64), sweep=dict(iters=60), random_trees=3)
    for method in ('tag', 'tag_groups'):
        assert branch_settings(branch, method) == dict(
            probe=dict(num_samples=64), tag=dict(iters=100),
            random_trees=3)
    assert branch_settings(None, 'rsa') is None
    cfg = tmp_path / 'plain.py'
    cfg.write_text(TINY + THREE)
    methods = ['rsa', 'tournament', 'tag', 'tag_groups']

    def keys(**options):
        job = Comparison(str(cfg), str(tmp_path / 'w'), [0], budget='80%',
                         methods=methods, cfg_options=options)
        return {m: job._inputs(m, 0) for m in methods}

    base = keys()
    sweep = keys(**{'branch.sweep.iters': 7})
    assert [m for m in methods if sweep[m] != base[m]] == ['tournament']
    tag = keys(**{'branch.tag.iters': 7})
    assert [m for m in methods if tag[m] != base[m]] == ['tag', 'tag_groups']
    probe = keys(**{'branch.probe.num_samples': 16})
    assert all(probe[m] != base[m] for m in methods)

    # a record under the older key (all of `branch`) is found and re-keyed,
    # not rerun; a record of other inputs is not taken for it
    from branched_mtl.pipeline.stages import StageBook
    job = Comparison(str(cfg), str(tmp_path / 'w'), [0], budget='80%',
                     methods=methods)
    book = StageBook(str(tmp_path / 'book'))
    wide = job._inputs('rsa', 0, whole_branch=True)
    assert wide != job._inputs('rsa', 0)
    book.finish('rsa', wide, dict(status='done', mean=1.0))

    def rerun():
        raise AssertionError('a recorded method ran again')

    assert job._method(book, 'rsa', 0, rerun) == dict(status='done',
                                                      mean=1.0)
    assert book.done('rsa', job._inputs('rsa', 0)) == dict(status='done',
                                                           mean=1.0)
    book.finish('tag', 'other inputs', dict(status='done', mean=2.0))
    assert job._method(book, 'tag', 0, lambda: dict(mean=3.0)) == dict(
        status='done', mean=3.0)


def test_size_args_follow_the_budget_unit():
    """A search tool gets the parsed budget under the option of its unit."""
    from types import SimpleNamespace

    from branched_mtl.pipeline.methods import MethodContext
    from branched_mtl.tree.budget import Budget

    def ctx(budget):
        return MethodContext(
            job=SimpleNamespace(budget=budget, seed=0), name='m',
            work_dir='w', settings=None, settings_config='c.py',
            budget_text=None if budget is None else str(budget),
            alpha=None, costs=None, key=str, seed_dir=str, methods=['m'],
            inputs='fp')

    assert ctx(Budget(796309, 'params')).size_args(
        '--budget', '--flops-budget') == ['--budget', '796309']
    assert ctx(Budget(3500000000, 'flops')).size_args(
        '--budget', '--flops-budget') == ['--flops-budget', '3500000000']
    assert ctx(None).size_args('--budget', '--flops-budget') == []


# a search tool whose network shrinks as its knob grows; every run is
# counted in runs.txt beside its work dir
KNOB_TOOL = '''
import argparse, json, os, os.path as osp
p = argparse.ArgumentParser()
p.add_argument('config'); p.add_argument('--work-dir')
p.add_argument('--seed', type=int); p.add_argument('--budget')
p.add_argument('--flops')
p.add_argument('--knob', type=float, default=0.0)
a = p.parse_args()
os.makedirs(a.work_dir, exist_ok=True)
with open(osp.join(osp.dirname(a.work_dir), 'runs.txt'), 'a') as f:
    f.write(f'{a.knob}\\n')
size = {0.0: 1000, 1.0: 500, 3.0: 250, 9.0: 100, 5.0: 250}[a.knob]
json.dump(dict(size=dict(params=size, flops=2 * size), knob=a.knob),
          open(osp.join(a.work_dir, 'rec.json'), 'w'))
'''


def test_search_sized_chooses_by_size_alone(tmp_path):
    """One search per knob value, kept when done; the largest network
    within the target (ties to the value listed first); the smallest
    where none fits; bad knob values refused."""
    from types import SimpleNamespace

    from branched_mtl.pipeline.costs import CostBook
    from branched_mtl.pipeline.methods import MethodContext
    from branched_mtl.tree.budget import Budget
    tool = tmp_path / 'tool.py'
    tool.write_text(KNOB_TOOL)
    (tmp_path / 'settings.py').write_text('x = 1\n')

    def run(budget, values, folder):
        ctx = MethodContext(
            job=SimpleNamespace(budget=budget, seed=0), name='peer',
            work_dir=str(tmp_path / folder), settings=None,
            settings_config=str(tmp_path / 'settings.py'),
            budget_text=str(budget), alpha=None,
            costs=CostBook(str(tmp_path / folder / 'costs')), key=str,
            seed_dir=str, methods=['peer'], inputs='fp', log=lambda m: None)
        return ctx.search_sized(str(tool),
                                ctx.size_args('--budget', '--flops'),
                                'rec.json', '--knob', values,
                                lambda rec, unit: rec['size'][unit])

    def runs(folder):
        return (tmp_path / folder / 'runs.txt').read_text().split()

    rec, tuning = run(Budget(400, 'params'), [0, 1, 3, 5, 9], 'a')
    assert rec['knob'] == 3.0 and tuning['chosen'] == 3.0  # 250 <= 400
    assert tuning['size_target_met'] is True
    assert [t['size'] for t in tuning['tried']] == [1000, 500, 250, 250, 100]
    assert len(tuning['cost_keys']) == 5 and tuning['folder'].endswith('_3')
    assert runs('a') == ['0.0', '1.0', '3.0', '5.0', '9.0']
    # a second call finds every search done: nothing runs again
    assert run(Budget(400, 'params'), [0, 1, 3, 5, 9], 'a')[0] == rec
    assert len(runs('a')) == 5
    # nothing fits 50: the smallest network, flagged
    rec, tuning = run(Budget(50, 'params'), [1, 9, 0], 'b')
    assert tuning['chosen'] == 9.0 and tuning['size_target_met'] is False
    # the unit of the budget picks the size measured (FLOPs: twice)
    assert run(Budget(1000, 'flops'), [0, 1, 3], 'c')[1]['chosen'] == 1.0
    # no values: one search at the tool's own knob, in `search/`
    rec, tuning = run(Budget(400, 'params'), None, 'd')
    assert rec['knob'] == 0.0 and tuning['folder'] == 'search'
    with pytest.raises(UserError, match='--knob values'):
        run(Budget(400, 'params'), [1, 1.0], 'e')


def test_search_sized_shares_target_free_searches_over_budgets(tmp_path):
    """A search that does not read the size target runs once per knob value
    and seed in the seed's method folder; every budget of the sweep chooses
    from those searches by its own size, and counts their cost under the
    same (untagged) names. Without seed inputs (one budget) nothing is
    shared."""
    from types import SimpleNamespace

    from branched_mtl.pipeline.costs import CostBook
    from branched_mtl.pipeline.methods import MethodContext
    from branched_mtl.tree.budget import Budget
    tool = tmp_path / 'tool.py'
    tool.write_text(KNOB_TOOL)
    (tmp_path / 'settings.py').write_text('x = 1\n')
    seed = tmp_path / 'seed_0'
    costs = CostBook(str(seed / 'compare'))

    def run(size, tag, seed_inputs='seed fp'):
        budget = Budget(size, 'params')
        ctx = MethodContext(
            job=SimpleNamespace(budget=budget, seed=0), name='peer',
            work_dir=str(seed / tag / 'peer'), settings=None,
            settings_config=str(tmp_path / 'settings.py'),
            budget_text=str(size), alpha=None, costs=costs,
            key=lambda n: f'{tag}/{n}',
            seed_dir=lambda *parts: str(seed.joinpath(*parts)),
            methods=['peer'], inputs=f'fp at {size}', log=lambda m: None,
            seed_inputs=seed_inputs)
        return ctx.search_sized(str(tool), [], 'rec.json', '--knob',
                                [0, 1, 3], lambda rec, unit:
                                rec['size'][unit], target_free=True)

    rec, tuning = run(600, 'budget_a')
    assert tuning['chosen'] == 1.0
    rec, tuning = run(300, 'budget_b')
    assert tuning['chosen'] == 3.0 and rec['knob'] == 3.0
    # three searches in all, in the seed's folder, not the budgets'
    runs = seed / 'peer' / 'runs.txt'  # the tool writes it beside its dir
    assert runs.read_text().split() == ['0.0', '1.0', '3.0']
    assert (seed / 'peer' / 'search_knob_3' / 'rec.json').is_file()
    assert not (seed / 'budget_b' / 'peer' / 'search_knob_3').exists()
    assert tuning['cost_keys'] == ['peer/search_knob_0', 'peer/search_knob_1',
                                   'peer/search_knob_3']
    # one budget (no seed inputs): the searches stay in the method folder
    run(300, 'budget_c', seed_inputs=None)
    assert (seed / 'budget_c' / 'peer' / 'runs.txt').read_text().split() \
        == ['0.0', '1.0', '3.0']
    assert len(runs.read_text().split()) == 3


def test_toy_method_in_a_budget_sweep(tmp_path, toy_config, capsys):
    """A method that decides by itself runs at every budget of a sweep:
    the jobs of the budgets after the first see the single-task models
    (trained once, on the first budget's job) that its decision and the
    selection of its models' checkpoints need."""
    compare = _tool(osp.join(ROOT, 'tools', 'analysis',
                             'compare_methods.py'), 'compare_tool_sweep')
    cw = str(tmp_path / 'sweep')
    assert compare.main([toy_config, '--work-dir', cw, '--budgets',
                         '40%,80%', '--methods', 'all_shared,toy_last_apart',
                         '--random-trees', '0']) == 0, \
        capsys.readouterr().err
    with open(osp.join(cw, 'comparison.json')) as f:
        doc = json.load(f)
    budgets = doc['per_seed']['0']['budgets']
    assert set(budgets) == {'budget_40pct', 'budget_80pct'}
    for tag, part in budgets.items():
        toy = part['toy_last_apart']
        assert toy['status'] == 'done', (tag, toy)
        assert toy['search']['budget'] == tag[len('budget_'):-3] + '%'
        # its model kept the checkpoint of best Δm at a probe step
        rec = _record(osp.join(cw, 'seed_0'), f'{tag}/toy_last_apart/tree')
        assert rec['curve'] and osp.isfile(rec['checkpoint'])
    for part in doc['by_budget'].values():
        assert not part['failed']
        assert 'toy_last_apart' in part['paired']
    # the method's tree is the same at both budgets (same config, seed):
    # one model, trained and tested once, recorded under both names
    trees = [_record(osp.join(cw, 'seed_0'), f'{tag}/toy_last_apart/tree')
             for tag in ('budget_40pct', 'budget_80pct')]
    assert trees[0] == trees[1]
    assert '/budget_40pct/' in trees[0]['checkpoint']
    assert not osp.isdir(osp.join(cw, 'seed_0', 'budget_80pct',
                                  'toy_last_apart', 'tree'))
    assert ('budget_80pct/toy_last_apart/tree: the same model as '
            'budget_40pct/toy_last_apart/tree') in capsys.readouterr().out


def test_tournament_sweeps_the_splits_its_budget_can_branch_at():
    """sweep_splits: the deep splits only where the budget cannot branch
    higher; every split without a budget; the widest budget of a sweep."""
    from types import SimpleNamespace

    from branched_mtl.pipeline.methods.tournament import sweep_splits
    from branched_mtl.tree.budget import Budget
    sizes = [10, 20, 40, 80, 160]
    info = dict(block_names=['stem', 'layer1', 'layer2', 'layer3',
                             'layer4'], block_params=sizes, head_params=5,
                tasks=['a', 'b'], pools=[5, 4, 3, 2, 1])
    shared = sum(sizes) + 5

    def job(*budgets, sweep=None):
        return SimpleNamespace(info=info, budget=budgets[0],
                               affinity_budgets=sweep)

    assert sweep_splits(job(None)) is None
    assert sweep_splits(job(Budget(shared + 160, 'params'))) == [5]
    assert sweep_splits(job(Budget(shared + 240, 'params'))) == [4, 5]
    assert sweep_splits(job(Budget(shared, 'params'))) == [5]
    # it can branch at the stem: every split, as without a budget
    assert sweep_splits(job(Budget(shared + 310, 'params'))) is None
    # a budget sweep measures once per seed, for its widest budget
    tight, wider = Budget(shared + 160, 'params'), Budget(shared + 280,
                                                           'params')
    assert sweep_splits(job(tight, sweep=[tight, wider])) == [3, 4, 5]


@pytest.mark.parametrize('sweep,flagged', [
    (dict(mode='shared-bottom'), None),
    (dict(mode='shared-bottom', iters=1200, data_fraction=1.0), None),
    (dict(iters=60, data_fraction=0.25), '60 of the schedule\'s 1200 '
     'iterations, 25% of the training data'),
    (dict(iters=1200, data_fraction=0.5), '50% of the training data'),
    (dict(iters=300), '300 of the schedule\'s 1200 iterations'),
])
def test_tournament_flags_a_sweep_shorter_than_the_papers(sweep, flagged):
    """A cut of iterations or data (not validated) gets a note naming the
    cut; the paper's setting (no cut, or an explicit full one) none."""
    from types import SimpleNamespace
    job = SimpleNamespace(settings=dict(sweep=sweep),
                          cfg=Config(dict(train_cfg=dict(max_iters=1200))))
    notes = build_method('tournament').notes(job)
    if flagged is None:
        assert notes == []
    else:
        assert len(notes) == 1 and f'({flagged})' in notes[0]
        assert 'preview' in notes[0]
    # a method without caveats says nothing
    assert build_method('rsa').notes(job) == []


def test_shipped_configs_sweep_as_the_paper_unless_they_say_preview():
    """The main jobs' configs run the paper's setting; the two demo
    configs that keep a cut say so in a comment."""
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    for name in ('multidigits/branch_multidigits.py',
                 'planted_digits/branch_planted_digits.py',
                 'synthetic_scenes/branch_synthetic_scenes.py'):
        sweep = Config.fromfile(osp.join(root, 'configs', name)).branch.sweep
        assert 'iters' not in sweep and 'data_fraction' not in sweep, name
    for name in ('multidigits/branch_multidigits_demo.py',
                 'synthetic_scenes/branch_synthetic_scenes_cpu.py'):
        path = osp.join(root, 'configs', name)
        assert Config.fromfile(path).branch.sweep.data_fraction < 1
        assert 'preview' in open(path).read(), name

