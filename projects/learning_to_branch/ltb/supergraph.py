"""The tree-structured supergraph of Learning to Branch (Guo et al., 2020).

The blocks are those :func:`branched_mtl.models.split_backbone` gives for a
stock backbone, so the searched tree can be written in ``branches`` format
and trained by :class:`branched_mtl.models.BranchedEncoder` as it is.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from branched_mtl.models.encoders.backbone_blocks import (block_feature,
                                                           frozen_parameters,
                                                           split_backbone)
from branched_mtl.models.encoders.branched_encoder import init_block_copies
from branched_mtl.registry import MODELS, build_stock

# every architecture parameter's name holds this, so the weight optimiser
# can leave them alone (paramwise_cfg custom_keys) and the search loop can
# find them
ARCH_KEY = 'arch_logits'


def path_probabilities(parent_probs: Tensor, head_probs: Tensor) -> Tensor:
    """How likely each task's path runs through each node.

    Args:
        parent_probs: (B-1, K, K); ``[b-1, k, j]``: node k of block b takes
            node j of block b-1 as its parent.
        head_probs: (T, K); task t reads node k of the last block.

    Returns:
        (T, B, K): task t's path passes node k of block b.
    """
    q = [head_probs]
    for b in range(parent_probs.shape[0] - 1, -1, -1):
        # q_{b-1}[j] = sum_k q_b[k] * P[b-1][k][j]
        q.append(q[-1] @ parent_probs[b])
    return torch.stack(q[::-1], dim=1)


@MODELS.register_module()
class LTBSupergraph(BaseModule):
    """K candidate nodes per block, each picking a parent by Gumbel-softmax.

    Block 0's nodes read the image; node k of block b (b > 0) reads the
    Gumbel-softmax-weighted sum of block b-1's node outputs (weights drawn
    from its own logits over the K parents); each task reads the nodes of
    the last block the same way. In eval mode the choices are the argmax of
    the logits (the derived tree) and only the nodes on a task's path run.
    Every node is a copy of the stock block, initialised from one stock
    backbone like :class:`BranchedEncoder`'s copies.

    Args:
        backbone: Config of a stock backbone that ``split_backbone`` splits.
        tasks: Task names.
        num_nodes: K, nodes per block (default: the number of tasks, enough
            for every tree).
        granularity: As in :class:`BranchedEncoder`.
        tau: Gumbel-softmax temperature (the search loop anneals it).
        hard: Straight-through one-hot samples instead of soft weights.
        init_cfg: Unused; initialisation comes from the backbone's own.
    """

    def __init__(self,
                 backbone: dict,
                 tasks: Sequence[str],
                 num_nodes: Optional[int] = None,
                 granularity: str = 'stage',
                 tau: float = 5.0,
                 hard: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.backbone_cfg = copy.deepcopy(dict(backbone))
        self.tasks = list(tasks)
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f'LTBSupergraph: tasks must be distinct and not '
                             f'empty, got {self.tasks}')
        k = len(self.tasks) if num_nodes is None else num_nodes
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f'LTBSupergraph: num_nodes (K) must be a whole '
                             f'number >= 1, got {num_nodes!r}')
        self.num_nodes = k
        self.granularity = granularity
        self.tau = float(tau)
        self.hard = bool(hard)
        stock = build_stock(self.backbone_cfg)
        if frozen_parameters(stock):
            raise ValueError(
                f'backbone {self.backbone_cfg["type"]}: frozen_stages is not '
                'supported in the supergraph (every node must learn)')
        self.norm_eval = bool(getattr(stock, 'norm_eval', False))
        blocks = split_backbone(stock, granularity)
        if len(blocks) < 1:
            raise ValueError(f'backbone {self.backbone_cfg["type"]} has no '
                             'sharable block to branch')
        self.block_names = [b.name for b in blocks]
        self.block_params = [
            sum(p.numel() for p in b.module.parameters()) for b in blocks
        ]
        self.out_blocks = [
            i for i, b in sorted(
                ((i, b) for i, b in enumerate(blocks)
                 if b.out_index is not None),
                key=lambda ib: ib[1].out_index)
        ]
        self.nodes = nn.ModuleList(
            nn.ModuleList([b.module] +
                          [copy.deepcopy(b.module) for _ in range(k - 1)])
            for b in blocks)
        num_blocks = len(blocks)
        # uniform at the start: every parent and head node equally likely
        # a sub-module registered after the nodes: the weights come first in
        # named_parameters, so the optimiser's first group (the one logged)
        # is a weight group
        self.arch_logits = nn.ParameterDict(
            dict(parent=nn.Parameter(
                torch.zeros(max(num_blocks - 1, 0), k, k)),
                 head=nn.Parameter(torch.zeros(len(self.tasks), k))))

    @property
    def num_blocks(self) -> int:
        return len(self.block_names)

    @property
    def arch_logits_parent(self) -> nn.Parameter:
        """(B-1, K, K): node k of block b over the parents j of b-1."""
        return self.arch_logits['parent']

    @property
    def arch_logits_head(self) -> nn.Parameter:
        """(T, K): each task's head over the nodes of the last block."""
        return self.arch_logits['head']

    def arch_parameters(self) -> List[nn.Parameter]:
        """The architecture logits (parents, then heads)."""
        return [self.arch_logits_parent, self.arch_logits_head]

    def weight_parameters(self) -> List[nn.Parameter]:
        """Every parameter but the architecture logits."""
        return [p for n, p in self.named_parameters() if ARCH_KEY not in n]

    def init_weights(self) -> None:
        """Every copy of a block starts from one initialised stock backbone
        (its ``init_cfg``), as in :class:`BranchedEncoder` (the same code:
        a local pretrained checkpoint that does not exist is refused)."""
        init_block_copies(self.nodes, self.backbone_cfg, self.granularity)
        self._is_init = True

    def train(self, mode: bool = True) -> 'LTBSupergraph':
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # ------------------------------------------------------------ choices
    def probabilities(self) -> Tuple[Tensor, Tensor]:
        """softmax of the logits: (B-1, K, K) parents, (T, K) heads."""
        return (F.softmax(self.arch_logits_parent, dim=-1),
                F.softmax(self.arch_logits_head, dim=-1))

    def _sample(self) -> Tuple[Tensor, Tensor]:
        """Mixing weights of one forward: Gumbel-softmax samples at the
        current temperature in training, one-hot argmax in eval."""
        if self.training:
            return (F.gumbel_softmax(self.arch_logits_parent, tau=self.tau,
                                     hard=self.hard, dim=-1),
                    F.gumbel_softmax(self.arch_logits_head, tau=self.tau,
                                     hard=self.hard, dim=-1))
        k = self.num_nodes
        return (F.one_hot(self.arch_logits_parent.argmax(-1), k).to(
            self.arch_logits_parent),
                F.one_hot(self.arch_logits_head.argmax(-1), k).to(
                    self.arch_logits_head))

    def expected_size(self, unit_per_block: Sequence[float]) -> Tensor:
        """Expected size of the derived tree's encoder, differentiable.

        A node is kept when some task's path runs through it; paths are
        treated as independent across tasks (exact when they are certain).

        Args:
            unit_per_block: Size of one copy of each block (parameters or
                FLOPs).

        Returns:
            sum over blocks of size x expected number of kept nodes.
        """
        parent, head = self.probabilities()
        q = path_probabilities(parent, head)  # T, B, K
        kept = 1 - torch.prod(1 - q, dim=0)  # B, K
        unit = torch.as_tensor(list(unit_per_block), dtype=kept.dtype,
                               device=kept.device)
        return (kept.sum(-1) * unit).sum()

    # ------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Dict[str, Tuple[Tensor, ...]]:
        """Returns: per task, the stock backbone's feature tuple, read along
        the task's (expected) path through the supergraph."""
        parent_w, head_w = self._sample()
        q = path_probabilities(parent_w, head_w)  # T, B, K
        if not self.training:
            return self._forward_paths(x, q)
        outs: List[Tensor] = [torch.stack([n(x) for n in self.nodes[0]])]
        for b in range(1, self.num_blocks):
            prev = outs[-1]
            outs.append(torch.stack([
                self.nodes[b][k](torch.tensordot(parent_w[b - 1, k], prev,
                                                 dims=1))
                for k in range(self.num_nodes)
            ]))
        # each node's stock feature (e.g. its own output norm), then mixed
        emitted = {
            b: torch.stack([
                block_feature(self.nodes[b][k], outs[b][k])
                for k in range(self.num_nodes)
            ])
            for b in self.out_blocks
        }
        feats = {}
        for t, task in enumerate(self.tasks):
            feats[task] = tuple(
                torch.tensordot(q[t, b], emitted[b], dims=1)
                for b in self.out_blocks)
        return feats

    def _forward_paths(self, x: Tensor,
                       q: Tensor) -> Dict[str, Tuple[Tensor, ...]]:
        """Eval: run only the nodes of the derived tree (one-hot paths)."""
        path = q.argmax(-1).tolist()  # T x B node indices
        cache: List[Dict[int, Tensor]] = [{} for _ in range(self.num_blocks)]
        for t in range(len(self.tasks)):
            for b in range(self.num_blocks):
                k = path[t][b]
                if k not in cache[b]:
                    inp = x if b == 0 else cache[b - 1][path[t][b - 1]]
                    cache[b][k] = self.nodes[b][k](inp)
        return {
            task: tuple(
                block_feature(self.nodes[b][path[t][b]], cache[b][path[t][b]])
                for b in self.out_blocks)
            for t, task in enumerate(self.tasks)
        }
