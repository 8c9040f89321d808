"""``tfds.testing.mock_data`` with working batched reads, for the tests that read a mocked tfds data set.

tfds 4.9.10's mock installs the array_record reader's ``__getitems__`` as a plain MagicMock attribute, so
``ArrayRecordDataSource.__getitems__`` calls it without ``self`` (TypeError). Inside :func:`mock_data` batched
reads go one key at a time through ``__getitem__`` instead, which the mock does support.
"""
import contextlib
from unittest import mock


@contextlib.contextmanager
def mock_data(**kwargs):
    """``tfds.testing.mock_data(**kwargs)`` (e.g. num_examples=10, policy=MockPolicy.USE_CODE) with batched reads."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.data_sources import base

    def getitems(self, keys):
        return [self[k] for k in keys]

    with tfds.testing.mock_data(**kwargs), mock.patch.object(base.BaseDataSource, "__getitems__", getitems):
        yield
