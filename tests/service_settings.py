"""How a deployment description (docker compose, the Kubernetes manifests) is checked against the services'
settings: which class a service reads, which variable sets a field, and the settings loaded from an environment
alone, as the process in the container or pod would load them."""

import importlib
import inspect
import os
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from common.settings import ServiceSettings


def settings_class(package: str) -> type[ServiceSettings]:
    """The settings class a service reads (the ServiceSettings subclass of `<package>.settings`)."""
    module = importlib.import_module(f"{package}.settings")
    classes = [
        value
        for value in vars(module).values()
        if inspect.isclass(value) and issubclass(value, ServiceSettings) and value.__module__ == module.__name__
    ]
    assert len(classes) == 1, f"{package}.settings should define one ServiceSettings subclass, found {classes}"
    return classes[0]


def variable(name: str, settings: type[BaseSettings]) -> str:
    """The environment variable of a settings field."""
    alias = settings.model_fields[name].validation_alias
    choices = getattr(alias, "choices", None)
    return str(choices[0]) if choices else str(alias) if alias else name.upper()


def load_settings(
    settings: type[ServiceSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> ServiceSettings:
    """The settings as the process would load them: from `env` alone."""
    for key in list(os.environ):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # no `.env` from the repository
    return settings()
