"""The assertion every corruption test of a dataset reader makes: a DatasetError that names the file (and field)."""
from __future__ import annotations

import pytest

from bench.datasets.errors import DatasetError


def raises_naming(path, call, field=None) -> DatasetError:
    """``call()`` raises :class:`DatasetError` whose message contains ``path`` (and whose field is ``field``)."""
    with pytest.raises(DatasetError) as exc:
        call()
    assert str(path) in str(exc.value), str(exc.value)
    if field is not None:
        assert exc.value.field == field, str(exc.value)
    return exc.value
