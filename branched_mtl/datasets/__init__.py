from .multi_digits import MultiDigits

__all__ = ['MultiDigits']
