"""``galton.toml``: one configuration file per deployment, overridable by environment and flags.

Precedence, highest first: command-line flags > environment variables > ``galton.toml``
(a project's own table > the file's top-level tables) > built-in defaults. The file is
found at ``--config PATH``, else ``$GALTON_CONFIG``, else ``./galton.toml`` when present;
without one, the environment and defaults apply as before.

.. code-block:: toml

    [label_studio]
    url = "https://labelstudio.example.org"
    token_file = "/etc/galton/label-studio-token"   # or $LABEL_STUDIO_API_KEY / $LABEL_STUDIO_API_KEY_FILE

    [state]
    url = "sqlite:////var/lib/galton/state.sqlite3"  # or postgresql+psycopg://galton@db/galton

    [review]                  # defaults for every project
    method = "mace"
    low_agreement = 0.6
    low_confidence = 0.7
    spam_probability = 0.5
    score_tolerance = 0.02

    [gate]
    target = 0.8
    confidence = 0.95
    min_gold = 10

    [dynamics]
    enabled = false
    text_fields = ["text"]    # or vector_field = "embedding", or npy = "features.npy"
    epochs = 20

    [sync]
    every = "15m"
    wait = "0s"
    lease = "60s"

    [[projects]]
    id = 12
    method = "dawid_skene"
    [projects.dynamics]
    enabled = true
    text_fields = ["premise", "hypothesis"]

A token written in the file itself (``token = "..."``) works but draws a warning: keep it
in the environment or a token file (mode 0600). Every error names the key and the fix.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .dynamics import DynamicsSettings
from .review import METHODS, ReviewSettings
from .settings import Settings, SettingsError

__all__ = ["ConfigError", "DeploymentConfig", "GateTargets", "ProjectConfig", "load_config", "parse_duration",
           "settings_for"]

CONFIG_ENV = "GALTON_CONFIG"
DEFAULT_PATH = "galton.toml"


class ConfigError(SettingsError):
    """galton.toml is malformed; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class GateTargets:
    """The rule of ``galton gate`` (see its ``--help``)."""

    target: float = 0.8
    confidence: float = 0.95
    min_gold: int = 10


@dataclass(frozen=True)
class ProjectConfig:
    """One project as the file configures it (defaults filled in from the top-level tables)."""

    id: int
    review: ReviewSettings = field(default_factory=ReviewSettings)
    gate: GateTargets = field(default_factory=GateTargets)
    dynamics: DynamicsSettings = field(default_factory=DynamicsSettings)
    # which of review/gate/dynamics keys the file set (so the environment only overrides those it names)
    explicit: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DeploymentConfig:
    """What galton.toml says (all optional)."""

    path: Path | None = None
    label_studio_url: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    state_url: str | None = None
    score_tolerance: float | None = None
    review: ReviewSettings = field(default_factory=ReviewSettings)
    gate: GateTargets = field(default_factory=GateTargets)
    dynamics: DynamicsSettings = field(default_factory=DynamicsSettings)
    every_s: float | None = None
    wait_s: float = 0.0
    lease_s: float = 60.0
    projects: tuple[ProjectConfig, ...] = ()
    warnings: tuple[str, ...] = ()

    def project(self, project_id: int) -> ProjectConfig:
        """The project's table, or the top-level defaults for a project the file does not list."""
        for project in self.projects:
            if project.id == project_id:
                return project
        return ProjectConfig(project_id, self.review, self.gate, self.dynamics)


# ---------------------------------------------------------------------- parsing helpers
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any, *, name: str = "duration") -> float:
    """``"15m"`` -> 900.0; ``"90s"``, ``"2h"``, ``"1d"``, a bare number of seconds.

    >>> parse_duration("15m"), parse_duration("1.5h"), parse_duration(30)
    (900.0, 5400.0, 30.0)
    """
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a duration like '15m', '90s' or '2h', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ConfigError(f"{name} must be a duration like '15m', '90s' or '2h', got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise ConfigError(f"{name} must not be negative, got {value!r}")
    return seconds


class _Table:
    """One TOML table being read: typed getters that name ``file: key`` in every error."""

    def __init__(self, source: str, prefix: str, values: Any, allowed: Mapping[str, str]) -> None:
        self.source, self.prefix = source, prefix
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{prefix}] must be a table, got {type(values).__name__}")
        self.values = dict(values)
        unknown = sorted(set(self.values) - set(allowed))
        if unknown:
            known = ", ".join(sorted(allowed))
            raise ConfigError(f"{source}: unknown key {self.key(unknown[0])!r}; [{prefix}] knows: {known}")

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def has(self, name: str) -> bool:
        return name in self.values

    def fail(self, name: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.key(name)} {message}")

    def str_(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.fail(name, f"must be a non-empty string, got {value!r}")
        return value.strip() if isinstance(value, str) else value

    def number(self, name: str, default: float | None, low: float = 0.0, high: float = 1.0) -> float | None:
        value = self.values.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(name, f"must be a number in [{low:g}, {high:g}], got {value!r}")
        if not low <= float(value) <= high:
            raise self.fail(name, f"must lie in [{low:g}, {high:g}], got {value!r}")
        return float(value)

    def int_(self, name: str, default: int, low: int = 0) -> int:
        value = self.values.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.fail(name, f"must be an integer >= {low}, got {value!r}")
        return int(value)

    def bool_(self, name: str, default: bool) -> bool:
        value = self.values.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, f"must be true or false (TOML booleans, no quotes), got {value!r}")
        return value

    def strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.values.get(name, list(default))
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(name, f"must be a list of field names like [\"text\"], got {value!r}")
        return tuple(v.strip() for v in value)

    def duration(self, name: str, default: float | None) -> float | None:
        if name not in self.values:
            return default
        return parse_duration(self.values[name], name=f"{self.source}: {self.key(name)}")


_REVIEW_KEYS = {"method": "", "low_agreement": "", "low_confidence": "", "spam_probability": "", "seed": "",
                "score_tolerance": "", "rater_groups": "", "jury": ""}
_GATE_KEYS = {"target": "", "confidence": "", "min_gold": ""}
_DYNAMICS_KEYS = {"enabled": "", "text_fields": "", "text_components": "", "vector_field": "", "npy": "", "epochs": "",
                  "flag_share": "",
                  "question": "", "cache_dir": "", "min_tasks": "", "seed": ""}


def _review(table: _Table, base: ReviewSettings, root: Path) -> ReviewSettings:
    """``base`` with what ``table`` sets (a project's table starts from ``[review]``)."""
    from .review import parse_jury_composition, read_rater_groups

    method = table.str_("method", base.method)
    if method not in METHODS:
        raise table.fail("method", f"is {method!r}, not a consensus method; choose one of {sorted(METHODS)}")
    changes: dict[str, Any] = {
        "method": str(method),
        "low_agreement": table.number("low_agreement", base.low_agreement) or 0.0,
        "low_confidence": table.number("low_confidence", base.low_confidence) or 0.0,
        "spam_probability": table.number("spam_probability", base.spam_probability) or 0.0,
        "random_state": table.int_("seed", base.random_state),
    }
    groups = table.str_("rater_groups")
    if groups is not None:
        path = Path(groups) if Path(groups).is_absolute() else root / groups
        try:
            changes["rater_groups"] = read_rater_groups(path)
        except (OSError, ValueError) as error:
            raise table.fail("rater_groups", f"({path}) could not be read: {error}") from None
    if table.has("jury"):
        jury = table.values["jury"]
        try:
            if isinstance(jury, str):
                changes["jury_composition"] = parse_jury_composition(jury)
            elif isinstance(jury, Mapping):
                changes["jury_composition"] = dict(jury)
            else:
                raise ValueError(f"write it as \"A=6,B=6\" or {{ A = 6, B = 6 }}, got {jury!r}")
        except ValueError as error:
            raise table.fail("jury", str(error)) from None
    try:
        return replace(base, **changes)
    except ValueError as error:  # e.g. a jury naming a group no rater has
        raise table.fail("jury" if table.has("jury") else "rater_groups", str(error)) from None


def _gate(table: _Table, base: GateTargets) -> GateTargets:
    target = table.number("target", base.target)
    confidence = table.number("confidence", base.confidence)
    if target is not None and not 0.0 < target < 1.0:
        raise table.fail("target", f"must lie strictly between 0 and 1, got {target}")
    if confidence is not None and not 0.5 < confidence < 1.0:
        raise table.fail("confidence", f"must lie strictly between 0.5 and 1, got {confidence}")
    return GateTargets(float(target or base.target), float(confidence or base.confidence),
                       table.int_("min_gold", base.min_gold))


def _dynamics(table: _Table, base: DynamicsSettings, root: Path) -> DynamicsSettings:
    given = [name for name in ("text_fields", "vector_field", "npy") if table.has(name)]
    if len(given) > 1:
        raise table.fail(given[1], f"conflicts with {table.key(given[0])}: give one featurizer "
                         "(text_fields, vector_field or npy)")
    featurizer = {"text_fields": "text", "vector_field": "vector", "npy": "npy"}[given[0]] if given else base.featurizer
    npy = table.str_("npy", base.npy)
    if npy is not None and table.has("npy") and not Path(npy).is_absolute():
        npy = str(root / npy)  # relative to the file
    cache_dir = table.str_("cache_dir", base.cache_dir) or base.cache_dir
    try:
        return DynamicsSettings(
            enabled=table.bool_("enabled", base.enabled), featurizer=featurizer,
            text_fields=table.strings("text_fields", base.text_fields), vector_field=table.str_(
                "vector_field", base.vector_field), npy=npy, epochs=table.int_("epochs", base.epochs, low=1),
            text_components=table.int_("text_components", base.text_components, low=2),
            flag_share=table.number("flag_share", base.flag_share) or 0.0,
            question=table.str_("question", base.question),
            cache_dir=cache_dir, min_tasks=table.int_("min_tasks", base.min_tasks, low=4),
            random_state=table.int_("seed", base.random_state))
    except ValueError as error:
        raise ConfigError(f"{table.source}: [{table.prefix}] {error}") from None


def parse_config(data: Mapping[str, Any], *, source: str = "galton.toml", root: Path | None = None) -> DeploymentConfig:
    """Validate the parsed TOML document (see the module doc) into a :class:`DeploymentConfig`."""
    root = root or Path.cwd()
    top = _Table(source, "", data, {"label_studio": "", "state": "", "review": "", "gate": "", "dynamics": "",
                                    "sync": "", "projects": ""})
    warnings: list[str] = []
    ls = _Table(source, "label_studio", data.get("label_studio", {}), {"url": "", "token": "", "token_file": ""})
    url = ls.str_("url")
    if url is not None and not url.startswith(("http://", "https://")):
        raise ls.fail("url", f"must start with http:// or https://, got {url!r}")
    token = ls.str_("token")
    token_file = ls.str_("token_file")
    if token is not None and token_file is not None:
        raise ls.fail("token", "and label_studio.token_file are both set: keep only token_file")
    if token is not None:
        warnings.append(f"{source}: label_studio.token holds the API token in the file; move it to "
                        "$LABEL_STUDIO_API_KEY or a token file (label_studio.token_file, mode 0600)")
    if token_file is not None and not Path(token_file).is_absolute():
        token_file = str(root / token_file)
    state = _Table(source, "state", data.get("state", {}), {"url": ""})
    state_url = state.str_("url")
    review_table = _Table(source, "review", data.get("review", {}), _REVIEW_KEYS)
    review = _review(review_table, ReviewSettings(), root)
    tolerance = review_table.number("score_tolerance", None)
    gate = _gate(_Table(source, "gate", data.get("gate", {}), _GATE_KEYS), GateTargets())
    dynamics = _dynamics(_Table(source, "dynamics", data.get("dynamics", {}), _DYNAMICS_KEYS), DynamicsSettings(),
                         root)
    sync = _Table(source, "sync", data.get("sync", {}), {"every": "", "wait": "", "lease": ""})
    every = sync.duration("every", None)
    if every is not None and every < 1:
        raise sync.fail("every", f"must be at least 1 s, got {sync.values['every']!r}")
    lease = sync.duration("lease", 60.0) or 60.0
    if lease < 5:
        raise sync.fail("lease", f"must be at least 5 s (the lock is renewed every lease / 3), got "
                        f"{sync.values['lease']!r}")
    raw_projects = data.get("projects", [])
    if not isinstance(raw_projects, list):
        raise top.fail("projects", "must be an array of tables: write [[projects]] with id = <project id>")
    projects: list[ProjectConfig] = []
    seen: set[int] = set()
    for n, entry in enumerate(raw_projects, 1):
        table = _Table(source, f"projects[{n}]", entry, {"id": "", "gate": "", "dynamics": "", **_REVIEW_KEYS})
        if not table.has("id"):
            raise table.fail("id", "is missing: every [[projects]] needs id = <Label Studio project id>")
        project_id = table.int_("id", 0, low=1)
        if project_id in seen:
            raise table.fail("id", f"{project_id} is listed twice; merge the two [[projects]] tables")
        seen.add(project_id)
        if table.has("score_tolerance"):
            raise table.fail("score_tolerance", "is a deployment-wide setting: put it under [review]")
        gate_table = _Table(source, f"projects[{n}].gate", entry.get("gate", {}), _GATE_KEYS)
        dyn_table = _Table(source, f"projects[{n}].dynamics", entry.get("dynamics", {}), _DYNAMICS_KEYS)
        explicit = {k for k in _REVIEW_KEYS if table.has(k)} | {f"gate.{k}" for k in gate_table.values} | {
            f"dynamics.{k}" for k in dyn_table.values}
        projects.append(ProjectConfig(project_id, _review(table, review, root), _gate(gate_table, gate),
                                      _dynamics(dyn_table, dynamics, root), frozenset(explicit)))
    return DeploymentConfig(
        path=None, label_studio_url=url, token=token, token_file=token_file, state_url=state_url,
        score_tolerance=tolerance, review=review, gate=gate, dynamics=dynamics, every_s=every,
        wait_s=sync.duration("wait", 0.0) or 0.0, lease_s=lease, projects=tuple(projects),
        warnings=tuple(warnings))


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> DeploymentConfig:
    """Read galton.toml: ``path``, else ``$GALTON_CONFIG``, else ``./galton.toml`` if it exists, else nothing.

    Raises
    ------
    ConfigError
        The file named by ``path`` or ``$GALTON_CONFIG`` does not exist, is not TOML, or a
        key is unknown or out of range (the message names the key and the fix).
    """
    env = os.environ if environ is None else environ
    explicit = path is not None or bool(env.get(CONFIG_ENV, "").strip())
    chosen = Path(path) if path is not None else Path(env.get(CONFIG_ENV, "").strip() or DEFAULT_PATH)
    if not chosen.is_file():
        if explicit:
            where = "--config" if path is not None else f"${CONFIG_ENV}"
            raise ConfigError(f"{chosen}: no such file ({where}); create it (see README: galton.toml) or drop "
                              f"{where}")
        return DeploymentConfig()
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ConfigError("reading galton.toml needs Python 3.11 or the tomli package: pip install tomli") \
                from None
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{chosen}: not valid TOML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{chosen}: cannot be read: {error}") from None
    config = parse_config(data, source=str(chosen), root=chosen.resolve().parent)
    return replace(config, path=chosen)


# ---------------------------------------------------------------------- combining with the environment
def _read_token_file(path: str, source: str) -> str:
    file = Path(path)
    try:
        token = file.read_text(encoding="utf-8").strip()
        mode = file.stat().st_mode
    except OSError as error:
        raise ConfigError(f"{source}: cannot read the token file {path}: {error.strerror or error}") from None
    if not token:
        raise ConfigError(f"{source}: the token file {path} is empty")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        import logging

        logging.getLogger(__name__).warning("the token file %s is readable by others: chmod 600 %s", path, path)
    return token


def settings_for(config: DeploymentConfig, project_id: int | None = None, *,
                 environ: Mapping[str, str] | None = None, require_auth: bool = False,
                 **flags: Any) -> Settings:
    """The :class:`Settings` of one project: flags > environment > galton.toml > defaults.

    ``flags`` are the command line's values (None = not given): ``label_studio_url``,
    ``state_url``, ``method``, ``dynamics`` (bool). ``require_auth=False`` (``galton sync``,
    which serves nothing) ignores the HTTP authentication settings.
    """
    env = dict(os.environ if environ is None else environ)
    given = {k for k, v in env.items() if str(v).strip()}
    merged: dict[str, str] = {}
    if config.label_studio_url:
        merged["LABEL_STUDIO_URL"] = config.label_studio_url
    if config.state_url:
        merged["GALTON_STATE_URL"] = config.state_url
    if config.score_tolerance is not None:
        merged["GALTON_SCORE_TOLERANCE"] = repr(config.score_tolerance)
    merged.update({k: env[k] for k in given})
    # the token: $LABEL_STUDIO_API_KEY, $LABEL_STUDIO_API_KEY_FILE, then the file's token_file or token
    if "LABEL_STUDIO_API_KEY" not in given:
        if "LABEL_STUDIO_API_KEY_FILE" in given:
            merged["LABEL_STUDIO_API_KEY"] = _read_token_file(env["LABEL_STUDIO_API_KEY_FILE"],
                                                              "$LABEL_STUDIO_API_KEY_FILE")
        elif config.token_file:
            merged["LABEL_STUDIO_API_KEY"] = _read_token_file(config.token_file, str(config.path or "galton.toml"))
        elif config.token:
            merged["LABEL_STUDIO_API_KEY"] = config.token
    if flags.get("label_studio_url"):
        merged["LABEL_STUDIO_URL"] = str(flags["label_studio_url"])
    if flags.get("state_url"):
        merged["GALTON_STATE_URL"] = str(flags["state_url"])
    if not require_auth:
        for name in ("GALTON_BASIC_AUTH_USER", "GALTON_BASIC_AUTH_PASSWORD", "GALTON_WEBHOOK_SECRET"):
            merged.pop(name, None)
        merged["GALTON_AUTH"] = "off"
    project = config.project(project_id) if project_id is not None else ProjectConfig(
        0, config.review, config.gate, config.dynamics)
    # GALTON_METHOD is validated by from_env; the project's method applies unless the environment names one
    if "GALTON_METHOD" not in given:
        merged["GALTON_METHOD"] = project.review.method
    from .settings import _dynamics as dynamics_from_env

    settings = Settings.from_env(merged)
    review = replace(project.review, method=settings.review.method)
    if "GALTON_RATER_GROUPS" in given or "GALTON_JURY" in given:  # the environment's rater table wins
        review = replace(review, **{name: getattr(settings.review, name) for name, variable in (
            ("rater_groups", "GALTON_RATER_GROUPS"), ("jury_composition", "GALTON_JURY")) if variable in given})
    if flags.get("method"):
        if flags["method"] not in METHODS:
            raise SettingsError(f"--method {flags['method']!r} is not a consensus method; choose one of "
                                f"{sorted(METHODS)}")
        review = replace(review, method=str(flags["method"]))
    dynamics = dynamics_from_env(merged, project.dynamics)
    if flags.get("dynamics") is not None:
        dynamics = replace(dynamics, enabled=bool(flags["dynamics"]))
    return settings.with_(review=review, dynamics=dynamics)
