# Single-task model for 'left_parity' (step 1 of the method): same encoder, its head.
_base_ = ['./resnet18-thin_all-shared_multidigits.py']
tasks = ['left_parity']
model = dict(
    encoder=dict(tasks=tasks),
    head=dict(task_heads=dict(
        _delete_=True,
        left_parity=dict(type='mmpretrain.LinearClsHead', num_classes=2,
                in_channels=128))))
train_dataloader = dict(dataset=dict(dataset=dict(tasks=tasks)))
val_dataloader = dict(dataset=dict(dataset=dict(tasks=tasks)))
test_dataloader = dict(dataset=dict(tasks=tasks))
val_evaluator = dict(task_metrics=dict(
    _delete_=True, left_parity=dict(type='mmpretrain.Accuracy')))
test_evaluator = val_evaluator
