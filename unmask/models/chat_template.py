"""Chat templates rendered in a bounded jinja2 sandbox: a template from a downloaded checkpoint (or a user's
message fed through it) cannot read attributes it should not, nor exhaust memory or time.

Bounds, each failing fast with a RequestError before the big value exists:
- range(): at most MAX_RANGE items each, MAX_ITERATIONS items over one render;
- string growth: `*`, `+`, `~`, `%`, `**`, str.format / format_map and the str methods and filters that pad or
  join (ljust, center, zfill, replace, join, indent, …) may not build a string or list over MAX_CHARS;
- the rendered text: at most MAX_CHARS characters (rendering stops there).
Recursion, type errors and `raise_exception(...)` in the template end as a RequestError too.
"""
from __future__ import annotations

import re
import string
from typing import Any, Callable, Iterator

from unmask.errors import RequestError

MAX_CHARS = 2**21          # 2 M characters: any prompt that fits a context is far shorter
MAX_RANGE = 10_000         # items of one range()
MAX_ITERATIONS = 1_000_000  # range() items over one render (nested loops)
MAX_POWER_BITS = 4096      # ints built by ** (10**10**10 would take minutes)
PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
PADDING_METHODS = {"ljust": 0, "rjust": 0, "center": 0, "zfill": 0}  # method -> index of its width argument


class TemplateLimit(RequestError):
    def __init__(self, what: str, limit: str = f"{MAX_CHARS} characters") -> None:
        super().__init__(f"chat template: {what} exceeds the sandbox's limit ({limit}); refusing to render it")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


def _check_size(value: Any, what: str = "a value") -> Any:
    if _size(value) > MAX_CHARS:
        raise TemplateLimit(f"{what} of {_size(value)} items")
    return value


def _check_int(value: Any, what: str) -> None:
    if isinstance(value, int) and value > MAX_CHARS:
        raise TemplateLimit(f"{what} {value}")


def _check_format(fmt: str, args: tuple, kwargs: dict) -> None:
    """Widths and precisions in a %- or {}-format string, and `*`/nested widths taken from the arguments."""
    widths = [w for pair in PERCENT_SPEC.findall(fmt) for w in pair if w and w != "*"]
    try:
        specs = [spec for _, _, spec, _ in string.Formatter().parse(fmt) if spec]
    except ValueError:
        specs = []
    widths += [w for spec in specs for w in re.findall(r"\d+", spec)]
    for w in widths:
        _check_int(int(w), "a format width or precision of")
    if "*" in fmt or any("{" in spec for spec in specs):
        for value in (*args, *kwargs.values()):
            _check_int(value, "a format width of")


def _binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too big, before computing it."""
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(count, int) and _size(seq) * count > MAX_CHARS:
                raise TemplateLimit(f"repeating a value of {_size(seq)} items {count} times")
    elif operator == "+" and _size(left) + _size(right) > MAX_CHARS:
        raise TemplateLimit(f"joining values of {_size(left)} and {_size(right)} items")
    elif operator == "%" and isinstance(left, str):
        _check_format(left, right if isinstance(right, tuple) else (right,), {})
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
        if right * abs(left).bit_length() > MAX_POWER_BITS:
            raise TemplateLimit(f"{left} ** {right}", f"{MAX_POWER_BITS}-bit results")


def _environment() -> Any:
    from jinja2.compiler import CodeGenerator
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedCodeGenerator(CodeGenerator):
        def visit_Concat(self, node: Any, frame: Any) -> None:  # `a ~ b`: through environment.concat
            self.write("environment.concat((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        code_generator_class = BoundedCodeGenerator
        intercepted_binops = frozenset({"*", "+", "%", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

        def concat(self, values: tuple) -> str:
            parts = [str(v) for v in values]
            if sum(map(len, parts)) > MAX_CHARS:
                raise TemplateLimit(f"joining {len(parts)} strings of {sum(map(len, parts))} characters")
            return "".join(parts)

        def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
            wrapped = super().wrap_str_format(value)
            if wrapped is None:
                return None
            fmt = value.__self__

            def checked(*args: Any, **kwargs: Any) -> str:
                _check_format(fmt, args, kwargs)
                return _check_size(wrapped(*args, **kwargs), "a formatted string")
            return checked

        def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
            owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
            if isinstance(owner, str) and name in PADDING_METHODS and len(args) > PADDING_METHODS[name]:
                _check_int(args[PADDING_METHODS[name]], f"str.{name} to a width of")
            if isinstance(owner, str) and name in ("replace", "join", "expandtabs"):
                _check_str_method(owner, name, args)
            return _check_size(super().call(context, obj, *args, **kwargs), f"the result of {name or 'a call'}")

    env = BoundedSandbox(trim_blocks=True, lstrip_blocks=True)
    for name, check in FILTER_CHECKS.items():
        env.filters[name] = _checked_filter(env.filters[name], name, check)
    return env


def _check_str_method(owner: str, name: str, args: tuple) -> None:
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        hits = owner.count(args[0]) if args[0] else len(owner) + 1
        if len(owner) + hits * (len(args[1]) - len(args[0])) > MAX_CHARS:
            raise TemplateLimit(f"str.replace growing {len(owner)} characters by {hits} × {len(args[1])}")
    elif name == "join" and args and isinstance(args[0], (list, tuple)):
        total = sum(_size(a) for a in args[0]) + len(owner) * len(args[0])
        if total > MAX_CHARS:
            raise TemplateLimit(f"str.join of {total} characters")
    elif name == "expandtabs" and args:
        _check_int(args[0] * max(owner.count("\t"), 1) if isinstance(args[0], int) else 0, "expandtabs to")


def _check_indent(s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    if isinstance(s, str) and isinstance(width, (int, str)):
        grown = len(s) + (width if isinstance(width, int) else len(width)) * (s.count("\n") + 1)
        _check_int(grown, "the indent filter growing the text to")


# filter -> a check of its arguments (as jinja passes them, eval context first for join/replace)
FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": lambda s, width=80, *_, **__: _check_int(width, "the center filter to a width of"),
    "indent": _check_indent,
    "format": lambda fmt, *args, **kwargs: _check_format(fmt, args, kwargs) if isinstance(fmt, str) else None,
    "join": lambda ctx, value, d="", *_, **__: _check_str_method(d if isinstance(d, str) else "", "join",
                                                                (list(value),)) if isinstance(value, (list, tuple)) else None,
    "replace": lambda ctx, s, old="", new="", *_, **__: _check_str_method(s, "replace", (old, new))
    if isinstance(s, str) else None,
}


def _checked_filter(inner: Callable, name: str, check: Callable[..., None]) -> Callable:
    def checked(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return _check_size(inner(*args, **kwargs), f"the {name} filter's result")
    checked.__dict__.update(inner.__dict__)  # keeps jinja's pass_eval_context marker
    return checked


_TEMPLATES: dict[str, Any] = {}


def _compile(source: str) -> Any:
    from jinja2.exceptions import TemplateError

    if source not in _TEMPLATES:
        try:
            _TEMPLATES[source] = _environment().from_string(source)
        except TemplateError as e:
            raise RequestError(f"chat template does not parse: {e}") from None
        except RecursionError:
            raise RequestError("chat template does not parse: nested too deeply") from None
    return _TEMPLATES[source]


def render_chat_template(source: str, **variables: Any) -> str:
    """Render `source` with `variables` inside the bounds of the module docstring."""
    template = _compile(source)
    budget = [MAX_ITERATIONS]

    def bounded_range(*args: int) -> Iterator[int]:
        items = range(*args)
        if len(items) > MAX_RANGE:
            raise TemplateLimit(f"range() of {len(items)} items", f"{MAX_RANGE} items per range")
        budget[0] -= len(items)
        if budget[0] < 0:
            raise TemplateLimit("the loops' range() items", f"{MAX_ITERATIONS} per render")
        return iter(items)

    def raise_exception(message: str) -> None:
        raise RequestError(f"chat template: {message}")

    pieces, total = [], 0
    try:
        for piece in template.generate(range=bounded_range, raise_exception=raise_exception, **variables):
            total += len(piece)
            if total > MAX_CHARS:
                raise TemplateLimit("the rendered prompt")
            pieces.append(piece)
    except RequestError:
        raise
    except RecursionError:
        raise RequestError("chat template failed to render: recursion too deep") from None
    except MemoryError:
        raise RequestError("chat template failed to render: out of memory") from None
    except Exception as e:  # jinja's TemplateError, SecurityError, and TypeErrors from the template's own code
        raise RequestError(f"chat template failed to render: {type(e).__name__}: {str(e)[:200]}") from None
    return "".join(pieces)
