"""The base of every configuration and options model: a ``true``/``false`` is refused where a
number (or text) is expected.

pydantic's lax mode takes ``connect_attempts = true`` as 1 and ``step_s = false`` as 0.0: a
typo in a TOML file or a JSON body would then run with a value nobody wrote. Text stays lax
(``HEATMON_<SECTION>_<KEY>`` environment overrides arrive as strings and must become numbers),
so only booleans are checked, by one validator every model inherits.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationInfo, field_validator


def admits_bool(annotation: Any) -> bool:
    """Whether a field of this type means to take ``True``/``False``."""
    if annotation is bool or annotation is Any:
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return admits_bool(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(admits_bool(a) for a in get_args(annotation))
    if origin is Literal:
        return any(isinstance(a, bool) for a in get_args(annotation))
    return False


class StrictModel(BaseModel):
    """A pydantic model that refuses a boolean for a field that is not one (see the module)."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_other_types(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and not admits_bool(field.annotation):
                raise ValueError("true/false is not a value for this key (a number or text is)")
        return value
