"""branched_mtl.tree.budget: parameter budgets as users write them."""
import pytest

from branched_mtl.tree import parse_budget


@pytest.mark.parametrize('text, separate, value', [
    # 0.29 * 100 is 28.999999999999996 in floats: truncation gave 28
    ('29%', 100, 29),
    ('57%', 100, 57),
    ('33.5%', 1000, 335),
    # 1.9 parameters: the nearest is 2, truncation gave 1
    ('1.9%', 100, 2),
    ('14%', 1_234_567, 172_839),  # 172839.38
    ('60%', 1000, 600),
    ('100%', 987_654_321, 987_654_321),
])
def test_percentage_rounds_to_the_nearest_parameter(text, separate, value):
    assert parse_budget(text, separate) == value


@pytest.mark.parametrize('text', ['0%', '-5%', 'x%', 'nan%', 'inf%'])
def test_percentage_must_be_positive_and_finite(text):
    with pytest.raises(ValueError, match='percentage must be > 0'):
        parse_budget(text, 100)
