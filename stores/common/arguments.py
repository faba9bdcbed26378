"""Arguments parsed once, by the interface, before any backend sees them.

A store interface that derives from :class:`ParsesArguments` has every public method of each
backend wrapped when the backend class is defined: each argument is parsed according to the
interface's annotation of that parameter, and the backend receives the parsed value. So an
argument of the wrong type is an :class:`~stores.errors.InvalidInputError` naming the
parameter on every backend alike, never a ``TypeError`` or ``AttributeError`` from deep
inside one of them, and a method added to an interface later is parsed without more code.

What the annotation decides (``X | None`` also lets None through):

- ``UUID | str``: a UUID, or text holding one; returned as a UUID.
- a pydantic model: an instance of that model, validated again in strict mode (copies made
  with ``model_copy(update=...)`` skip validation); returned as the validated copy.
- an enum (``E | str``): a member, or a value of one; returned as the member.
- ``bool``, ``int``, ``float``, ``datetime``, ``str``: exactly that type (no ``bool`` for a
  number), finite numbers, timezone-aware datetimes (returned in UTC), text without NUL or
  lone surrogates and within :data:`~stores.common.validation.MAX_TEXT_LENGTH`.
- ``Sequence[...]``: a list or tuple (not text, not a mapping), each item parsed as above;
  returned as a list. ``Sequence[float]`` (an embedding) is only checked to be a sequence:
  its length and components are the domain's to check against its dimensions.
- anything else (``Any``, JSON documents) is passed on unchanged, for the domain's checks.

Range checks that depend on the domain (page sizes, scenario versions, embedding lengths)
stay with the domain's parsers; this module only guarantees each argument has the type its
annotation names.
"""

from __future__ import annotations

import collections.abc
import enum
import functools
import inspect
import math
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError

from stores.common.payload import check_aware
from stores.common.validation import check_text, parse_enum, parse_id
from stores.errors import InvalidInputError, describe

Parser = Callable[[Any, str], Any]

_PARSED = "__hearth_parsed__"


def _members(annotation: Any) -> tuple[list[Any], bool]:
    """The members of a union annotation other than None, and whether None was one."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = list(typing.get_args(annotation))
    else:
        args = [annotation]
    plain = [a for a in args if a is not type(None)]
    return plain, len(plain) != len(args)


def _is_sequence(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (list, tuple, collections.abc.Sequence)


def parse_model(
    cls: type[BaseModel], value: Any, field: str, *, revalidate: bool = True
) -> BaseModel:
    """Return ``value`` validated again as a ``cls`` (or as it is, without ``revalidate``);
    anything but a ``cls`` is InvalidInputError."""
    if not isinstance(value, cls):
        raise InvalidInputError(
            f"{field} must be a {cls.__name__}; got {describe(value)}", field=field
        )
    if not revalidate:
        return value
    try:
        # warnings=False: a field assigned the wrong type is reported by validation below,
        # not as a serializer warning. Strict: a value assigned after construction is
        # refused, not coerced (no True for a number, no bytes for text).
        return cls.model_validate(value.model_dump(warnings=False), strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        # Named as the model names it, as the domains' own checks do.
        name = ".".join(str(p) for p in first["loc"]) or field
        raise InvalidInputError(f"{name}: {first['msg']}", field=name) from None


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(
            f"{field} must be true or false; got {describe(value)}", field=field
        )
    return value


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{field} must be an integer; got {describe(value)}", field=field)
    return value


def _float(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"{field} must be a number; got {describe(value)}", field=field)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise InvalidInputError(
            f"{field} must be a finite number; got {describe(value)}", field=field
        )
    return number


def _text(value: Any, field: str) -> str:
    check_text(value, field)
    if value is None:
        raise InvalidInputError(f"{field} must be text; got None", field=field)
    return typing.cast(str, value)


def _datetime(value: Any, field: str) -> datetime:
    parsed = check_aware(value, field)
    if parsed is None:
        raise InvalidInputError(f"{field} must be a datetime; got None", field=field)
    return parsed


def _sequence(item: Parser | None) -> Parser:
    def parse(value: Any, field: str) -> Any:
        if isinstance(value, (str, bytes, collections.abc.Mapping)) or not isinstance(
            value, collections.abc.Iterable
        ):
            raise InvalidInputError(f"{field} must be a list; got {describe(value)}", field=field)
        if item is None:
            if not hasattr(value, "__len__"):
                raise InvalidInputError(
                    f"{field} must be a list; got {describe(value)}", field=field
                )
            return value
        return [item(v, field) for v in value]

    return parse


def _either(first: Parser, second: Parser) -> Parser:
    """Parse a ``str | Sequence[str]``: text as text, anything else as the sequence."""

    def parse(value: Any, field: str) -> Any:
        return first(value, field) if isinstance(value, str) else second(value, field)

    return parse


def _optional(parser: Parser) -> Parser:
    def parse(value: Any, field: str) -> Any:
        return None if value is None else parser(value, field)

    return parse


def parser_for(annotation: Any, *, revalidate: bool = True) -> Parser | None:
    """The parser for a parameter annotated ``annotation``, or None to pass it unchanged.

    ``revalidate`` says whether a model argument is validated again or only type-checked.
    """
    members, optional = _members(annotation)
    parser = _plain_parser([m for m in members if not _is_sequence(m)], revalidate)
    sequences = [m for m in members if _is_sequence(m)]
    if sequences:
        (item,) = typing.get_args(sequences[0])[:1] or (Any,)
        item_parser = None if item is float else parser_for(item, revalidate=revalidate)
        many = _sequence(item_parser)
        parser = many if parser is None else _either(parser, many)
    if parser is None:
        return None
    return _optional(parser) if optional else parser


def _plain_parser(members: list[Any], revalidate: bool) -> Parser | None:
    for member in members:
        if isinstance(member, type) and issubclass(member, BaseModel):
            return functools.partial(parse_model, member, revalidate=revalidate)
    if UUID in members:
        return parse_id
    for member in members:
        if isinstance(member, type) and issubclass(member, enum.Enum):
            return functools.partial(parse_enum, member)
    simple: dict[Any, Parser] = {
        bool: _bool,
        int: _int,
        float: _float,
        datetime: _datetime,
        str: _text,
    }
    for member in members:
        if member in simple:
            return simple[member]
    return None


def _wrap(
    interface_func: Callable[..., Any], impl: Callable[..., Any], revalidate: bool
) -> Callable[..., Any]:
    """``impl`` with its arguments parsed by the annotations of ``interface_func``."""
    signature = inspect.signature(impl)
    params = list(signature.parameters.values())
    simple = all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params)
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    known = {p.name for p in params}
    parsers: dict[str, Parser] | None = None

    @functools.wraps(impl)
    def parsed(*args: Any, **kwargs: Any) -> Any:
        nonlocal parsers
        if parsers is None:
            hints = typing.get_type_hints(interface_func)
            parsers = {
                name: p
                for name, annotation in hints.items()
                if name != "return"
                and (p := parser_for(annotation, revalidate=revalidate)) is not None
            }
        if simple and len(args) <= len(positional) and known.issuperset(kwargs):
            # The common call, mapped by position without inspect's bind (a store's hot
            # paths are called thousands of times a second).
            values = list(args)
            for i, name in enumerate(positional[: len(values)]):
                parser = parsers.get(name)
                if parser is not None:
                    values[i] = parser(values[i], name)
            for name, value in kwargs.items():
                parser = parsers.get(name)
                if parser is not None:
                    kwargs[name] = parser(value, name)
            return impl(*values, **kwargs)
        bound = signature.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            parser = parsers.get(name)
            if parser is not None:
                bound.arguments[name] = parser(value, name)
        return impl(*bound.args, **bound.kwargs)

    setattr(parsed, _PARSED, True)
    return parsed


class ParsesArguments:
    """Base of a store interface whose backends receive parsed arguments (see the module
    docstring). The interface is the class that names this one as a direct base; the public
    methods it declares or inherits are parsed."""

    revalidate_models = True
    """Whether model arguments are validated again (else only checked to be instances)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if ParsesArguments in cls.__bases__:
            return
        interface: type[ParsesArguments] = next(
            k for k in cls.__mro__ if ParsesArguments in k.__bases__
        )
        # The interface's own methods and those of its bases (an interface may be assembled
        # from parts), the interface's own declaration winning.
        declarations: dict[str, Any] = {}
        for klass in reversed(interface.__mro__):
            declarations.update(vars(klass))
        for name, declared in declarations.items():
            if name.startswith("_") or not inspect.isfunction(declared):
                continue
            impl = getattr(cls, name)
            if getattr(impl, _PARSED, False) or getattr(impl, "__isabstractmethod__", False):
                continue
            setattr(cls, name, _wrap(declared, impl, interface.revalidate_models))
