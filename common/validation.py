"""Request bodies and query strings parsed into pydantic models; failures become 400/422 naming each field."""

import json
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from sanic import Request

from common.errors import BadRequest, NotFound, ValidationFailed

M = TypeVar("M", bound=BaseModel)


class Schema(BaseModel):
    """Base of every request model: unknown fields are rejected, strings are trimmed and must be storable."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        # PostgreSQL's text cannot hold NUL, and lone surrogates are not UTF-8: refuse them here, not with a 500.
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueError("must not contain NUL characters")
            try:
                value.encode()
            except UnicodeEncodeError:
                raise ValueError("must be valid Unicode text") from None
        return value


class PartialUpdate(Schema):
    """A body that changes only the fields it names; `null` is accepted only for the fields in `nullable`."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _no_null_for_required_fields(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise ValueError("may not be null")
        return value

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


def _field_problems(error: ValidationError) -> list[dict[str, str]]:
    problems = []
    for item in error.errors(include_url=False, include_context=False, include_input=False):
        location = ".".join(str(part) for part in item["loc"]) or "body"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append({"field": location, "problem": message})
    return problems


def parse_model(model: type[M], data: Any) -> M:
    """Validate `data` against `model`, raising `ValidationFailed` with one entry per bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ValidationFailed(_field_problems(error)) from None


def json_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as `model`: 400 if it is not JSON or not an object, 422 if a field is wrong."""
    if not request.body:
        raise BadRequest("The request body must be a JSON object")
    try:
        data = json.loads(request.body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(f"The request body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object")
    return parse_model(model, data)


def form_body(request: Request, model: type[M]) -> M:
    """A `application/x-www-form-urlencoded` body as `model` (the first value of each field)."""
    content_type = request.content_type.split(";")[0].strip()
    if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise BadRequest("The request body must be form data (application/x-www-form-urlencoded)")
    return parse_model(model, _first_values(request.form or {}))


def query_args(request: Request, model: type[M]) -> M:
    """The query string as `model` (the first value of each parameter)."""
    return parse_model(model, _first_values(request.args))


def openapi_body(model: type[BaseModel], content_type: str = "application/json") -> dict[str, dict]:
    """`model` as an OpenAPI 3.0 request body for `@openapi.body(...)`: pydantic's JSON schema (2020-12) with its
    references inlined and its few newer keywords said the 3.0 way. (sanic-ext's own rendering of pydantic models
    shows their configuration as properties.)"""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(value) for value in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return convert(definitions[node["$ref"].rsplit("/", 1)[-1]])
        node = {key: convert(value) for key, value in node.items()}
        for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(node.get(exclusive), int | float) and not isinstance(node[exclusive], bool):
                node[inclusive], node[exclusive] = node[exclusive], True
        if "const" in node:
            node["enum"] = [node.pop("const")]
        variants = node.get("anyOf")
        if variants and {"type": "null"} in variants:
            rest = [variant for variant in variants if variant != {"type": "null"}]
            node.pop("anyOf")
            node = {**(rest[0] if len(rest) == 1 else {"anyOf": rest}), **node, "nullable": True}
        return node

    return {content_type: convert(schema)}


def database_id(value: int, what: str) -> int:
    """A path's integer id, 404 when no row can have it (PostgreSQL's integer keys are 32-bit)."""
    if not 0 < value < 2**31:
        raise NotFound(f"{what} {value} not found")
    return value


def _first_values(multi: Mapping[str, list[str]]) -> dict[str, str]:
    return {key: values[0] for key, values in multi.items() if values}
