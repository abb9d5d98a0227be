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
        record = ctx.search(SEARCH_TOOL, size, 'search.json', cwd=ROOT)
        return Decision(
            branches=record['branches'],
            fingerprint=fingerprint(record['branches'], size),
            cost_keys=[ctx.key(f'{self.name}/search')],
            search=dict(branches=record['branches'],
                        record=osp.join(ctx.work_dir, 'search',
                                        'search.json')))
