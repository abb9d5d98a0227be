# A hand-written tree: digits and their parities branch at layer3, the sum
# keeps its own branch from layer2.
_base_ = ['./resnet18-thin_all-shared_multidigits.py']
model = dict(
    encoder=dict(branches=[
        [['left', 'right', 'left_parity', 'right_parity', 'sum']],
        [['left', 'right', 'left_parity', 'right_parity', 'sum']],
        [['left', 'right', 'left_parity', 'right_parity'], ['sum']],
        [['left', 'left_parity'], ['right', 'right_parity'], ['sum']],
        [['left', 'left_parity'], ['right', 'right_parity'], ['sum']],
    ]))
