"""AdaShare as a way of deciding the architecture: its policy search
(``tools/search.py`` of this project) derives a network that selects or
skips each block per task, which then trains like every method's model."""
import os.path as osp

from mmengine.config import Config

from branched_mtl.pipeline.methods import BaseMethod, Decision, MethodContext
from branched_mtl.registry import METHODS

PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the checkout: `projects.adashare` imports from there
ROOT = osp.dirname(osp.dirname(PROJECT))
SEARCH_TOOL = osp.join(PROJECT, 'tools', 'search.py')


@METHODS.register_module(name='adashare')
class AdaShare(BaseMethod):
    """The network of AdaShare's select-or-skip policy (Sun et al. 2020),
    with the size target as its target; settings in
    ``adashare = dict(...)``."""
    label = 'AdaShare'
    settings_key = 'adashare'
    marker = ('tab:cyan', 'v')

    def decide(self, ctx: MethodContext) -> Decision:
        weights = (ctx.settings or {}).get('sparsity_weights')
        # the sparsity weight is AdaShare's size knob: with a list of
        # weights, the network is chosen by size alone. The search only
        # reports the size target, so with a list it is not passed: the
        # searches are then the same at every budget, and a budget sweep
        # shares them (one search per weight and seed)
        size = ([] if weights else
                ctx.size_args('--params-target', '--flops-target'))
        record, tuning = ctx.search_sized(
            SEARCH_TOOL, size, 'search.json', '--sparsity-weight', weights,
            lambda rec, unit: rec['size'][unit], cwd=ROOT, target_free=True)
        derived = Config.fromfile(record['config'])
        # only the architecture comes from the search: the schedule, data
        # and selection rule are those of every other model
        return Decision(
            encoder=derived.model.encoder.to_dict(),
            imports=list((derived.get('custom_imports') or {}).get(
                'imports', [])),
            fingerprint=record['policy'],
            cost_keys=tuning['cost_keys'],
            search=dict(policy=record['policy'],
                        size_target_met=tuning.get(
                            'size_target_met',
                            record.get('size_target_met')),
                        size_knob=tuning),
            extra=dict(policy=record['policy']))
