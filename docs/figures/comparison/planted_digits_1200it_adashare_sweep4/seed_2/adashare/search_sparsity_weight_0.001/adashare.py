# AdaShare policy derived by projects/adashare/tools/search.py
# from adashare_config.py, seed 2: per task and residual block the argmax of the select/skip
# logits (1 = select). Blocks: layer1.0, layer1.1, layer2.0, layer2.1, layer3.0, layer3.1, layer4.0, layer4.1.
# params 178922, FLOPs 4.876e+06 per image; search 189 s wall, 186 s CPU on CPU (1 threads)
# Train: PYTHONPATH=. python tools/train.py <this file>
_base_ = '../../../adashare_config.py'
custom_imports = {'imports': ['branched_mtl', 'projects.adashare.adashare'], 'allow_failed_imports': False}
model = dict(encoder={'type': 'PolicyEncoder', 'backbone': {'base_channels': 8, 'depth': 18, 'out_indices': (3,), 'stem_channels': 8, 'type': 'mmpretrain.ResNet'}, 'tasks': ['digit', 'parity', 'large', 'rotation', 'rotation_sign', 'stripe_orientation', 'stripe_period', 'fg_colour', 'bg_colour'], 'policy': {'digit': [1, 1, 1, 1, 1, 1, 1, 0], 'parity': [1, 1, 1, 1, 1, 0, 1, 0], 'large': [1, 1, 1, 1, 1, 1, 1, 1], 'rotation': [1, 1, 1, 1, 1, 0, 1, 0], 'rotation_sign': [1, 1, 1, 1, 1, 0, 1, 0], 'stripe_orientation': [1, 1, 1, 1, 1, 1, 1, 1], 'stripe_period': [1, 0, 1, 1, 1, 1, 1, 1], 'fg_colour': [1, 0, 0, 0, 1, 1, 1, 1], 'bg_colour': [1, 1, 1, 1, 0, 0, 1, 1]}, '_delete_': True})
