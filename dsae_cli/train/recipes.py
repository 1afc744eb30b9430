"""Recipes: a model and its training, every stage, as one TOML file.

A recipe has a ``[model]`` table (fields of :class:`models.DSAEConfig`) and one ``[[train]]`` table
per stage (fields of :class:`dsae_cli.train.config.TrainConfig`, plus ``name`` and an optional
``[train.model]`` table of loss weights that stage changes). Stage 2 onwards starts from the
previous stage's ``best/`` model. The files shipped with the package are in ``dsae_cli/recipes/``;
``--recipe FILE.toml`` takes the user's own.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from dsae_cli.errors import DsaeError

#: keys a [[train]] table may hold besides the TrainConfig fields
STAGE_KEYS = ("name", "model")
#: model fields a later stage (or an --init-from run) may change: the objective, not the architecture
LOSS_WEIGHTS = ("beta_f", "beta_z", "cycle_weight", "cycle_floor", "likelihood_scale", "pair_weight", "contrast_weight", "f_mmd_weight")


@dataclass
class Recipe:
    name: str
    model: dict
    stages: list[dict]  # each: TrainConfig fields, "name", and "model" (loss weights of that stage)
    description: str = ""
    data: str | None = None  # the data the recipe is made for, when --data is not given
    source: str = ""  # where it was read from

    @property
    def minutes(self) -> float:
        return sum(float(s.get("minutes", 0.0)) for s in self.stages)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        return cls(**{k: d[k] for k in ("name", "model", "stages", "description", "data", "source") if k in d})


def builtin_names() -> list[str]:
    folder = resources.files("dsae_cli") / "recipes"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def default_recipe(data: str | None) -> str:
    """The recipe for ``--data`` when none is named: ``speech`` for speech:DIR, ``sprites`` for Sprites
    (``sprites`` or a .npz from ``dsae data sprites``, and when no data is given), else ``clips``, which
    assumes nothing about the background or the palette."""
    data = "sprites" if data is None else str(data)
    if data.startswith("speech:"):
        return "speech"
    if data == "shapes" or (data.lower().endswith(".npz") and _is_shapes_npz(data)):
        return "clips"  # the benchmark of clips that are not Sprites
    return "sprites" if data == "sprites" or data.lower().endswith(".npz") else "clips"


def _is_shapes_npz(path: str) -> bool:
    from dsae_cli.data.shapes import is_shapes_npz

    return is_shapes_npz(path)


def load_recipe(spec: str | Path) -> Recipe:
    """A built-in recipe by name (``sprites``) or a TOML file, checked field by field."""
    spec = str(spec)
    if spec.endswith(".toml") or "/" in spec:
        path = Path(spec)
        if not path.is_file():
            raise DsaeError(f"recipe file {path} not found; give a .toml file or one of: {', '.join(builtin_names())}")
        text, name = path.read_text(), path.stem
    else:
        names = builtin_names()
        if spec not in names:
            raise DsaeError(f"unknown --recipe {spec!r}{nearest(spec, names)}; use one of {', '.join(names)} or a FILE.toml")
        text, name = (resources.files("dsae_cli") / "recipes" / f"{spec}.toml").read_text(), spec
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise DsaeError(f"recipe {spec} is not valid TOML ({err}); fix the file") from None
    recipe = parse_recipe(raw, name)
    recipe.source = spec
    return recipe


def parse_recipe(raw: dict, name: str) -> Recipe:
    unknown = sorted(set(raw) - {"description", "data", "model", "train"})
    if unknown:
        raise DsaeError(f"recipe {name}: unknown table or key {unknown[0]!r}; a recipe has description, data, [model] and [[train]]")
    model = dict(raw.get("model", {}))
    stages = raw.get("train", [{}])
    if isinstance(stages, dict):
        stages = [stages]
    if not stages:
        raise DsaeError(f"recipe {name} has no [[train]] stage; add one")
    stages = [dict(s) for s in stages]
    for i, stage in enumerate(stages, 1):
        stage.setdefault("name", f"stage{i}")
        stage["model"] = dict(stage.get("model", {}))
    recipe = Recipe(name=name, model=model, stages=stages, description=str(raw.get("description", "")), data=raw.get("data"))
    check_recipe(recipe)
    return recipe


def _model_fields() -> dict[str, object]:
    from models import DSAEConfig

    return {f.name: f.default for f in dataclasses.fields(DSAEConfig) if f.name != "f_prior"}


def _train_fields() -> dict[str, object]:
    from dsae_cli.train.config import TrainConfig

    return {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name != "device"}


def valid_keys(recipe: Recipe | None = None) -> list[str]:
    keys = [f"model.{k}" for k in _model_fields()] + [f"train.{k}" for k in _train_fields()] + ["train.name"]
    keys += [f"train.model.{k}" for k in LOSS_WEIGHTS]
    if recipe is not None:
        for i in range(1, len(recipe.stages) + 1):
            keys += [f"train.{i}.{k}" for k in (*_train_fields(), "name")] + [f"train.{i}.model.{k}" for k in LOSS_WEIGHTS]
    return keys


def nearest(key: str, choices) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""


def check_recipe(recipe: Recipe) -> None:
    model_fields, train_fields = _model_fields(), _train_fields()
    for key in recipe.model:
        if key not in model_fields:
            raise DsaeError(f"recipe {recipe.name}: unknown model field {key!r}{nearest(key, model_fields)}")
        recipe.model[key] = _coerce(recipe.model[key], model_fields[key], f"model.{key}", f"recipe {recipe.name}")
    for i, stage in enumerate(recipe.stages, 1):
        for key in stage:
            if key not in train_fields and key not in STAGE_KEYS and key != "device":
                raise DsaeError(f"recipe {recipe.name}, stage {i}: unknown train field {key!r}{nearest(key, [*train_fields, *STAGE_KEYS])}")
            if key in train_fields:
                stage[key] = _coerce(stage[key], train_fields[key], f"train.{key}", f"recipe {recipe.name}")
        if "augment" in stage:
            from dsae_cli.train.config import augmentations

            augmentations(stage["augment"])  # an unknown name fails before any stage starts
        for key in stage["model"]:
            if key not in LOSS_WEIGHTS:
                raise DsaeError(
                    f"recipe {recipe.name}, stage {i}: a stage may change only the loss weights ({', '.join(LOSS_WEIGHTS)}), not {key!r}"
                )


def _coerce(value, default, key: str, where: str = "--set"):
    """A --set value to the type of the field's default (TOML syntax: 16, 5e-4, true, "mixture")."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return str(value).lower() in ("true", "1", "yes", "on")
    elif isinstance(default, int):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        return str(value)
    kind = {bool: "true or false", int: "a whole number", float: "a number"}.get(type(default), "text")
    raise DsaeError(f"{where}: {key}={value!r}: expected {kind}")


def _parse_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string


def apply_overrides(recipe: Recipe, assignments: list[str]) -> Recipe:
    """``--set model.beta_z=16 --set train.lr=5e-4 --set train.2.minutes=5``: a new recipe with those
    fields replaced. ``train.X`` sets X in every stage, ``train.N.X`` in stage N only."""
    recipe = copy.deepcopy(recipe)
    model_fields, train_fields = _model_fields(), _train_fields()
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DsaeError(f"--set takes KEY=VALUE (e.g. --set model.beta_z=16), not {item!r}")
        parts = key.split(".")
        value = _parse_value(text.strip())
        if parts[0] == "model" and len(parts) == 2 and parts[1] in model_fields:
            recipe.model[parts[1]] = _coerce(value, model_fields[parts[1]], key)
            continue
        if parts[0] == "train" and len(parts) >= 2:
            rest = parts[1:]
            stages = recipe.stages
            if rest[0].isdigit():
                n = int(rest[0])
                if not 1 <= n <= len(recipe.stages):
                    raise DsaeError(f"--set {key}: recipe {recipe.name} has {len(recipe.stages)} stage(s); use train.1 .. train.{len(recipe.stages)}")
                stages, rest = [recipe.stages[n - 1]], rest[1:]
            if len(rest) == 1 and (rest[0] in train_fields or rest[0] == "name"):
                for stage in stages:
                    stage[rest[0]] = str(value) if rest[0] == "name" else _coerce(value, train_fields[rest[0]], key)
                continue
            if len(rest) == 2 and rest[0] == "model" and rest[1] in LOSS_WEIGHTS:
                for stage in stages:
                    stage["model"][rest[1]] = _coerce(value, model_fields[rest[1]], key)
                continue
        raise DsaeError(f"--set: unknown key {key!r}{nearest(key, valid_keys(recipe))}; model fields are listed in docs/model.md")
    check_recipe(recipe)
    return recipe


def scale_minutes(recipe: Recipe, minutes: float) -> Recipe:
    """Every stage's minutes scaled so that they add up to ``minutes`` (kept in proportion)."""
    recipe = copy.deepcopy(recipe)
    total = recipe.minutes
    for stage in recipe.stages:
        stage["minutes"] = minutes * float(stage.get("minutes", 0.0)) / total if total > 0 else minutes / len(recipe.stages)
    return recipe


@dataclass
class StagePlan:
    """One stage as the loop runs it: its folder, training options and loss weights."""

    index: int
    name: str
    train: dict
    model: dict = field(default_factory=dict)

    def folder(self, run_dir: Path, n_stages: int) -> Path:
        return Path(run_dir) if n_stages == 1 else Path(run_dir) / f"{self.index}-{self.name}"


def stage_plans(recipe: Recipe) -> list[StagePlan]:
    return [
        StagePlan(i, stage["name"], {k: v for k, v in stage.items() if k not in STAGE_KEYS}, dict(stage["model"]))
        for i, stage in enumerate(recipe.stages, 1)
    ]
