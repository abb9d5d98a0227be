"""PolicyEncoder: every task runs its own select/skip policy over the residual
blocks of one stock ResNet whose weights all tasks share (AdaShare).

A residual block ``y = relu(F(x) + s(x))`` is *selected* (run as it is) or
*skipped*, which leaves its shortcut ``s(x)``: the identity, or, for a block
that changes resolution or width, the block's own ``downsample`` projection
(1x1 conv + norm, shared like every weight). A skip there keeps the shapes of
the stock network, so every policy fits the same heads; this is what
AdaShare's public code does with such blocks. The stem is not a residual
block and always runs.

Search mode (``policy=None``) holds per task and block two logits
(select, skip); a block's output is the soft Gumbel-softmax mix
``u_select * block(x) + u_skip * s(x)``. Fixed mode (``policy`` given) runs
the hard policy, and blocks that no task selects lose their residual branch
(only the shortcut stays), so the network has exactly the parameters it uses.
Tasks whose policies agree up to a block share that computation.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from branched_mtl.models.encoders.backbone_blocks import split_backbone
from branched_mtl.registry import MODELS, build_stock
from branched_mtl.tree.config_writer import check_task_names
from branched_mtl.utils import UserError

SELECT, SKIP = 0, 1
SAMPLING = ('gumbel', 'argmax', 'full')


class SkippedBlock(nn.Module):
    """What is left of a residual block that no task selects: its shortcut.

    Args:
        downsample: The block's projection shortcut, or None (identity).
    """

    def __init__(self, downsample: Optional[nn.Module]) -> None:
        super().__init__()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        return x if self.downsample is None else self.downsample(x)


def shortcut(block: nn.Module, x: Tensor) -> Tensor:
    """A residual block's shortcut path: what a skip leaves."""
    down = getattr(block, 'downsample', None)
    return x if down is None else down(x)


def residual_blocks(backbone: nn.Module) -> List[Tuple[str, int, nn.Module]]:
    """The residual blocks of a stock ResNet, input to output.

    Args:
        backbone: A built mmpretrain / mmseg ResNet-family backbone.

    Returns:
        ``(name, stage, block)`` per residual block, e.g. ``('layer2.0', 1,
        BasicBlock)``.

    Raises:
        UserError: for a backbone without residual blocks (VGG ...): its
            blocks cannot be skipped.
    """
    name = f'{type(backbone).__module__}.{type(backbone).__name__}'
    try:
        blocks = split_backbone(backbone)
    except (TypeError, ValueError) as e:
        raise UserError(f'PolicyEncoder: backbone {name} cannot be split '
                        f'into blocks: {e}') from e
    if not (hasattr(backbone, 'res_layers') and blocks[0].name == 'stem'):
        raise UserError(
            f'PolicyEncoder: backbone {name} has no residual blocks, and '
            'AdaShare skips a block by keeping its shortcut: its blocks '
            '(e.g. VGG conv stages) cannot be skipped. Use a ResNet-family '
            'backbone (mmpretrain / mmseg ResNet, ResNetV1c, ResNetV1d)')
    units = []
    for stage, layer_name in enumerate(backbone.res_layers):
        for i, block in enumerate(getattr(backbone, layer_name)):
            if not hasattr(block, 'downsample'):
                raise UserError(
                    f'PolicyEncoder: block {layer_name}.{i} of {name} '
                    f'({type(block).__name__}) has no shortcut '
                    '(`downsample` attribute), so it cannot be skipped')
            units.append((f'{layer_name}.{i}', stage, block))
    return units


@MODELS.register_module()
class PolicyEncoder(BaseModule):
    """One stock ResNet, each task with its own select/skip policy per
    residual block (AdaShare).

    Args:
        backbone: Config of a stock ResNet-family backbone; its
            ``out_indices`` say which stages' outputs each task gets.
        tasks: Task names.
        policy: ``{task: [1 (select) or 0 (skip) per residual block]}``: a
            fixed policy (the derived network). None: search mode, with
            learnable select/skip logits.
        tau: Gumbel-softmax temperature (search mode).
        init_cfg: Unused; initialisation is the stock backbone's own.
    """

    def __init__(self,
                 backbone: dict,
                 tasks: Sequence[str],
                 policy: Optional[Dict[str, Sequence[int]]] = None,
                 tau: float = 5.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.backbone_cfg = copy.deepcopy(dict(backbone))
        if not tasks:
            raise UserError('PolicyEncoder: tasks is empty')
        self.tasks = check_task_names(tasks)
        if len(set(self.tasks)) != len(self.tasks):
            raise UserError(f'PolicyEncoder: tasks repeat: {self.tasks}')
        self.backbone = build_stock(self.backbone_cfg)
        stem = split_backbone(self.backbone)[0].module if hasattr(
            self.backbone, 'res_layers') else None
        units = residual_blocks(self.backbone)
        self.block_names = [n for n, _, _ in units]
        self.block_stage = [s for _, s, _ in units]
        # blocks whose skip runs a projection: they change resolution/width
        self.changes_shape = [b.downsample is not None for _, _, b in units]
        out_indices = sorted(int(i) for i in self.backbone.out_indices)
        # a stage's output is its last block's output
        self.out_blocks = [
            max(i for i, s in enumerate(self.block_stage) if s == stage)
            for stage in out_indices
        ]
        self.tau = float(tau)
        self.sampling = 'gumbel'
        self.num_learnable = len(units)
        if policy is None:
            self.policy = None
            # equal logits: both choices start equally likely
            self.policy_logits = nn.Parameter(
                torch.zeros(len(self.tasks), len(units), 2))
        else:
            self.policy = self._check_policy(policy)
            self._drop_unselected(units)
        # plain lists: the modules are registered once, under `backbone`
        self._stem = [stem]
        self._blocks = [self._layer_block(n) for n in self.block_names]

    # ------------------------------------------------------------ set-up
    @property
    def num_blocks(self) -> int:
        return len(self.block_names)

    def _layer_block(self, name: str) -> nn.Module:
        layer, i = name.split('.')
        return getattr(self.backbone, layer)[int(i)]

    def _check_policy(self, policy: Dict[str, Sequence[int]]
                      ) -> Dict[str, List[int]]:
        unknown = [t for t in policy if t not in self.tasks]
        if unknown:
            raise UserError(f'PolicyEncoder: policy for unknown task(s) '
                            f'{unknown}; the tasks are {self.tasks}')
        missing = [t for t in self.tasks if t not in policy]
        if missing:
            raise UserError(f'PolicyEncoder: no policy for task(s) {missing}')
        out = {}
        for t in self.tasks:
            choices = list(policy[t])
            if len(choices) != self.num_blocks or any(
                    c not in (0, 1) for c in choices):
                raise UserError(
                    f'PolicyEncoder: the policy of task {t!r} must be one 0 '
                    f'(skip) or 1 (select) per residual block '
                    f'({self.num_blocks}: {self.block_names}), got {choices}')
            out[t] = [int(c) for c in choices]
        return out

    def _drop_unselected(self, units) -> None:
        """Blocks that no task selects keep only their shortcut."""
        for b, (name, _, block) in enumerate(units):
            if not any(self.policy[t][b] for t in self.tasks):
                layer, i = name.split('.')
                getattr(self.backbone, layer)[int(i)] = SkippedBlock(
                    block.downsample)

    # ------------------------------------------------------------ policy
    def derived_policy(self) -> Dict[str, List[int]]:
        """The final policy: per task and block the more likely choice
        (argmax of the logits; select on a tie)."""
        if self.policy is not None:
            return copy.deepcopy(self.policy)
        logits = self.policy_logits.detach()
        select = (logits[..., SELECT] >= logits[..., SKIP]).long()
        return {t: select[i].tolist() for i, t in enumerate(self.tasks)}

    def select_probs(self) -> Tensor:
        """softmax of the logits: P(select), tasks x blocks."""
        return self.policy_logits.detach().softmax(-1)[..., SELECT]

    def _gates(self) -> List[List[Union[float, Tensor]]]:
        """Per task and block: 1.0 / 0.0 (hard) or a soft (select, skip)
        pair of weights."""
        L = self.num_blocks
        if self.policy is not None:
            return [[float(c) for c in self.policy[t]] for t in self.tasks]
        if self.sampling == 'full':
            return [[1.0] * L for _ in self.tasks]
        if self.sampling == 'argmax' or not self.training:
            derived = self.derived_policy()
            return [[float(c) for c in derived[t]] for t in self.tasks]
        # curriculum: only the last k blocks sample; the others run
        first = L - self.num_learnable
        gates = []
        for i in range(len(self.tasks)):
            u = F.gumbel_softmax(self.policy_logits[i, first:], tau=self.tau,
                                 hard=False, dim=-1)
            gates.append([1.0] * first + list(u.unbind(0)))
        return gates

    # ------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Dict[str, Tuple[Tensor, ...]]:
        """Returns: per task, the stock backbone's feature tuple (the
        outputs of its ``out_indices`` stages) along the task's policy."""
        gates = self._gates()
        x = self._stem[0](x)
        # key: the hard choices so far (tasks that agree share the tensor),
        # or ('task', i) once a task's path holds a soft gate
        keys: List[tuple] = [() for _ in self.tasks]
        cache: Dict[tuple, Tensor] = {(): x}
        feats: List[List[Tensor]] = [[] for _ in self.tasks]
        for b, block in enumerate(self._blocks):
            new_cache: Dict[tuple, Tensor] = {}
            for i in range(len(self.tasks)):
                g, key = gates[i][b], keys[i]
                hard = isinstance(g, float) and key[:1] != ('task', )
                new_key = key + (g, ) if hard else ('task', i)
                if new_key not in new_cache:
                    h = cache[key]
                    if isinstance(g, float):
                        out = block(h) if g == 1.0 else shortcut(block, h)
                    else:
                        out = g[SELECT] * block(h) + g[SKIP] * shortcut(
                            block, h)
                    new_cache[new_key] = out
                keys[i] = new_key
                if b in self.out_blocks:
                    feats[i].append(new_cache[new_key])
            cache = new_cache
        return {t: tuple(feats[i]) for i, t in enumerate(self.tasks)}
