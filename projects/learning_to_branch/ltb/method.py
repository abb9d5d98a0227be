"""Learning to Branch as a way of deciding the architecture: its
supergraph search (``tools/search.py`` of this project) gives a tree, which
then trains like every method's tree."""
import os.path as osp

from branched_mtl.pipeline.methods import BaseMethod, Decision, MethodContext
from branched_mtl.pipeline.stages import fingerprint
from branched_mtl.registry import METHODS

PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the checkout: `projects.learning_to_branch` imports from there
ROOT = osp.dirname(osp.dirname(PROJECT))
SEARCH_TOOL = osp.join(PROJECT, 'tools', 'search.py')


@METHODS.register_module(name='ltb')
class LearningToBranch(BaseMethod):
    """The tree of a Gumbel-softmax supergraph search (Guo et al. 2020),
    under the size target as its budget; settings in ``ltb = dict(...)``."""
    label = 'Learning to Branch'
    settings_key = 'ltb'
    marker = ('tab:brown', '^')

    def decide(self, ctx: MethodContext) -> Decision:
        size = ctx.size_args('--budget', '--flops-budget')
        # the size weight is Learning to Branch's size knob: with a list
        # of weights, the tree is chosen by size alone
        record, tuning = ctx.search_sized(
            SEARCH_TOOL, size, 'search.json', '--size-weight',
            (ctx.settings or {}).get('size_weights'),
            lambda rec, unit: rec[unit], cwd=ROOT)
        return Decision(
            branches=record['branches'],
            fingerprint=fingerprint(record['branches'], size),
            cost_keys=tuning['cost_keys'],
            search=dict(branches=record['branches'], size_knob=tuning,
                        record=osp.join(ctx.work_dir, tuning['folder'],
                                        'search.json')))
