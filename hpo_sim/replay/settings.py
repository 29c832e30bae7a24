"""What a study runs: presets (loaded and checked), rule sets, and settings checked against a
table before any replay starts.

A preset is a JSON object (hpo_sim/replay/presets/NAME.json, or any file):

    {"name": "readme", "description": "...",
     "optimizers": ["smac", "random"],            # optimizer names or specs (optuna:tpe,
                                                  #   package.module:Name[:k=v,...])
     "rules": [[], ["etr1:tau=1"], "median"],     # rule sets; [] = no rule, a string = one rule
                                                  #   (rule specs as on the command line)
     "goals": ["top:5", 0.99],                    # top:P (percent of the table) or an accuracy
     "goal_over": "complete",                     # what top:P ranks: complete configs or all
                                                  #   (Choi et al.); a goal may say its own,
                                                  #   top:P:all. Several goals share replays.
     "repeats": 20, "seed": 0,                    # integers (repeats >= 1, seed >= 0)
     "options": {"workers": 1}}                   # ReplayConfig fields shared by every setting

Every key is checked with its type: an unknown key, a string where a list belongs or
`"repeats": "two"` is a PresetError naming the preset, the key and the value.
`check_settings(table, settings)` refuses what a table cannot run (ETR-1 at an epoch >= T never
fires) and warns about what runs but cannot succeed (a goal above every final accuracy).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lcsim.errors import PresetError, check_preset_keys

from .rules import ETR1, LCE, GPRule, MedianRule, SuccessiveHalving, SVRRule, parse_rules
from .simulate import GOAL_OVER, Goal, ReplayConfig
from .study import with_baselines

__all__ = ["PRESET_DIR", "check_settings", "load_preset", "preset_settings", "rule_set"]

PRESET_DIR = Path(__file__).resolve().parent / "presets"

_REQUIRED = ("optimizers", "rules", "goals")
_OPTIONAL = ("name", "description", "goal_over", "repeats", "seed", "options")
# ReplayConfig fields a preset's "options" may set, with the JSON types they take
_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "workers": (int,), "time": (str,), "charge_eval": (bool,), "charge_overhead": (bool,),
    "max_time": (int, float), "max_evals": (int,), "optimizer_options": (dict,),
}


# older names, kept: the MNIST panels of Choi et al.'s figures
ALIASES = {"choi-fig4": "choi-fig4-mnist", "choi-fig5": "choi-fig5-mnist"}


def preset_names() -> list[str]:
    return sorted([x.stem for x in PRESET_DIR.glob("*.json")] + list(ALIASES))


def load_preset(name_or_path: str) -> dict[str, Any]:
    """A preset by name (hpo_sim/replay/presets/NAME.json) or a path to a JSON file, checked
    key by key (module docstring); PresetError names what is wrong."""
    p = Path(name_or_path)
    if not (p.suffix == ".json" and p.is_file()):
        if p.suffix == ".json" or "/" in str(name_or_path):
            raise PresetError(f"preset file {p}: no such file")
        p = PRESET_DIR / f"{ALIASES.get(name_or_path, name_or_path)}.json"
        if not p.is_file():
            raise PresetError(f"no preset {name_or_path!r}: not a JSON file, and not one of "
                              f"{preset_names()}")
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise PresetError(f"preset {p}: invalid JSON ({e})") from None
    _check_doc(doc, f"preset {p}")
    doc["_path"] = str(p)
    return doc


def _check_doc(doc: Any, where: str) -> None:
    check_preset_keys(doc, where, _REQUIRED, _REQUIRED + _OPTIONAL)
    for key, example in (("optimizers", '["smac", "random"]'),
                         ("rules", '[[], ["etr1:tau=1"]]'), ("goals", '["top:0.5"]')):
        v = doc[key]
        if not isinstance(v, list) or not v:
            raise PresetError(f"{where}: \"{key}\" must be a non-empty list such as {example}, "
                              f"got {json.dumps(v)}")
    for o in doc["optimizers"]:
        if not isinstance(o, str):
            raise PresetError(f"{where}: \"optimizers\" holds {json.dumps(o)}; each entry is "
                              "an optimizer name such as \"smac\"")
    for r in doc["rules"]:
        if not (isinstance(r, str) or isinstance(r, list) and all(isinstance(x, str)
                                                                  for x in r)):
            raise PresetError(f"{where}: \"rules\" holds {json.dumps(r)}; each entry is a rule "
                              "set: a list of rule specs ([] = no rule) or one spec string")
    for g in doc["goals"]:
        if isinstance(g, bool) or not isinstance(g, str | int | float):
            raise PresetError(f"{where}: \"goals\" holds {json.dumps(g)}; each entry is "
                              "\"top:P\" or an accuracy such as 0.99")
    if doc.get("goal_over", "complete") not in GOAL_OVER:
        raise PresetError(f"{where}: \"goal_over\" must be one of {list(GOAL_OVER)}, got "
                          f"{json.dumps(doc['goal_over'])}")
    for key, low in (("repeats", 1), ("seed", 0)):
        v = doc.get(key, low)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise PresetError(f"{where}: \"{key}\" must be an integer >= {low}, got "
                              f"{json.dumps(v)}")
    opts = doc.get("options", {})
    if not isinstance(opts, dict):
        raise PresetError(f"{where}: \"options\" must be an object such as "
                          f"{{\"workers\": 1}}, got {json.dumps(opts)}")
    for k, v in opts.items():
        if k not in _OPTION_TYPES:
            raise PresetError(f"{where}: options has no key {k!r}; allowed: "
                              f"{sorted(_OPTION_TYPES)}")
        types = _OPTION_TYPES[k]
        if (isinstance(v, bool) and bool not in types) or not isinstance(v, types):
            raise PresetError(f"{where}: options.{k} must be "
                              f"{' or '.join(t.__name__ for t in types)}, got {json.dumps(v)}")


def rule_set(rules: Sequence[str], where: str = "--rule") -> tuple[str, ...]:
    """The rule specs of one setting, without 'none' (no rule: the empty set). 'none' beside
    other rules is a ValueError: rules given together form one setting (stop if any says
    stop), and the no-rule baseline runs beside every rule set anyway."""
    rules = tuple(r.strip() for r in rules)
    named = [r for r in rules if r.lower() != "none"]
    if named and len(named) < len(rules):
        raise ValueError(f"{where}: 'none' cannot be combined with other rules "
                         f"({', '.join(rules)}): rules given together form one setting (stop "
                         "if any says stop), and the no-rule baseline always runs beside it; "
                         "leave out 'none'")
    return tuple(named)


def preset_settings(doc: dict[str, Any], **overrides: Any) -> list[ReplayConfig]:
    """Every (optimizer, rule set, goal) of a preset as a ReplayConfig; `overrides` are
    ReplayConfig fields (workers, time, ...) that replace the preset's `options`."""
    where = f"preset {doc.get('_path', doc.get('name'))}"
    opts = {**doc.get("options", {}), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        goals = [Goal.parse(str(g), over=doc.get("goal_over")) for g in doc["goals"]]
        out = []
        for opt in doc["optimizers"]:
            for goal in goals:
                for rules in doc["rules"]:
                    rules = rule_set([rules] if isinstance(rules, str) else rules, "rules")
                    out.append(ReplayConfig(optimizer=opt, rules=rules, goal=goal, **opts))
    except (TypeError, ValueError) as e:
        raise PresetError(f"{where}: {e}") from None
    return with_baselines(out)


def check_settings(table, settings: Sequence[ReplayConfig]) -> list[str]:
    """Raise ValueError for a setting the table cannot run as meant; return warnings (one per
    cause) for settings that run but cannot reach their goal."""
    T = int(table.epochs)
    final = np.asarray(table.final_accuracy, dtype=np.float64)
    best = float(np.nanmax(final)) if np.isfinite(final).any() else float("nan")
    warnings: list[str] = []
    for cfg in settings:
        goal = cfg.goal.resolve(table)  # a goal the table cannot give fails here
        for rule in parse_rules(cfg.rules).rules:
            # rules are consulted after epochs 1..T-1 (stopping at T saves nothing)
            if isinstance(rule, ETR1) and rule.tau >= T:
                raise ValueError(f"rule {rule} never fires on this table: it has T = {T} "
                                 f"epochs and rules are consulted after epochs 1..{T - 1}; "
                                 f"use tau <= {T - 1}")
            if isinstance(rule, MedianRule) and rule.grace >= T - 1:
                raise ValueError(f"rule {rule} never fires on this table: it has T = {T} "
                                 f"epochs, and grace={rule.grace} skips every epoch it could "
                                 f"judge (1..{T - 1}); use grace <= {T - 2}")
            first = {LCE: "min_epochs", SVRRule: "min_epochs", GPRule: "min_epochs",
                     SuccessiveHalving: "min_r"}
            key = first.get(type(rule))
            if key is not None and getattr(rule, key) >= T:
                raise ValueError(f"rule {rule} never fires on this table: it has T = {T} "
                                 f"epochs and rules are consulted after epochs 1..{T - 1}; "
                                 f"use {key} <= {T - 1}")
        if not goal <= best:  # NaN best (no complete config) fails resolve() first
            w = (f"goal {cfg.goal} ({goal:.4g}) is above every final accuracy in the table "
                 f"(best {best:.4g}): no run can reach it; the summary will read 'never reached'")
            if w not in warnings:
                warnings.append(w)
    return warnings
