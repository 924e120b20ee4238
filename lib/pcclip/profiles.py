"""Typed run configurations and the named profiles (smoke, diffworld, paper, paper-b32).

A notebook names a profile and a flat dict of dotted overrides
(``{"pretrain.steps": 50}``); `load_profile` validates every name and type, so a
typo fails at once instead of being silently ignored as papermill would.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

FORCE_ENV = "PCCLIP_FORCE_PROFILE"  # set by the test-suite so nbval runs notebooks in smoke
DATA_ENV = "PCCLIP_DATA"


@dataclass(frozen=True)
class WorldConfig:
    """DiffWorld sizes and the compositional holdout ("shape:colour" never seen in training)."""

    seed: int = 0
    image_size: int = 32
    n_train: int = 20000
    n_val: int = 1000
    n_test: int = 2000
    n_holdout: int = 1000
    holdout: tuple[str, ...] = ("ring:green", "diamond:purple", "star:red", "hexagon:blue", "cross:yellow")


@dataclass(frozen=True)
class ModelConfig:
    """A model is named (model_name, pretrained) as in open_clip; pretrained "" means
    "pretrain on DiffWorld from scratch"; a file path works wherever a tag does."""

    model_name: str = "diffclip-tiny"
    pretrained: str = ""
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    precision: str = "fp32"  # "fp32" or "bf16" (autocast, CUDA only)


@dataclass(frozen=True)
class PretrainConfig:
    """Standard CLIP pretraining of the small model on DiffWorld captions."""

    steps: int = 700
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 50
    seed: int = 0
    log_every: int = 25


@dataclass(frozen=True)
class CacheConfig:
    """Image-embedding cache: batch size of the encoder and images per shard file."""

    batch_size: int = 512
    shard_size: int = 4096
    num_workers: int = 0


@dataclass(frozen=True)
class SynthesisConfig:
    """Difference-data synthesis (issue: data synthesis). Owned by pcclip.synthesis."""

    writer: str = "template"  # "template", "hf" or "openai"
    mode: str = "caption"  # template writer: "caption" (sees captions only) or "oracle" (exact attributes)
    n_pairs: int = 20000
    seed: int = 0


@dataclass(frozen=True)
class FinetuneConfig:
    """PC-CLIP finetuning of the text tower (issue: finetuning). Owned by pcclip.finetune."""

    steps: int = 300
    batch_size: int = 256
    lr: float = 3e-5
    temperature: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation sizes (issue: evaluation). Owned by pcclip.evaluation."""

    n_images: int = 100  # images per difference-classification draw (paper: 100, all pairs)
    seeds: int = 5  # draws, reported as mean and standard error (paper: 5)


@dataclass(frozen=True)
class GeometryConfig:
    """Embedding geometry, analogies and retrieval (issue: geometry). Owned by pcclip.geometry."""

    gallery_size: int = 500
    seed: int = 0


@dataclass(frozen=True)
class Profile:
    name: str
    source: str  # "diffworld" (procedural world) or "paper" (open_clip weights + real data)
    data_root: str = ""  # paper: datasets and COCO; "" means $PCCLIP_DATA
    seed: int = 0
    world: WorldConfig = field(default_factory=WorldConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)


def _smoke() -> Profile:
    return Profile(
        name="smoke", source="diffworld",
        world=WorldConfig(n_train=2048, n_val=256, n_test=512, n_holdout=256),
        pretrain=PretrainConfig(steps=40, batch_size=128, warmup=5, log_every=10),
        cache=CacheConfig(batch_size=256, shard_size=512),
        synthesis=SynthesisConfig(n_pairs=1000),
        finetune=FinetuneConfig(steps=20, batch_size=64),
        eval=EvalConfig(n_images=30, seeds=2),
        geometry=GeometryConfig(gallery_size=100),
    )


def _paper(model_name: str, pretrained: str, name: str) -> Profile:
    return Profile(
        name=name, source="paper",
        model=ModelConfig(model_name=model_name, pretrained=pretrained, device="auto", precision="bf16"),
        cache=CacheConfig(batch_size=256, shard_size=8192, num_workers=8),
    )


PROFILES: dict[str, typing.Callable[[], Profile]] = {
    "smoke": _smoke,
    "diffworld": lambda: Profile(name="diffworld", source="diffworld"),
    "paper": lambda: _paper("ViT-L-14", "datacomp_xl_s13b_b90k", "paper"),
    "paper-b32": lambda: _paper("ViT-B-32", "openai", "paper-b32"),
}


def _leaf_fields(cls: type, prefix: str = "") -> dict[str, Any]:
    """Dotted name -> type for every overridable field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.update(_leaf_fields(tp, f"{prefix}{f.name}."))
        elif f.name != "name":
            out[f"{prefix}{f.name}"] = tp
    return out


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Convert an override (possibly a CLI string) to the field's type, or explain why not."""
    origin = typing.get_origin(tp)
    try:
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(v).strip() for v in items if str(v).strip())
        if tp is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return value.lower() in ("true", "1")
            return bool(value)
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return tp(value)
    except (TypeError, ValueError):
        raise ValueError(f"override {key}={value!r}: expected {getattr(tp, '__name__', tp)}") from None


def _set(cfg: Any, dotted: str, value: Any) -> Any:
    head, _, rest = dotted.partition(".")
    if not rest:
        return replace(cfg, **{head: value})
    return replace(cfg, **{head: _set(getattr(cfg, head), rest, value)})


def load_profile(name: str, overrides: dict[str, Any] | None = None) -> Profile:
    """The named profile with dotted overrides applied and checked.

    If $PCCLIP_FORCE_PROFILE is set (the test-suite does this for nbval), it replaces
    `name`, so notebooks whose parameters cell says "diffworld" run at smoke size.
    """
    forced = os.environ.get(FORCE_ENV)
    if forced and forced != name:
        print(f"profile {name!r} replaced by {forced!r} from ${FORCE_ENV}")
        name = forced
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    profile = PROFILES[name]()
    known = _leaf_fields(Profile)
    for key, value in (overrides or {}).items():
        if key not in known:
            close = [k for k in known if k.split(".")[-1] == key.split(".")[-1]]
            hint = f" (did you mean {close}?)" if close else f"; known: {sorted(known)}"
            raise ValueError(f"unknown override {key!r} for profile {name!r}{hint}")
        profile = _set(profile, key, _coerce(key, value, known[key]))
    return profile


def parse_overrides(items: list[str]) -> dict[str, str]:
    """['pretrain.steps=50', ...] -> dict; values stay strings and are typed by load_profile."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like section.field=value, e.g. pretrain.steps=50")
        out[key.strip()] = value.strip()
    return out


def data_root(profile: Profile) -> str:
    """The paper data root from the profile or $PCCLIP_DATA, failing with what to set."""
    root = profile.data_root or os.environ.get(DATA_ENV, "")
    if not root:
        raise FileNotFoundError(
            f"profile {profile.name!r} needs a data root: pass data_root=/path (override) or set "
            f"${DATA_ENV}; see README 'Paper profile: data' for the expected layout"
        )
    if not os.path.isdir(root):
        raise FileNotFoundError(f"data root {root!r} (profile {profile.name!r}) does not exist; create it and "
                                "download the datasets listed in README 'Paper profile: data'")
    return root
