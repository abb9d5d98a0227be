"""TAG's own selection (Fifty et al.): the most separate networks (disjoint
groups, from the input on) that fit the size target, chosen from the TAG
method's lookahead affinity of the same seed."""
import os.path as osp

import numpy as np

from branched_mtl.registry import METHODS
from branched_mtl.utils.errors import UserError
from .base import BaseMethod, Decision, MethodContext


@METHODS.register_module(name='tag_groups')
class TagGroupsMethod(BaseMethod):
    """Networks of disjoint task groups, as TAG selects them, sized by a
    parameter budget alone (the more networks, the larger)."""
    label = "TAG's own selection"
    marker = ('tab:olive', 'h')
    # it selects from TAG's lookahead affinity
    branch_keys = ('tag',)

    def decide(self, ctx: MethodContext) -> Decision:
        from branched_mtl.affinity import load_affinity
        from branched_mtl.affinity.tag import tag_lookahead
        from branched_mtl.tree import count_tree_params
        from branched_mtl.tree.tag_selection import (select_tag_groups,
                                                     tag_groups_to_branches)
        job = ctx.job
        path = ctx.seed_dir('tag', 'affinity', 'affinity.json')
        if 'tag' not in ctx.methods or not osp.isfile(path):
            raise UserError('tag_groups selects from the TAG method\'s '
                            f'affinity ({path}): run it with tag in '
                            '--methods')
        if job.params_budget is None:
            raise UserError('tag_groups is sized by a parameter budget '
                            f'(25M, 60%), got {ctx.budget_text!r}')
        doc = load_affinity(path)
        idx = [doc['tasks'].index(t) for t in job.tasks]
        # the deepest split: the whole encoder's lookahead, as TAG selects
        z = tag_lookahead(doc, path)[-1][np.ix_(idx, idx)]
        nb = len(job.info['block_names'])
        bp, hp = job.info['block_params'], job.info['head_params']
        chosen = None
        with ctx.costs.measure(ctx.key('tag_groups/tree')):
            for k in range(len(job.tasks), 0, -1):
                sel = select_tag_groups(z, job.tasks, k, disjoint=True)
                branches = tag_groups_to_branches(sel, job.tasks, nb)
                if count_tree_params(branches, bp, hp) <= job.params_budget:
                    chosen = (k, sel, branches)
                    break
        if chosen is None:  # pragma: no cover - one network always fits
            raise UserError(f'no TAG selection fits {ctx.budget_text!r}')
        k, sel, branches = chosen
        return Decision(
            branches=branches, fingerprint=branches,
            cost_keys=['tag/affinity', ctx.key('tag_groups/tree')],
            search=dict(branches=branches, max_groups=k,
                        networks=len(branches[0]), score=sel['score']))
