"""The annotation data model: integer-coded COO triplets and their external ids.

Every algorithm in ``galton.quality`` takes an :class:`AnnotationMatrix`: one row per
annotation, ``(item, worker, label)`` as ``int32`` codes. The :class:`Encoding`
returned alongside it maps codes back to the caller's ids and class names.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._errors import InputError, describe_examples, rows_text

__all__ = ["AnnotationMatrix", "Encoding"]

_MAX_CODE = np.iinfo(np.int32).max


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, np.floating) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _sorted_unique(values: Iterable[Hashable]) -> list[Hashable]:
    unique = list(dict.fromkeys(values))
    try:
        return sorted(unique)  # type: ignore[type-var]
    except TypeError:
        return sorted(unique, key=lambda v: (type(v).__name__, str(v)))


def _readonly(array: NDArray[Any]) -> NDArray[Any]:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, slots=True)
class Encoding:
    """External ids for the integer codes of an :class:`AnnotationMatrix`.

    Attributes
    ----------
    item_ids, worker_ids, class_names : tuple
        ``item_ids[c]`` is the caller's id of item code ``c``; likewise for workers
        and classes. Class order is the order the caller gave (e.g. the labeling
        config's), so codes stay stable across runs.
    """

    item_ids: tuple[Hashable, ...]
    worker_ids: tuple[Hashable, ...]
    class_names: tuple[Hashable, ...]
    _item_index: dict[Hashable, int] = field(init=False, repr=False, compare=False)
    _worker_index: dict[Hashable, int] = field(init=False, repr=False, compare=False)
    _class_index: dict[Hashable, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("item_ids", "worker_ids", "class_names"):
            values = tuple(getattr(self, name))
            object.__setattr__(self, name, values)
            index = {value: code for code, value in enumerate(values)}
            if len(index) != len(values):
                seen: set[Hashable] = set()
                repeated = [v for v in values if v in seen or seen.add(v)]
                raise InputError(
                    f"{name} must be unique; repeated: {describe_examples(dict.fromkeys(repeated))}"
                )
            object.__setattr__(self, "_" + name.split("_")[0] + "_index", index)

    def item_code(self, item_id: Hashable) -> int:
        """Code of one item id; ``KeyError`` naming the id when unknown."""
        return self._lookup(self._item_index, item_id, "item")

    def worker_code(self, worker_id: Hashable) -> int:
        """Code of one worker id; ``KeyError`` naming the id when unknown."""
        return self._lookup(self._worker_index, worker_id, "worker")

    def class_code(self, class_name: Hashable) -> int:
        """Code of one class name; ``KeyError`` naming the class when unknown."""
        return self._lookup(self._class_index, class_name, "class")

    @staticmethod
    def _lookup(index: Mapping[Hashable, int], key: Hashable, kind: str) -> int:
        try:
            return index[key]
        except KeyError:
            raise KeyError(f"unknown {kind} {key!r}") from None

    def decode_labels(self, codes: ArrayLike) -> list[Hashable | None]:
        """Class names for an array of class codes; ``-1`` (no label) becomes ``None``."""
        names = self.class_names
        return [names[c] if c >= 0 else None for c in np.asarray(codes, dtype=np.int64).tolist()]

    def encode_gold(self, gold: Mapping[Hashable, Hashable], *, strict: bool = True) -> NDArray[np.int32]:
        """Turn ``{item_id: class_name}`` into an ``(n_items,)`` code array, ``-1`` where unknown.

        Parameters
        ----------
        gold : mapping
            Known true labels by external item id.
        strict : bool
            When true, gold items that are not in this encoding raise; when false they
            are ignored (e.g. a gold file that covers more items than were annotated).
            Unknown class names always raise.

        Raises
        ------
        InputError
            Naming the unknown classes (and items when ``strict``).
        """
        codes = np.full(len(self.item_ids), -1, dtype=np.int32)
        unknown_items: list[Hashable] = []
        unknown_classes: dict[Hashable, list[Hashable]] = {}
        for item_id, name in gold.items():
            item = self._item_index.get(item_id)
            if item is None:
                unknown_items.append(item_id)
                continue
            label = self._class_index.get(name)
            if label is None:
                unknown_classes.setdefault(name, []).append(item_id)
                continue
            codes[item] = label
        if unknown_classes:
            first = next(iter(unknown_classes))
            raise InputError(
                f"{sum(map(len, unknown_classes.values()))} gold labels use classes outside "
                f"{list(self.class_names)!r}: {describe_examples(unknown_classes)} "
                f"(e.g. items {describe_examples(unknown_classes[first], limit=3)}); "
                "fix the gold file or pass the full class list"
            )
        if strict and unknown_items:
            raise InputError(
                f"{len(unknown_items)} gold items have no annotations: "
                f"{describe_examples(unknown_items)}; drop them or pass strict=False"
            )
        return _readonly(codes)


@dataclass(frozen=True, slots=True)
class AnnotationMatrix:
    """Annotations as integer-coded COO triplets, one row per (item, worker) pair.

    Attributes
    ----------
    items, workers, labels : ndarray of int32, shape (n_annotations,)
        Codes in ``[0, n_items)``, ``[0, n_workers)`` and ``[0, n_classes)``.
    n_items, n_workers, n_classes : int
        Sizes of the code spaces. Items or workers without annotations are allowed
        (e.g. gold items not yet labelled); every algorithm handles them.

    The arrays are read-only. Build one with :meth:`from_triplets` (external ids) or
    :meth:`from_codes` (codes you already have); both reject duplicate pairs.
    """

    items: NDArray[np.int32]
    workers: NDArray[np.int32]
    labels: NDArray[np.int32]
    n_items: int
    n_workers: int
    n_classes: int

    def __post_init__(self) -> None:
        arrays = []
        for name in ("items", "workers", "labels"):
            raw = np.asarray(getattr(self, name))
            if raw.ndim != 1:
                raise InputError(f"{name} must be one-dimensional, got shape {raw.shape}")
            if raw.size and not np.issubdtype(raw.dtype, np.integer):
                raise InputError(f"{name} must hold integer codes, got dtype {raw.dtype}")
            array = np.ascontiguousarray(raw, dtype=np.int32)
            if array is raw or np.shares_memory(array, raw):
                array = array.copy()
            object.__setattr__(self, name, _readonly(array))
            arrays.append(array)
        if not (len(arrays[0]) == len(arrays[1]) == len(arrays[2])):
            raise InputError(
                "items, workers and labels must have the same length, got "
                f"{len(arrays[0])}, {len(arrays[1])} and {len(arrays[2])}"
            )
        for name, array, size in zip(
            ("items", "workers", "labels"), arrays, (self.n_items, self.n_workers, self.n_classes), strict=True
        ):
            if int(size) < 0 or int(size) > _MAX_CODE:
                raise InputError(f"n_{name} must be in [0, {_MAX_CODE}], got {size}")
            object.__setattr__(self, "n_" + name if name != "labels" else "n_classes", int(size))
            if array.size and (array.min() < 0 or array.max() >= size):
                bad = np.flatnonzero((array < 0) | (array >= size))
                raise InputError(
                    f"{bad.size} {name} codes fall outside [0, {size}) at rows {rows_text(bad)}"
                )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_triplets(
        cls,
        items: Sequence[Hashable] | ArrayLike,
        workers: Sequence[Hashable] | ArrayLike,
        labels: Sequence[Hashable] | ArrayLike,
        *,
        classes: Sequence[Hashable] | None = None,
        item_ids: Sequence[Hashable] | None = None,
        worker_ids: Sequence[Hashable] | None = None,
    ) -> tuple[AnnotationMatrix, Encoding]:
        """Encode annotations given as three aligned sequences of external ids.

        Parameters
        ----------
        items, workers, labels : sequences of hashable, same length
            Row ``k`` says worker ``workers[k]`` gave ``labels[k]`` to ``items[k]``.
        classes : sequence, optional
            Class order (e.g. from the labeling config). Labels outside it raise.
            Default: the sorted distinct labels.
        item_ids, worker_ids : sequence, optional
            Explicit code order, which may include ids without annotations. Ids
            outside them raise. Default: order of first appearance.

        Returns
        -------
        (AnnotationMatrix, Encoding)

        Raises
        ------
        InputError
            Empty input, unequal lengths, missing values (None, NaN, blank), labels
            outside ``classes``, ids outside ``item_ids``/``worker_ids``, or the same
            (item, worker) pair twice; each message names the offending rows.

        Examples
        --------
        >>> m, enc = AnnotationMatrix.from_triplets(["a", "a", "b"], [1, 2, 1], ["x", "y", "x"])
        >>> m.n_items, m.n_workers, m.n_classes, enc.class_names
        (2, 2, 2, ('x', 'y'))
        """
        columns = {"item": _as_list(items), "worker": _as_list(workers), "label": _as_list(labels)}
        lengths = {name: len(values) for name, values in columns.items()}
        if len(set(lengths.values())) != 1:
            raise InputError(
                "items, workers and labels must have the same length, got "
                + ", ".join(f"{n}={k}" for n, k in lengths.items())
            )
        if lengths["item"] == 0:
            raise InputError("no annotations: items, workers and labels are empty")
        for name, values in columns.items():
            missing = [row for row, value in enumerate(values) if _is_missing(value)]
            if missing:
                raise InputError(
                    f"{len(missing)} annotations have a missing {name} (None, NaN or blank) "
                    f"at rows {rows_text(missing)}; drop or fill those rows"
                )
        item_codes, item_order = _encode(columns["item"], item_ids, "item", "item_ids")
        worker_codes, worker_order = _encode(columns["worker"], worker_ids, "worker", "worker_ids")
        if classes is None:
            classes = _sorted_unique(columns["label"])
        label_codes, class_order = _encode(columns["label"], classes, "label", "classes")
        encoding = Encoding(item_order, worker_order, class_order)
        matrix = cls.from_codes(
            item_codes,
            worker_codes,
            label_codes,
            n_items=len(item_order),
            n_workers=len(worker_order),
            n_classes=len(class_order),
            encoding=encoding,
        )
        return matrix, encoding

    @classmethod
    def from_codes(
        cls,
        items: ArrayLike,
        workers: ArrayLike,
        labels: ArrayLike,
        *,
        n_items: int | None = None,
        n_workers: int | None = None,
        n_classes: int | None = None,
        encoding: Encoding | None = None,
    ) -> AnnotationMatrix:
        """Build from integer codes, checking ranges and rejecting duplicate pairs.

        Sizes default to ``max(code) + 1``. ``encoding`` only improves error messages.
        """
        items_a = np.asarray(items)
        workers_a = np.asarray(workers)
        labels_a = np.asarray(labels)

        def size(given: int | None, codes: NDArray[Any]) -> int:
            if given is not None:
                return int(given)
            return int(codes.max()) + 1 if codes.size else 0

        matrix = cls(
            items_a,
            workers_a,
            labels_a,
            size(n_items, items_a),
            size(n_workers, workers_a),
            size(n_classes, labels_a),
        )
        matrix._check_unique_pairs(encoding)
        return matrix

    def _check_unique_pairs(self, encoding: Encoding | None) -> None:
        if self.n_annotations < 2:
            return
        key = self.items.astype(np.int64) * max(self.n_workers, 1) + self.workers
        order = np.argsort(key, kind="stable")
        repeated = np.flatnonzero(key[order][1:] == key[order][:-1]) + 1
        if repeated.size == 0:
            return
        rows = np.sort(order[repeated])
        pairs = []
        for row in rows[:3].tolist():
            item, worker = int(self.items[row]), int(self.workers[row])
            if encoding is not None:
                pairs.append((encoding.item_ids[item], encoding.worker_ids[worker]))
            else:
                pairs.append((item, worker))
        raise InputError(
            f"{rows.size} annotations repeat an (item, worker) pair at rows {rows_text(rows)}, "
            f"e.g. {describe_examples(pairs, limit=3)}; keep one annotation per worker and "
            "item (the Label Studio connector keeps the latest)"
        )

    # ------------------------------------------------------------------ views
    @property
    def n_annotations(self) -> int:
        """Number of annotations (triplets)."""
        return int(self.items.shape[0])

    def label_counts(self) -> NDArray[np.int64]:
        """Votes per item and class, shape ``(n_items, n_classes)``.

        Cost: one ``bincount`` over the triplets.
        """
        flat = self.items.astype(np.int64) * self.n_classes + self.labels
        counts = np.bincount(flat, minlength=self.n_items * self.n_classes)
        return counts.reshape(self.n_items, self.n_classes)

    def item_sizes(self) -> NDArray[np.int64]:
        """Annotations per item, shape ``(n_items,)``."""
        return np.bincount(self.items, minlength=self.n_items)

    def worker_sizes(self) -> NDArray[np.int64]:
        """Annotations per worker, shape ``(n_workers,)``."""
        return np.bincount(self.workers, minlength=self.n_workers)

    def take_items(self, item_codes: ArrayLike) -> AnnotationMatrix:
        """A matrix whose item ``k`` is item ``item_codes[k]`` of this one.

        Codes may repeat (a bootstrap resample): each copy becomes its own item.
        Workers and classes keep their codes. Cost: O(n_annotations log n_annotations).
        """
        chosen = np.asarray(item_codes, dtype=np.int64)
        if chosen.ndim != 1:
            raise InputError(f"item_codes must be one-dimensional, got shape {chosen.shape}")
        if chosen.size and (chosen.min() < 0 or chosen.max() >= self.n_items):
            raise InputError(f"item_codes must lie in [0, {self.n_items})")
        order = np.argsort(self.items, kind="stable")
        starts = np.searchsorted(self.items[order], np.arange(self.n_items + 1))
        lengths = (starts[1:] - starts[:-1])[chosen]
        total = int(lengths.sum())
        new_items = np.repeat(np.arange(chosen.size, dtype=np.int64), lengths)
        offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        rows = order[np.repeat(starts[:-1][chosen], lengths) + offsets]
        return AnnotationMatrix(
            new_items.astype(np.int32),
            self.workers[rows],
            self.labels[rows],
            int(chosen.size),
            self.n_workers,
            self.n_classes,
        )


def _as_list(values: Sequence[Hashable] | ArrayLike) -> list[Hashable]:
    if isinstance(values, np.ndarray):
        return values.tolist()
    if isinstance(values, (str, bytes)):
        raise InputError("expected a sequence of ids, got a single string")
    return list(values)  # type: ignore[arg-type]


def _normalise(value: Hashable) -> Hashable:
    # numpy scalars hash like Python scalars, but keep ids as plain Python objects
    return value.item() if isinstance(value, np.generic) else value


def _encode(
    values: list[Hashable],
    order: Sequence[Hashable] | None,
    what: str,
    option: str,
) -> tuple[NDArray[np.int32], tuple[Hashable, ...]]:
    if order is None:
        index: dict[Hashable, int] = {}
        codes = np.fromiter(
            (index.setdefault(_normalise(v), len(index)) for v in values), dtype=np.int64, count=len(values)
        )
        return codes.astype(np.int32), tuple(index)
    ordered = tuple(_normalise(v) for v in order)
    index = {value: code for code, value in enumerate(ordered)}
    if len(index) != len(ordered):
        raise InputError(f"{option} lists the same value more than once")
    codes = np.fromiter((index.get(_normalise(v), -1) for v in values), dtype=np.int64, count=len(values))
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        unknown = dict.fromkeys(values[r] for r in bad.tolist())
        hint = (
            f"outside the given classes {list(ordered)!r}: {describe_examples(unknown)}"
            if what == "label"
            else f"not listed in {option}: {describe_examples(unknown)}"
        )
        raise InputError(
            f"{bad.size} annotations use {what}s {hint} (rows {rows_text(bad)}); "
            f"fix the data or extend {option}"
        )
    return codes.astype(np.int32), ordered
