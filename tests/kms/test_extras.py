"""Optional dependencies fail with the extra to install, not a traceback."""

import pytest

from kms.errors import MissingExtra, QkmsError
from kms.extras import optional_dependency


def test_a_missing_module_names_the_extra_that_installs_it() -> None:
    with pytest.raises(MissingExtra) as caught:
        with optional_dependency(extra="plot", feature="a plot"):
            import qkms_no_such_module.pyplot  # noqa: F401
    assert caught.value.message == "a plot needs qkms_no_such_module: pip install 'qkms[plot]'"
    assert (caught.value.module, caught.value.extra) == ("qkms_no_such_module", "plot")
    assert isinstance(caught.value, QkmsError) and caught.value.__cause__ is None


def test_an_installed_module_and_other_errors_pass_through() -> None:
    with optional_dependency(extra="plot", feature="a plot"):
        import json  # noqa: F401
    with pytest.raises(ValueError):
        with optional_dependency(extra="plot", feature="a plot"):
            raise ValueError("not an import problem")
