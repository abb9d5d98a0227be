"""BranchedEncoder: a stock backbone shared among tasks as a tree."""
import copy
import logging
import math
import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from branched_mtl.registry import MODELS, build_stock
from branched_mtl.tree import count_tree_params, tree_nodes, validate_branches
from branched_mtl.utils.console import quiet_logger
from .backbone_blocks import (BackboneBlock, block_feature, frozen_parameters,
                              split_backbone)
from .sibling_batching import (SIBLING_MODES, batched_siblings,
                               batching_obstacle)


class BlockInfo(NamedTuple):
    """What the tree builder needs to know about one sharable block.

    Attributes:
        name: Block name (also the split name of the affinity step).
        num_params: Parameters of one copy of the block.
        pools: p_l of the paper: down-sampling steps from this block's input
            to the encoder output, this block's own included.
    """
    name: str
    num_params: int
    pools: int


def _measure_pools(blocks: Sequence[BackboneBlock], in_channels: int,
                   size: int = 128) -> List[int]:
    """Count down-sampling steps per block from a probe forward.

    Measuring resolutions covers pooling, strided and dilated variants alike,
    as the paper asks for dilated encoders.
    """
    steps = []
    x = torch.zeros(1, in_channels, size, size)
    training = [b.module.training for b in blocks]
    with torch.no_grad():
        for block in blocks:
            block.module.eval()
            y = block.module(x)
            ratio = x.shape[-1] / y.shape[-1]
            steps.append(int(round(math.log2(ratio))) if ratio > 1 else 0)
            x = y
    for block, mode in zip(blocks, training):
        block.module.train(mode)
    # p_l counts from block l to the output
    return [sum(steps[i:]) for i in range(len(steps))]


def _check_pretrained(backbone: dict) -> None:
    init_cfg = backbone.get('init_cfg') or {}
    ckpt = init_cfg.get('checkpoint') if isinstance(init_cfg, dict) else None
    if (init_cfg.get('type') == 'Pretrained' and isinstance(ckpt, str)
            and '://' not in ckpt and not osp.isfile(ckpt)):
        raise FileNotFoundError(
            f'backbone {backbone.get("type")}: init_cfg checkpoint {ckpt!r} '
            'does not exist')


def init_block_copies(nodes: Sequence[Sequence[nn.Module]], backbone: dict,
                      granularity: str = 'stage') -> None:
    """Initialise every copy of every block from one initialised stock
    backbone (its ``init_cfg``, e.g. a pretrained checkpoint), so that all
    copies start from the same weights.

    The ``init_weights`` of :class:`BranchedEncoder` and of any other module
    that holds copies of the blocks :func:`split_backbone` gives (Learning
    to Branch's supergraph).

    Args:
        nodes: Per block (in ``split_backbone`` order), its copies.
        backbone: Config of the stock backbone.
        granularity: As in :class:`BranchedEncoder`.

    Raises:
        FileNotFoundError: when ``init_cfg`` names a local pretrained
            checkpoint that does not exist.
    """
    _check_pretrained(backbone)
    stock = build_stock(backbone)
    # the stock backbone would log every parameter's init as if it were
    # the model; the copies' init is what matters here
    with quiet_logger(logging.WARNING):
        stock.init_weights()
    for b, block in enumerate(split_backbone(stock, granularity)):
        state = block.module.state_dict()
        for node in nodes[b]:
            node.load_state_dict(state)


@MODELS.register_module()
class BranchedEncoder(BaseModule):
    """A stock backbone whose sharable blocks are shared by groups of tasks.

    Each block is copied once per group of the tree at that block; every node
    runs once per forward, and each task gets the same feature tuple the
    stock backbone returns (its ``out_indices``).

    Args:
        backbone: Config of a stock backbone (ResNet family, VGG, ConvNeXt,
            Swin, ViT, MiT; see :func:`split_backbone`).
        tasks: Task names.
        branches: The tree: per block, a partition of ``tasks`` into groups.
            None means all blocks shared.
        granularity: ``'stage'`` or ``'layer'`` (not the ResNet family), see
            :func:`split_backbone`.
        frozen_blocks: The bottom blocks to freeze (parameters fixed and
            batch norm in eval mode), e.g. for recombined networks.
        init_cfg: Unused; initialisation comes from the backbone's own
            ``init_cfg`` so that every copy starts from the same weights.
        sibling_batching: How the copies of one block run: ``'sequential'``
            (one call per copy, the default: faster on the CPU, see
            docs/benchmarks.md "Sibling branches") or ``'vmap'`` (all copies
            of a block as one ``torch.func.vmap`` call; same outputs,
            gradients and running statistics; blocks it cannot batch, e.g.
            with SyncBatchNorm, run sequentially).
    """

    def __init__(self,
                 backbone: dict,
                 tasks: Sequence[str],
                 branches: Optional[Sequence] = None,
                 granularity: str = 'stage',
                 frozen_blocks: int = 0,
                 init_cfg: Optional[dict] = None,
                 sibling_batching: str = 'sequential') -> None:
        super().__init__(init_cfg=init_cfg)
        if sibling_batching not in SIBLING_MODES:
            raise ValueError(f'BranchedEncoder: sibling_batching must be one '
                             f'of {SIBLING_MODES}, got {sibling_batching!r}')
        self.sibling_batching = sibling_batching
        self._unbatched_logged: set = set()
        self.backbone_cfg = copy.deepcopy(dict(backbone))
        self.tasks = list(tasks)
        self.granularity = granularity
        stock = build_stock(self.backbone_cfg)
        frozen = frozen_parameters(stock)
        if frozen:
            raise ValueError(
                f'backbone {self.backbone_cfg["type"]}: frozen_stages (or '
                'another option of the stock backbone that fixes '
                f'parameters: {", ".join(frozen[:3])}'
                f'{" ..." if len(frozen) > 3 else ""}) is not supported '
                'inside BranchedEncoder; use frozen_blocks')
        self.norm_eval = bool(getattr(stock, 'norm_eval', False))
        blocks = split_backbone(stock, granularity)
        self.block_names = [b.name for b in blocks]
        self.block_params = [
            sum(p.numel() for p in b.module.parameters()) for b in blocks
        ]
        self.pools = _measure_pools(
            blocks, self.backbone_cfg.get('in_channels', 3))
        self.out_blocks = [
            i for i, b in sorted(
                ((i, b) for i, b in enumerate(blocks)
                 if b.out_index is not None),
                key=lambda ib: ib[1].out_index)
        ]
        self.branches = validate_branches(branches, self.tasks, len(blocks))
        if not 0 <= frozen_blocks <= len(blocks):
            raise ValueError(f'frozen_blocks must be in [0, {len(blocks)}], '
                             f'got {frozen_blocks}')
        self.frozen_blocks = frozen_blocks
        # set by FrozenFeatureCacheHook while it serves the frozen blocks'
        # outputs in training (see forward_nodes); None: computed
        self.frozen_features = None
        self._nodes = tree_nodes(self.branches)
        # nodes[b][g]: the copy of block b used by group g of the tree
        self.nodes = nn.ModuleList()
        for block, partition in zip(blocks, self.branches):
            copies = [block.module] + [
                copy.deepcopy(block.module) for _ in partition[1:]
            ]
            self.nodes.append(nn.ModuleList(copies))
        self._freeze()

    @property
    def num_blocks(self) -> int:
        return len(self.block_names)

    def block_path(self, b: int) -> str:
        """The module path (under the encoder) of block ``b``'s first copy:
        what a FLOPs trace of the all-shared network counts as the block."""
        return f'nodes.{b}.0'

    @property
    def block_info(self) -> List[BlockInfo]:
        """Name, parameters of one copy and p_l of every block."""
        return [
            BlockInfo(n, p, q) for n, p, q in zip(self.block_names,
                                                  self.block_params,
                                                  self.pools)
        ]

    def tree_params(self, branches: Optional[Sequence] = None) -> int:
        """Parameters of this encoder under another tree, without building.

        Args:
            branches: A tree over this encoder's blocks (default: its own).

        Returns:
            The encoder's parameter count for that tree.
        """
        branches = validate_branches(
            self.branches if branches is None else branches, self.tasks,
            self.num_blocks)
        return count_tree_params(branches, self.block_params)

    def init_weights(self) -> None:
        """Initialise every copy of a block from one initialised stock
        backbone (its ``init_cfg``, e.g. a pretrained checkpoint), so all
        branches start from the same weights."""
        init_block_copies(self.nodes, self.backbone_cfg, self.granularity)
        self._is_init = True

    def _freeze(self) -> None:
        for b in range(self.frozen_blocks):
            for node in self.nodes[b]:
                node.eval()
                for p in node.parameters():
                    p.requires_grad = False

    def train(self, mode: bool = True) -> 'BranchedEncoder':
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def forward_nodes(self, x: Tensor,
                      cached: bool = True) -> List[List[Tensor]]:
        """Run every node of the tree once.

        Args:
            x: The input batch.
            cached: In training, take the frozen blocks' outputs from
                ``frozen_features`` when one is set (it computes them when
                it cannot serve them); those no later block reads are None.

        Returns:
            Per block, the output of each group (in ``branches`` order).
        """
        outputs: List[List[Tensor]] = []
        if (cached and self.frozen_features is not None and self.training
                and self.frozen_blocks):
            outputs = list(self.frozen_features(x, self.forward_bottom))
        return self._run_blocks(x, outputs, self.num_blocks)

    def forward_bottom(self, x: Tensor) -> List[List[Tensor]]:
        """The outputs of the frozen blocks only (per block, per group)."""
        return self._run_blocks(x, [], self.frozen_blocks)

    def _run_blocks(self, x: Tensor, outputs: List[List[Tensor]],
                    stop: int) -> List[List[Tensor]]:
        """Run blocks ``len(outputs)`` .. ``stop - 1`` after ``outputs``."""
        for b in range(len(outputs), stop):
            level = self._nodes[b]
            inputs = [x if b == 0 else outputs[b - 1][parent]
                      for parent, _ in level]
            if len(level) > 1 and self._batch_block(b):
                outputs.append(batched_siblings(list(self.nodes[b]), inputs))
            else:
                outputs.append(
                    [node(i) for node, i in zip(self.nodes[b], inputs)])
        return outputs

    def _batch_block(self, b: int) -> bool:
        """Whether block ``b``'s copies run as one vmapped call now."""
        if self.sibling_batching != 'vmap':
            return False
        reason = batching_obstacle(list(self.nodes[b]))
        if reason is not None and b not in self._unbatched_logged:
            # checked per call (train/eval modes change), logged once
            self._unbatched_logged.add(b)
            MMLogger.get_current_instance().info(
                f'BranchedEncoder: block {self.block_names[b]} runs its '
                f'copies sequentially ({reason})')
        return reason is None

    def _features(self, outputs: List[List[Tensor]],
                  blocks: Sequence[int]) -> Dict[int, Dict[str, Tensor]]:
        """Per block in ``blocks``, each task's stock feature there (see
        :func:`block_feature`), computed once per node."""
        per_block = {}
        for b in blocks:
            per_block[b] = {}
            for g, ((_, group), out) in enumerate(
                    zip(self._nodes[b], outputs[b])):
                feature = block_feature(self.nodes[b][g], out)
                per_block[b].update((t, feature) for t in group)
        return per_block

    def block_features(self, x: Tensor) -> List[Dict[str, Tensor]]:
        """Per block, each task's features at that block's output: what the
        stock backbone emits there for an emitted block, the block's output
        (a ViT's: its patch map) for the others."""
        # every block's output is read here: none from a feature cache
        outputs = self.forward_nodes(x, cached=False)
        per_block = self._features(outputs, range(self.num_blocks))
        return [per_block[b] for b in range(self.num_blocks)]

    def forward(self, x: Tensor) -> Dict[str, Tuple[Tensor, ...]]:
        """Returns: per task, the stock backbone's feature tuple."""
        per_block = self._features(self.forward_nodes(x), self.out_blocks)
        return {
            t: tuple(per_block[b][t] for b in self.out_blocks)
            for t in self.tasks
        }


def describe_blocks(backbone: dict,
                    granularity: str = 'stage') -> List[BlockInfo]:
    """Block metadata of a backbone config, building only the stock backbone.

    Args:
        backbone: Config of a stock backbone.
        granularity: As in :class:`BranchedEncoder`.

    Returns:
        One :class:`BlockInfo` per sharable block.
    """
    stock = build_stock(backbone)
    blocks = split_backbone(stock, granularity)
    pools = _measure_pools(blocks, dict(backbone).get('in_channels', 3))
    return [
        BlockInfo(b.name, sum(p.numel() for p in b.module.parameters()), q)
        for b, q in zip(blocks, pools)
    ]
