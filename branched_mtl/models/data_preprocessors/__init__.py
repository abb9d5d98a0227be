from .dense_data_preprocessor import PAD_VALUES, DenseDataPreprocessor

__all__ = ['DenseDataPreprocessor', 'PAD_VALUES']
