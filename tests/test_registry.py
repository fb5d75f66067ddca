"""Registries: unknown names fail loudly with the valid list; names are unique."""
import pytest

from ddlib.core.registry import DDLibError, Registry
from ddlib.methods.coresets import CORESETS


def _reg():
    reg = Registry("widget")
    reg.add("alpha", 1)

    @reg.register("beta")
    def beta():
        return 2

    return reg


def test_lookup_and_names():
    reg = _reg()
    assert reg.get("alpha") == 1
    assert reg.get("beta")() == 2
    assert reg.names() == ["alpha", "beta"]
    assert "alpha" in reg and "gamma" not in reg
    assert list(reg) == ["alpha", "beta"] and len(reg) == 2


def test_unknown_name_lists_valid_names():
    with pytest.raises(DDLibError) as e:
        _reg().get("gamma")
    msg = str(e.value)
    assert "widget" in msg and "'gamma'" in msg
    assert "alpha, beta" in msg


def test_unknown_name_in_a_real_family():
    with pytest.raises(DDLibError) as e:
        CORESETS.get("herdin")
    for name in CORESETS.names():
        assert name in str(e.value)


def test_double_registration_raises_and_keeps_first():
    reg = _reg()
    with pytest.raises(ValueError, match="alpha"):
        reg.add("alpha", 99)
    with pytest.raises(ValueError, match="beta"):
        reg.register("beta")(lambda: 3)
    assert reg.get("alpha") == 1 and reg.get("beta")() == 2
    assert len(reg) == 2
