"""Spec strings in the habit of FAISS's index factory: ``"pca64,int8"``, ``"opq16,pq16"``.

Each stage class registers the token forms it understands; :func:`parse_spec` turns a spec
string into fresh (unfitted) stages and suggests the closest valid forms for unknown tokens.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from eocompress.embeddings.codecs.base import Quantizer, Stage, Transform
from eocompress.errors import SpecError


@dataclass(frozen=True)
class SpecForm:
    """One registered token form: how it is written, what it means, and how to build it."""

    form: str  # e.g. "pca{d}"
    pattern: re.Pattern[str]
    role: str  # "transform" | "quantizer"
    description: str
    example: str
    build: Callable[[dict[str, str]], Stage]


_FORMS: list[SpecForm] = []


def register(form: str, pattern: str, description: str, example: str) -> Callable[[type], type]:
    """Class decorator: register ``cls`` for tokens matching ``pattern`` (named groups -> __init__ kwargs).

    Numeric groups are passed as ints, the rest as strings; a group that did not match is omitted
    so the class's default applies.
    """

    def decorator(cls: type) -> type:
        if not issubclass(cls, Transform | Quantizer):
            raise TypeError(f"{cls.__name__} must subclass Transform or Quantizer")
        compiled = re.compile(pattern + r"\Z")

        def build(groups: dict[str, str]) -> Stage:
            kwargs = {k: int(v) if v.isdigit() else v for k, v in groups.items() if v is not None}
            return cls(**kwargs)

        _FORMS.append(SpecForm(form, compiled, cls.role, description, example, build))
        return cls

    return decorator


def spec_forms() -> list[tuple[str, str]]:
    """(form, one-line description) for every registered token, transforms first."""
    ordered = sorted(_FORMS, key=lambda f: f.role != "transform")
    return [(f.form, f.description) for f in ordered]


def spec_examples() -> list[str]:
    """An example token of every registered form."""
    return [f.example for f in _FORMS]


def _build_token(token: str) -> Stage:
    for form in _FORMS:
        match = form.pattern.match(token)
        if match:
            return form.build(match.groupdict())
    candidates = list(dict.fromkeys(spec_examples() + [f.form for f in _FORMS]))  # each suggestion once
    close = difflib.get_close_matches(token, candidates, n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise SpecError(f"unknown codec token {token!r}{hint} (`eocompress codecs` lists every form)")


def parse_spec(spec: str) -> tuple[list[Transform], Quantizer]:
    """Parse ``"[transform,...,]quantizer"`` into fresh stages; a spec of transforms only ends in float32."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError("empty codec spec; write e.g. 'int8', 'pca64,int8' or 'opq16,pq16'")
    tokens = [t.strip().lower() for t in spec.split(",")]
    if any(not t for t in tokens):
        raise SpecError(f"codec spec {spec!r} has an empty token; separate tokens by single commas")
    stages = [_build_token(t) for t in tokens]
    if isinstance(stages[-1], Transform):
        stages.append(_build_token("float32"))
    *head, quantizer = stages
    transforms: list[Transform] = []
    for stage in head:
        if not isinstance(stage, Transform):
            raise SpecError(
                f"{stage.token!r} is a quantizer and must come last in {spec!r}; "
                "write reducers first, e.g. 'pca64,int8'"
            )
        transforms.append(stage)
    if not isinstance(quantizer, Quantizer):  # every stage is a Transform or a Quantizer
        raise SpecError(f"{quantizer.token!r} in {spec!r} is neither a transform nor a quantizer")
    for i, stage in enumerate(transforms):
        following = transforms[i + 1] if i + 1 < len(transforms) else quantizer
        stage_requires = getattr(stage, "requires_next", None)
        if stage_requires is not None:
            stage_requires(following)
    return transforms, quantizer


def spec_of(transforms: list[Transform], quantizer: Quantizer) -> str:
    """The canonical spec string of parsed stages (each stage's own token)."""
    return ",".join(stage.token for stage in (*transforms, quantizer))


def canonical_spec(spec: str) -> str:
    """The canonical form of ``spec`` (lower case, float32 appended to transforms only), without a Codec."""
    return spec_of(*parse_spec(spec))


def code_size(spec: str, dim: int) -> int:
    """Exact stored bytes per ``dim``-d vector of ``spec``, without a Codec or fitting (FAISS factory style).

    Raises a SpecError naming the stage when ``spec`` cannot be applied to ``dim``-d vectors.
    """
    transforms, quantizer = parse_spec(spec)
    for stage in transforms:
        stage.check_input_dim(dim)
        dim = stage.output_dim(dim)
    quantizer.check_input_dim(dim)
    return int(quantizer.code_size(dim))
