import pytest

from medmllm.errors import UnknownNameError
from medmllm.registry import Registry


def test_decorator_and_direct_registration():
    reg: Registry[object] = Registry("widget")

    @reg.register("alpha")
    class Alpha:
        pass

    reg.register("beta", 42)
    assert reg.get("alpha") is Alpha
    assert reg.get("beta") == 42
    assert reg.names() == ["alpha", "beta"]
    assert "alpha" in reg and len(reg) == 2


def test_lazy_entry_imports_on_first_get():
    reg: Registry[object] = Registry("thing")
    reg.register_lazy("dumps", "json:dumps")
    import json

    assert reg.get("dumps") is json.dumps


def test_unknown_name_lists_close_matches_and_all_names():
    reg: Registry[int] = Registry("backend")
    for name in ("hf", "llamacpp", "openai"):
        reg.register(name, 1)
    with pytest.raises(UnknownNameError) as info:
        reg.get("llamacp")
    message = str(info.value)
    assert "unknown backend 'llamacp'" in message
    assert "Did you mean 'llamacpp'" in message
    assert "hf, llamacpp, openai" in message


def test_duplicate_registration_is_refused():
    reg: Registry[int] = Registry("metric")
    reg.register("acc", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("acc", 2)
