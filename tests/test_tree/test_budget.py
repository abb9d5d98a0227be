"""branched_mtl.tree.budget: parameter budgets as users write them."""
import pytest

from branched_mtl.tree import parse_budget
from branched_mtl.tree.budget import check_nonzero_budget
from branched_mtl.utils import UserError


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


@pytest.mark.parametrize('budget', [1, 25_000_000])
def test_a_budget_of_one_or_more_passes(budget):
    assert check_nonzero_budget(budget, str(budget)) == budget


@pytest.mark.parametrize('text, budget, message', [
    # a fraction that rounds to 0 parameters: the percentage it may mean
    ('0.4', 0, r"^--budget '0\.4' is 0 parameters, no network fits; give a "
     r'parameter count \(25M, 300K, 1200000\) or a percentage of the '
     r'single-task models together \(60%\) \(did you mean 40%\?\)$'),
    ('0', 0, r"^--budget '0' is 0 parameters, no network fits; .*\(60%\)$"),
    ('0.0001%', 0, r"^--budget '0\.0001%' is 0 parameters, no network fits"),
])
def test_a_budget_that_rounds_to_nothing_is_refused(text, budget, message):
    with pytest.raises(UserError, match=message):
        check_nonzero_budget(budget, text)


def test_the_message_names_the_option_and_the_unit():
    with pytest.raises(ValueError,
                       match=r"^--flops-budget '0\.5' is 0 FLOPs, no network "
                       r'fits; give a FLOPs count .*\(did you mean 50%\?\)$'):
        check_nonzero_budget(0, '0.5', '--flops-budget', 'flops')
