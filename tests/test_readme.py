"""The README documents every setting the code reads."""

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from stack.services import SERVICES
from stack.settings import StackSettings
from tests.service_settings import settings_class

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def variables(settings: type[BaseSettings]) -> list[str]:
    names = []
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names.append(str(choices[0]) if choices else str(alias) if alias else name.upper())
    return names


@pytest.mark.parametrize("settings", [*(settings_class(s.package) for s in SERVICES), StackSettings])
def test_every_setting_is_documented(settings):
    missing = [name for name in variables(settings) if f"`{name}`" not in README]
    assert missing == []
