"""From what a user types (CLI flags, presets, `ReplayConfig`) to rule and optimizer objects.

One spelling for built-ins and a researcher's own methods:

    etr2:p=0.9,q=0.75              a built-in by name (rules: none etr1 etr2 median;
    smac                             optimizers: random smac hyperband), options after ':'
    optuna:tpe:n_startup_trials=5  an Optuna sampler / pruner through the bridge
    optuna:median                    (`optuna_bridge.py`; short names or class names)
    mypkg.rules:Patience:k=3       package.module:Name, imported, called with the options
    mymod:MyOpt

Options are `key=value` separated by commas; values are read as int, float, true/false, none,
or else kept as strings. A name that is none of these is a `SpecError` (a UserError) naming what
was looked for. Objects are accepted as they are: a rule instance (anything with
`should_stop(curve, epoch, state)`), an optimizer factory (a class or function called per run
as `factory(pool, rng, **options)`), an Optuna sampler or pruner class, or an Optuna pruner
instance. Built-ins resolve through the same code as user methods.

A setting travels to process-pool and Dask workers by pickle, so a user's method must be
importable there by its module name (a class defined in a notebook runs in-process, `jobs=1`,
or in a local pool started by fork, Linux's default).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lcsim.errors import UserError

from .protocols import Optimizer, Pool, StoppingRule

if TYPE_CHECKING:
    from .rules import AnyOf

__all__ = [
    "SpecError",
    "OptimizerSpec",
    "resolve_optimizer",
    "resolve_rule",
    "resolve_rules",
    "rules_label",
    "optimizer_label",
    "label_of",
    "parse_options",
]


class SpecError(UserError, ValueError):
    """A rule or optimizer spec that names nothing usable; the message says what was looked
    for and where."""


@dataclass(frozen=True)
class OptimizerSpec:
    """A resolved optimizer: `spec(pool, rng)` makes one run's optimizer as
    `make(pool, rng, **options)`; `label` names it in summaries."""

    label: str
    make: Callable[..., Optimizer]
    options: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, pool: Pool, rng) -> Optimizer:
        return self.make(pool, rng, **self.options)

    def __str__(self) -> str:
        return self.label


# ----- spec strings ---------------------------------------------------------------------------
def parse_options(text: str, spec: str) -> dict[str, Any]:
    """'k=3,p=0.5,variant=optuna' -> {'k': 3, 'p': 0.5, 'variant': 'optuna'}."""
    out: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip().isidentifier():
            raise SpecError(f"{spec!r}: expected key=value options, got {item!r}")
        out[key.strip()] = _value(value.strip())
    return out


def _value(v: str) -> Any:
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v.strip("'\"")


def _split(spec: str) -> tuple[str, str, str]:
    """'pkg.mod:Name:k=v' -> ('pkg.mod', 'Name', 'k=v'); 'etr2:p=0.9' -> ('etr2', '', ...)."""
    head, _, rest = spec.strip().partition(":")
    return head.strip(), *(s.strip() for s in rest.partition(":")[::2])


def _import(spec: str, module: str, attr: str, kind: str) -> Any:
    try:
        mod = _import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and module.startswith(e.name):
            raise SpecError(f"{kind} {spec!r}: no module named {module!r} (looked for "
                            f"{e.name!r} in the current folder and on sys.path; is its folder "
                            "on PYTHONPATH?)") from None
        raise SpecError(f"{kind} {spec!r}: importing {module!r} failed: {e}") from None
    except Exception as e:  # the module itself is broken: say where (--debug: traceback)
        raise SpecError(f"{kind} {spec!r}: importing {module!r} failed: "
                        f"{type(e).__name__}: {e}") from e
    obj: Any = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n in dir(mod) if not n.startswith("_"))
            raise SpecError(f"{kind} {spec!r}: module {module!r} "
                            f"({getattr(mod, '__file__', '?')}) has no attribute {attr!r}; "
                            f"it has {names}")
        obj = getattr(obj, part)
    return obj


def _import_module(module: str):
    """importlib.import_module, also finding a module in the current folder, as `python -m`
    does (the `lcsim` command's sys.path starts at its script folder, not here)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        here = os.getcwd()
        if e.name != module.split(".")[0] or here in sys.path or "" in sys.path:
            raise
        sys.path.append(here)
        return importlib.import_module(module)


def _bind(kind: str, spec: str, target: Callable, args: tuple, options: Mapping) -> None:
    """Fail early, naming the option, when `target(*args, **options)` cannot be called (the
    options a target takes are its signature's parameters after the positional `args`)."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return  # no signature (a C builtin): the call itself will say
    params = list(sig.parameters.values())
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        allowed = [p.name for p in params[len(args):] if p.kind != p.VAR_POSITIONAL]
        bad = sorted(set(options) - set(allowed))
        if bad:
            raise SpecError(f"{kind} {spec!r} has no option(s) {bad}; allowed: {allowed}")
    try:
        sig.bind(*args, **options)
    except TypeError as e:
        raise SpecError(f"{kind} {spec!r}: {e}") from None


# ----- labels ---------------------------------------------------------------------------------
def label_of(obj: Any) -> str:
    """A short, stable name for a rule or optimizer object: its own str() when it defines one
    (built-ins print their spec, dataclasses their fields), else module:QualifiedName."""
    if isinstance(obj, str):
        return obj.strip()
    if isinstance(obj, functools.partial):
        opts = ",".join(f"{k}={v}" for k, v in obj.keywords.items())
        return label_of(obj.func) + (f":{opts}" if opts else "")
    if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismethod(obj):
        if obj.__module__.split(".")[0] == "optuna":  # optuna.samplers._tpe.sampler:TPESampler
            return f"optuna:{obj.__qualname__}"
        if obj.__module__ == "__main__":  # a notebook's or script's own class
            return obj.__qualname__
        return f"{obj.__module__}:{obj.__qualname__}"
    cls = type(obj)
    if cls.__str__ is not object.__str__ or cls.__repr__ is not object.__repr__:
        return str(obj)
    name = label_of(cls)
    simple = {k: v for k, v in getattr(obj, "__dict__", {}).items()
              if not k.startswith("_") and isinstance(v, int | float | str | bool | None)}
    return name + (f"({', '.join(f'{k}={v!r}' for k, v in simple.items())})" if simple else "")


def rules_label(specs: Iterable[Any]) -> str:
    """'etr1:tau=3+mypkg.rules:Patience:k=3', or 'none'; built-in names are normalised, other
    spec strings kept as written, without importing anything (analysis reads these)."""
    from .rules import _RULES, parse_rule

    out = []
    for s in specs or ():
        if isinstance(s, str) and _split(s)[0].lower() in _RULES:
            s = parse_rule(s)
            if str(s) == "none":
                continue
        out.append(label_of(s))
    return "+".join(out) or "none"


def optimizer_label(optimizer: Any) -> str:
    return label_of(optimizer)


# ----- rules ----------------------------------------------------------------------------------
def resolve_rule(spec: Any) -> StoppingRule:
    """One stopping rule from a spec string or object (module docstring)."""
    from . import rules as builtin

    if not isinstance(spec, str):
        return _as_rule(spec, label_of(spec), {})
    head, attr, opts = _split(spec)
    if head.lower() in builtin._RULES:
        return builtin.parse_rule(spec)
    if head.lower() == "optuna":
        from .optuna_bridge import optuna_pruner

        return optuna_pruner(attr, parse_options(opts, spec), spec)
    if not attr:
        raise SpecError(f"unknown stopping rule {spec!r}; choose from {sorted(builtin._RULES)}, "
                        "optuna:PRUNER, or package.module:Name[:key=value,...]")
    obj = _import(spec, head, attr, "stopping rule")
    return _as_rule(obj, spec, parse_options(opts, spec))


def _as_rule(obj: Any, spec: str, options: Mapping[str, Any]) -> StoppingRule:
    from .optuna_bridge import is_optuna_pruner, optuna_pruner

    if is_optuna_pruner(obj):
        return optuna_pruner(obj, dict(options), spec)
    if hasattr(obj, "should_stop") and not inspect.isclass(obj):
        if options:
            raise SpecError(f"stopping rule {spec!r} is an object, not a class: it takes no "
                            f"options, got {dict(options)}")
        return obj
    if callable(obj) and not (inspect.isclass(obj) and not hasattr(obj, "should_stop")):
        _bind("stopping rule", spec, obj, (), options)
        rule = obj(**options)
        if hasattr(rule, "should_stop"):
            return rule
    raise SpecError(f"stopping rule {spec!r} is not a stopping rule: a rule has a method "
                    "should_stop(curve, epoch, state) -> bool")


def resolve_rules(specs: Any) -> AnyOf:
    """Several rules combined with AnyOf (stop if any says stop); 'none' entries are dropped.
    A single spec string or rule object counts as one rule."""
    from .rules import AnyOf, NoRule

    if isinstance(specs, str) or hasattr(specs, "should_stop"):
        specs = (specs,)
    rules = tuple(r for r in (resolve_rule(s) for s in specs or ()) if not isinstance(r, NoRule))
    return AnyOf(rules)


# ----- optimizers -----------------------------------------------------------------------------
def resolve_optimizer(spec: Any, options: Mapping[str, Any] | None = None) -> OptimizerSpec:
    """An optimizer factory from a spec string or object, with `options` (e.g. ReplayConfig's
    optimizer_options) added to those in the spec; a key given twice is an error."""
    from . import optimizers as builtin

    options = dict(options or {})
    if isinstance(spec, OptimizerSpec):
        return _with_options(spec, options)
    if not isinstance(spec, str):
        return _as_factory(spec, label_of(spec), options)
    head, attr, opts = _split(spec)
    name = head.lower()
    if name in builtin.BUILTIN:
        extra = parse_options(spec.partition(":")[2], spec)
        label = name + (":" + spec.partition(":")[2].strip() if extra else "")
        return _as_factory(builtin.BUILTIN[name], label, _merge(spec, extra, options))
    if name == "optuna":
        from .optuna_bridge import optuna_sampler

        return optuna_sampler(attr, _merge(spec, parse_options(opts, spec), options), spec)
    if not attr:
        raise SpecError(f"unknown optimizer {spec!r}; choose from {sorted(builtin.BUILTIN)}, "
                        "optuna:SAMPLER, or package.module:Name[:key=value,...]")
    obj = _import(spec, head, attr, "optimizer")
    return _as_factory(obj, spec.strip(), _merge(spec, parse_options(opts, spec), options))


def _merge(spec: str, a: dict, b: dict) -> dict:
    both = sorted(set(a) & set(b))
    if both:
        raise SpecError(f"optimizer {spec!r}: option(s) {both} given both in the spec and in "
                        "optimizer_options")
    return {**a, **b}


def _with_options(spec: OptimizerSpec, options: dict) -> OptimizerSpec:
    if not options:
        return spec
    merged = _merge(spec.label, dict(spec.options), options)
    return _as_factory(spec.make, spec.label, merged)


def _as_factory(obj: Any, label: str, options: dict) -> OptimizerSpec:
    from .optuna_bridge import is_optuna_sampler, optuna_sampler

    if is_optuna_sampler(obj):
        return optuna_sampler(obj, options, label)
    if hasattr(obj, "ask") and hasattr(obj, "tell") and not inspect.isclass(obj):
        raise SpecError(f"optimizer {label!r} is an optimizer object; give its class or a "
                        "factory (pool, rng, **options) -> optimizer, so that every run "
                        "starts fresh with its own seed")
    if not callable(obj):
        raise SpecError(f"optimizer {label!r} is not callable: an optimizer is made per run by "
                        "factory(pool, rng, **options) (a class with __init__(self, pool, rng))")
    _bind("optimizer", label, obj, (None, None), options)
    return OptimizerSpec(label, obj, options)
