"""One attribute object to its typed payload, walking the attribute table.

Fields are checked in the table's order, depth first, and the first bad one
raises a CoercionError whose path is rooted at the attribute key, with the
inner key of a double-nested type left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream.attributes import (
    ATTRIBUTES,
    CART_FIELDS,
    CONTACT_FIELDS,
    CUSTOMER_AGE_FIELDS,
    PRODUCT_FIELDS,
    AttributeSpec,
    Field,
    Kind,
)
from stream.coerce import (
    MAX_TEXT_CODE_POINTS,
    CoercionError,
    checked_text,
    mismatch,
    to_boolean,
    to_count,
    to_date,
    to_double,
    to_int,
    to_long,
    to_string,
)

_LIST_KINDS = frozenset({Kind.PRODUCTS, Kind.CONTACTS, Kind.KEYWORDS})

# A field table compiled for the hot loop: (name, coercion, absent is [],
# a text field).
Plan = tuple[tuple[str, Callable[[Any], Any], bool, bool], ...]


def build_payload(spec: AttributeSpec, attribute: dict[str, Any]) -> dict[str, Any]:
    """Every field of the attribute type, typed; None (or []) when absent.

    Args:
        spec: the attribute type.
        attribute: the attribute object (the "wrapper" under the key).

    Raises:
        CoercionError: the first field that does not fit, path rooted at the key.
    """
    try:
        return decode_fields(_field_source(spec, attribute), _PLANS[spec.key])
    except CoercionError as exc:
        exc.prefix(spec.key)
        raise


def _field_source(spec: AttributeSpec, attribute: dict[str, Any]) -> dict[str, Any]:
    """Where the fields sit: the inner object, or the wrapper itself (flat form)."""
    if not spec.nested:
        return attribute
    inner = attribute.get(spec.key)
    if inner is None:
        return attribute
    if type(inner) is not dict:
        error = mismatch(f"an object under {spec.key}.{spec.key}", inner)
        error.prefix("." + spec.key)
        raise error
    return inner


def decode_fields(source: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """The typed values of the planned fields of one object, in field order."""
    out: dict[str, Any] = {}
    for name, coerce, is_list, is_text in plan:
        value = source.get(name)
        if value is None:
            out[name] = [] if is_list else None
            continue
        if (
            is_text
            and type(value) is str
            and value.isascii()
            and len(value) <= MAX_TEXT_CODE_POINTS
        ):
            # to_string's commonest case, without the call: text kept as is.
            out[name] = value
            continue
        try:
            out[name] = coerce(value)
        except CoercionError as exc:
            exc.prefix("." + name)
            raise
    return out


def compile_fields(fields: tuple[Field, ...]) -> Plan:
    """The plan for a field table (coercions looked up once, not per value)."""
    return tuple(
        (name, _coercion(kind), kind in _LIST_KINDS, kind is Kind.STRING)
        for name, kind in fields
    )


def _coercion(kind: Kind) -> Callable[[Any], Any]:
    return _COERCERS[kind]


def _products(value: Any) -> list[dict[str, Any]]:
    return _each(value, "an array of product lines", _product_line)


def _product_line(line: Any) -> dict[str, Any]:
    if type(line) is not dict:
        raise mismatch("a product line object", line)
    out = decode_fields(line, _QUANTITY_PLAN)
    out.update(_flat_or_nested(line, "product", _PRODUCT_PLAN))
    return out


def _contacts(value: Any) -> list[dict[str, Any]]:
    return _each(value, "an array of contacts", _contact)


def _contact(contact: Any) -> dict[str, Any]:
    if type(contact) is not dict:
        raise mismatch("a contact object", contact)
    return _flat_or_nested(contact, "personalContact", _CONTACT_PLAN)


def _flat_or_nested(outer: dict[str, Any], key: str, plan: Plan) -> dict[str, Any]:
    """Fields from outer[key], or from outer itself when that is absent or null."""
    inner = outer.get(key)
    if inner is None:
        return decode_fields(outer, plan)
    if type(inner) is not dict:
        error = mismatch(f"an object under {key}", inner)
        error.prefix("." + key)
        raise error
    try:
        return decode_fields(inner, plan)
    except CoercionError as exc:
        exc.prefix("." + key)
        raise


def _keywords(value: Any) -> list[str]:
    return _each(value, "an array of text", _keyword)


def _keyword(value: Any) -> str:
    if type(value) is not str:
        raise mismatch("text", value)
    return checked_text(value)


def _each(value: Any, expected: str, convert: Callable[[Any], Any]) -> list[Any]:
    """Convert every element of an array, naming the index of a bad one."""
    if type(value) is not list:
        raise mismatch(expected, value)
    out = []
    for index, element in enumerate(value):
        try:
            out.append(convert(element))
        except CoercionError as exc:
            exc.prefix(f"[{index}]")
            raise
    return out


def _cart(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise mismatch("a cart object", value)
    return decode_fields(value, _CART_PLAN)


def _customer_age(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise mismatch("a customerAge object", value)
    return decode_fields(value, _CUSTOMER_AGE_PLAN)


_COERCERS: dict[Kind, Callable[[Any], Any]] = {
    Kind.STRING: to_string,
    Kind.DOUBLE: to_double,
    Kind.INT: to_int,
    Kind.COUNT: to_count,
    Kind.LONG: to_long,
    Kind.BOOLEAN: to_boolean,
    Kind.DATE: to_date,
    Kind.PRODUCTS: _products,
    Kind.CONTACTS: _contacts,
    Kind.KEYWORDS: _keywords,
    Kind.CART: _cart,
    Kind.CUSTOMER_AGE: _customer_age,
}

_QUANTITY_PLAN = compile_fields((("quantity", Kind.COUNT),))
_PRODUCT_PLAN = compile_fields(PRODUCT_FIELDS)
_CONTACT_PLAN = compile_fields(CONTACT_FIELDS)
_CART_PLAN = compile_fields(CART_FIELDS)
_CUSTOMER_AGE_PLAN = compile_fields(CUSTOMER_AGE_FIELDS)
_PLANS = {key: compile_fields(spec.fields) for key, spec in ATTRIBUTES.items()}
