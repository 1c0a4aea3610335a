"""Label Studio labeling configs: which control tags galton scores, and their class order.

A labeling config is XML. Every classification control tag becomes one or more
*questions*, each scored as its own :class:`~galton.quality.AnnotationMatrix`:

=============  ============================================  ==============================
tag            question(s)                                   classes, in this order
=============  ============================================  ==============================
``Choices``    single choice: one question named after it    its ``Choice`` values (alias
                                                             when set), as in the config
``Choices``    ``choice="multiple"``: one yes/no question    ``("no", "yes")``
               per choice, named ``"<name>:<choice>"``
``Rating``     one ordinal question                          ``"1"`` .. ``maxRating``
``Pairwise``   one question (RLHF-style comparison)          ``("left", "right")``
``Taxonomy``   one question over the leaves                  leaf paths ``"A / A1"``
=============  ============================================  ==============================

Every other control tag (``Labels``, ``TextArea``, ``RectangleLabels``, ...) and
per-region classifications are listed in :attr:`LabelConfig.unscored`, never mixed in.
Class order comes from the config, so class codes stay stable across syncs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from galton.quality import InputError

__all__ = ["NO_YES", "PAIRWISE_CLASSES", "LabelConfig", "Question", "parse_label_config"]

NO_YES = ("no", "yes")
PAIRWISE_CLASSES = ("left", "right")
TAXONOMY_SEPARATOR = " / "
_SCORED_TAGS = {"Choices", "Rating", "Pairwise", "Taxonomy"}
# Control tags that take part in annotation results (Label Studio's object tags such as
# Text, Image or Header carry data, not answers, and are not reported).
_CONTROL_TAGS = {
    "Choices", "Rating", "Pairwise", "Taxonomy", "Labels", "TextArea", "Number", "DateTime",
    "Ranker", "List", "Relations", "Relation", "RectangleLabels", "PolygonLabels", "KeyPointLabels",
    "BrushLabels", "EllipseLabels", "HyperTextLabels", "ParagraphLabels", "TimeSeriesLabels",
    "VideoRectangle", "Rectangle", "Polygon", "KeyPoint", "Brush", "Ellipse", "MagicWand",
    "BitmaskLabels", "Bitmask", "VectorLabels", "Vector", "TimelineLabels", "Cuboid", "CuboidLabels",
}


@dataclass(frozen=True, slots=True)
class Question:
    """One scored question: a matrix of its own in the pull, one result in a prediction.

    Attributes
    ----------
    key : str
        Unique within the config: the control's ``name``, or ``"<name>:<choice>"`` for
        one choice of a multiple-choice control.
    control : str
        The control tag's ``name`` (``from_name`` in results).
    tag : str
        ``"Choices"``, ``"Rating"``, ``"Pairwise"`` or ``"Taxonomy"``.
    to_name : str
        The object tag the control labels (``to_name`` in results).
    classes : tuple of str
        Class order: codes ``0..n_classes-1`` of the question's matrix.
    choice : str or None
        For one choice of a multiple-choice control: that choice; else None.
    ordinal : bool
        True for ``Rating`` (classes are ordered), for agreement measures that use it.
    """

    key: str
    control: str
    tag: str
    to_name: str
    classes: tuple[str, ...]
    choice: str | None = None
    ordinal: bool = False

    @property
    def result_type(self) -> str:
        """The ``type`` field of this control's results (``"choices"``, ``"rating"``, ...)."""
        return self.tag.lower()


@dataclass(frozen=True, slots=True)
class LabelConfig:
    """The scored questions of a labeling config and what was left out.

    Attributes
    ----------
    questions : tuple of Question
        In config order; a multiple-choice control gives one question per choice.
    unscored : tuple of (tag, name, reason)
        Control tags galton does not score, with the reason, e.g.
        ``("TextArea", "comment", "free text is not a classification")``.
    xml : str
        The config as given.
    """

    questions: tuple[Question, ...]
    unscored: tuple[tuple[str, str, str], ...]
    xml: str

    def question(self, key: str) -> Question:
        for question in self.questions:
            if question.key == key:
                return question
        raise KeyError(f"no question {key!r} in the labeling config; known: {[q.key for q in self.questions]}")

    def controls(self) -> dict[str, list[Question]]:
        """Questions grouped by control name, in config order."""
        grouped: dict[str, list[Question]] = {}
        for question in self.questions:
            grouped.setdefault(question.control, []).append(question)
        return grouped

    def to_dict(self) -> dict[str, Any]:
        return {
            "questions": [
                {"key": q.key, "control": q.control, "tag": q.tag, "to_name": q.to_name, "classes": list(q.classes)}
                for q in self.questions
            ],
            "unscored": [{"tag": t, "name": n, "reason": r} for t, n, r in self.unscored],
        }


def _truthy(value: str | None) -> bool:
    return str(value).strip().lower() in {"true", "1", "yes"}


def _choice_values(element: ET.Element) -> list[str]:
    values = []
    for child in element.iter("Choice"):
        value = child.get("alias") or child.get("value")
        if value is None:
            raise InputError(f"a <Choice> inside <Choices name={element.get('name')!r}> has no value attribute")
        values.append(value)
    return values


def _taxonomy_leaves(element: ET.Element) -> list[str]:
    leaves: list[str] = []

    def walk(node: ET.Element, path: tuple[str, ...]) -> None:
        children = [child for child in node if child.tag == "Choice"]
        for child in children:
            value = child.get("alias") or child.get("value")
            if value is None:
                raise InputError(f"a <Choice> inside <Taxonomy name={element.get('name')!r}> has no value attribute")
            here = (*path, value)
            if any(grandchild.tag == "Choice" for grandchild in child):
                walk(child, here)
            else:
                leaves.append(TAXONOMY_SEPARATOR.join(here))

    walk(element, ())
    return leaves


def _rating_classes(element: ET.Element) -> tuple[str, ...]:
    raw = element.get("maxRating", "5")
    try:
        top = int(raw)
    except ValueError:
        name = element.get("name")
        raise InputError(f"<Rating name={name!r}> has maxRating={raw!r}; it must be an integer") from None
    if not 1 <= top <= 100:
        raise InputError(f"<Rating name={element.get('name')!r}> has maxRating={top}; galton scores 1..100")
    return tuple(str(value) for value in range(1, top + 1))


def parse_label_config(xml: str) -> LabelConfig:
    """Find the scored questions of a Label Studio labeling config.

    Parameters
    ----------
    xml : str
        The project's ``label_config``.

    Returns
    -------
    LabelConfig

    Raises
    ------
    InputError
        The XML does not parse, a control has no ``name``/``toName``, two controls share a
        name, a Choices/Taxonomy has no choices, or a Choice has no value.

    Examples
    --------
    >>> config = parse_label_config(
    ...     '<View><Text name="t" value="$text"/>'
    ...     '<Choices name="sentiment" toName="t"><Choice value="neg"/><Choice value="pos"/></Choices>'
    ...     '<TextArea name="note" toName="t"/></View>')
    >>> [(q.key, q.classes) for q in config.questions]
    [('sentiment', ('neg', 'pos'))]
    >>> config.unscored
    (('TextArea', 'note', 'not a classification control'),)
    """
    if not isinstance(xml, str) or not xml.strip():
        raise InputError("the labeling config is empty; pass the project's label_config XML")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise InputError(f"the labeling config is not valid XML: {error}") from None

    questions: list[Question] = []
    unscored: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for element in root.iter():
        tag = element.tag
        if tag not in _CONTROL_TAGS:
            continue
        name = element.get("name")
        if not name:
            raise InputError(f"a <{tag}> control in the labeling config has no name attribute")
        if name in seen:
            raise InputError(f"two controls in the labeling config are named {name!r}; names must be unique")
        seen.add(name)
        if tag not in _SCORED_TAGS:
            unscored.append((tag, name, "not a classification control"))
            continue
        if _truthy(element.get("perRegion")):
            unscored.append((tag, name, "per-region classification (answers belong to regions, not the task)"))
            continue
        to_name = element.get("toName")
        if not to_name:
            raise InputError(f"<{tag} name={name!r}> has no toName attribute")
        to_name = to_name.split(",")[0].strip()
        if tag == "Choices":
            values = _choice_values(element)
            if not values:
                raise InputError(f"<Choices name={name!r}> has no <Choice> children")
            duplicated = sorted({v for v in values if values.count(v) > 1})
            if duplicated:
                raise InputError(f"<Choices name={name!r}> lists the same choice twice: {duplicated}")
            if element.get("choice", "single").strip().lower() == "multiple":
                questions.extend(
                    Question(f"{name}:{value}", name, tag, to_name, NO_YES, choice=value) for value in values
                )
            else:
                questions.append(Question(name, name, tag, to_name, tuple(values)))
        elif tag == "Rating":
            questions.append(Question(name, name, tag, to_name, _rating_classes(element), ordinal=True))
        elif tag == "Pairwise":
            questions.append(Question(name, name, tag, to_name, PAIRWISE_CLASSES))
        else:  # Taxonomy
            leaves = _taxonomy_leaves(element)
            if not leaves:
                raise InputError(f"<Taxonomy name={name!r}> has no <Choice> children")
            questions.append(Question(name, name, tag, to_name, tuple(leaves)))
    return LabelConfig(tuple(questions), tuple(unscored), xml)


def question_answers(question: Question, value: Mapping[str, Any]) -> str | None:
    """The class one annotation result gives ``question``, or None when it says nothing.

    ``value`` is a result's ``value`` dict. Raises :class:`InputError` (message without task
    data) when the answer has the wrong shape or names a class outside the config.
    """
    if question.tag == "Choices":
        choices = value.get("choices")
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise InputError(f"a {question.control!r} result has no list of choices")
        if question.choice is not None:
            return NO_YES[1] if question.choice in choices else NO_YES[0]
        if not choices:
            return None
        if len(choices) > 1:
            raise InputError(f"a single-choice {question.control!r} result holds {len(choices)} choices")
        return choices[0]
    if question.tag == "Rating":
        rating = value.get("rating")
        if isinstance(rating, bool) or not isinstance(rating, int | float) or rating != int(rating):
            raise InputError(f"a {question.control!r} rating is not a whole number")
        return str(int(rating))
    if question.tag == "Pairwise":
        selected = value.get("selected")
        if not isinstance(selected, str):
            raise InputError(f"a {question.control!r} pairwise result has no 'selected' side")
        return selected
    paths = value.get("taxonomy")
    if not isinstance(paths, list) or not all(isinstance(p, list) and p for p in paths):
        raise InputError(f"a {question.control!r} taxonomy result has no list of paths")
    if not paths:
        return None
    if len(paths) > 1:
        raise InputError(f"a {question.control!r} taxonomy result selects {len(paths)} leaves; galton scores one")
    return TAXONOMY_SEPARATOR.join(str(part) for part in paths[0])
