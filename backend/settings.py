"""The backend's settings: read from environment variables once, in one place.

=============================  =====================================================  =========================
variable                       meaning                                                default
=============================  =====================================================  =========================
``LABEL_STUDIO_URL``           Label Studio's base URL, as the backend reaches it     (required for write-back)
``LABEL_STUDIO_API_KEY``       a token galton pulls and writes with (never logged)    (required for write-back)
``GALTON_STATE_URL``           SQLAlchemy URL of the state database                   ``sqlite:///.galton/backend.sqlite3``
``GALTON_METHOD``              consensus method (``galton.backend.review.METHODS``)   ``mace``
``GALTON_WORKER_THREADS``      background job threads                                 ``2``
``GALTON_BASIC_AUTH_USER``     HTTP basic auth user Label Studio sends                (off)
``GALTON_BASIC_AUTH_PASSWORD``   and its password                                     (off)
``GALTON_WEBHOOK_SECRET``      shared secret Label Studio's webhook sends in the      (off)
                               ``X-Galton-Secret`` header
``GALTON_AUTH``                ``off`` to run with neither (explicit opt-out)         (on)
``GALTON_HOST``/``GALTON_PORT``  where ``galton serve`` listens                       ``127.0.0.1`` / ``9090``
``GALTON_HTTP_THREADS``        waitress request threads                               ``8``
``GALTON_SCORE_TOLERANCE``     a task is rewritten when a score moves more than this  ``0.02``
``GALTON_MAX_REQUEST_MB``      largest request body accepted (413 above it)           ``64``
``GALTON_PROJECTS``            comma-separated project ids the backend acts on;       (any project)
                               others get 403 on /setup, /predict, /webhook, /train
``LABEL_STUDIO_API_KEY_FILE``  a file holding the token (when LABEL_STUDIO_API_KEY   (none)
                               is unset; keep it mode 0600)
``GALTON_CONFIG``              the galton.toml to read (galton sync, galton gate)     ``./galton.toml`` if present
``GALTON_DYNAMICS``            ``on`` to run training dynamics in review jobs         ``off``
``GALTON_DYNAMICS_TEXT_FIELDS``  comma-separated task data fields to featurize        ``text``
``GALTON_DYNAMICS_EPOCHS``     most training epochs of a dynamics run (early stops)  ``20``
``GALTON_RATER_GROUPS``        rater table CSV (``worker,group[,...]``): turns on the  (none: no groups)
                               ``systematic_disagreement`` flag and meta
``GALTON_JURY``                jurors per group, e.g. ``A=6,B=6`` (needs groups)      (no jury)
``GALTON_JOB_PROCESS``         ``off`` to run review jobs in the HTTP process         ``on`` (galton serve)
``GALTON_JOB_NICE``            how much lower the job process's CPU priority is       ``5``
=============================  =====================================================  =========================

Authentication is on unless ``GALTON_AUTH=off``: with it on, at least one of basic auth
or the webhook secret must be set, or the backend refuses to start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .dynamics import DynamicsSettings
from .review import METHODS, ReviewSettings

__all__ = ["SECRET_HEADER", "Settings", "SettingsError"]

SECRET_HEADER = "X-Galton-Secret"
DEFAULT_STATE_URL = "sqlite:///.galton/backend.sqlite3"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and the fix."""


def _int(environ: Mapping[str, str], name: str, default: int, low: int = 1) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < low:
        raise SettingsError(f"{name} must be at least {low}, got {value}")
    return value


def _projects(environ: Mapping[str, str]) -> frozenset[int] | None:
    """``GALTON_PROJECTS``: ``"3, 12"`` -> {3, 12}; empty or unset -> None (any project)."""
    raw = environ.get("GALTON_PROJECTS", "").strip()
    if not raw:
        return None
    ids = set()
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) < 1:
            raise SettingsError(f"GALTON_PROJECTS must list project ids separated by commas (e.g. '3,12'), "
                                f"got {part!r} in it")
        ids.add(int(part))
    if not ids:
        raise SettingsError("GALTON_PROJECTS lists no project id; unset it to allow any project")
    return frozenset(ids)


def _dynamics(environ: Mapping[str, str], base: DynamicsSettings | None = None) -> DynamicsSettings:
    """``GALTON_DYNAMICS*`` over ``base`` (the galton.toml values, or the defaults)."""
    base = base or DynamicsSettings()
    changes: dict[str, object] = {}
    if environ.get("GALTON_DYNAMICS", "").strip():
        changes["enabled"] = _switch(environ, "GALTON_DYNAMICS", base.enabled)
    fields = environ.get("GALTON_DYNAMICS_TEXT_FIELDS", "").strip()
    if fields:
        changes.update(featurizer="text", text_fields=tuple(f.strip() for f in fields.split(",") if f.strip()))
    if environ.get("GALTON_DYNAMICS_EPOCHS", "").strip():
        changes["epochs"] = _int(environ, "GALTON_DYNAMICS_EPOCHS", base.epochs)
    try:
        return replace(base, **changes) if changes else base  # type: ignore[arg-type]
    except ValueError as error:
        raise SettingsError(str(error)) from None


def _switch(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("on", "off", "true", "false", "1", "0"):
        raise SettingsError(f"{name} must be 'on' or 'off', got {raw!r}")
    return raw in ("on", "true", "1")


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _review(environ: Mapping[str, str], method: str) -> ReviewSettings:
    """``GALTON_METHOD`` plus the rater table (``GALTON_RATER_GROUPS``) and ``GALTON_JURY``."""
    from .review import load_perspectives

    try:
        return ReviewSettings(method=method, **load_perspectives(environ.get("GALTON_RATER_GROUPS", "").strip(),
                                                                 environ.get("GALTON_JURY", "").strip()))
    except ValueError as error:
        raise SettingsError(f"GALTON_RATER_GROUPS / GALTON_JURY: {error}") from None


@dataclass(frozen=True)
class Settings:
    """Everything the backend needs; build with :meth:`from_env` or directly in tests."""

    label_studio_url: str | None = None
    label_studio_api_key: str | None = field(default=None, repr=False)
    state_url: str = DEFAULT_STATE_URL
    review: ReviewSettings = field(default_factory=ReviewSettings)
    worker_threads: int = 2
    basic_auth_user: str | None = None
    basic_auth_password: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    auth_off: bool = False
    host: str = "127.0.0.1"
    port: int = 9090
    http_threads: int = 8
    score_tolerance: float = 0.02
    # an incremental pull starts this many seconds before the last watermark: Label Studio's
    # clock has second resolution and a webhook can arrive just before its transaction commits
    watermark_margin_s: float = 5.0
    job_retries: int = 3
    # review jobs in a child process (galton.backend.worker; galton serve turns it on), at
    # this much lower CPU priority (os.nice), so /predict never waits behind a job
    job_process: bool = False
    job_nice: int = 5
    retry_delay_s: float = 2.0
    # the largest request body (MB); /predict batches of full tasks with annotations are big
    max_request_mb: float = 64.0
    # the projects this backend acts on (None: any); others get 403 and nothing is pulled or written
    projects: frozenset[int] | None = None
    # training dynamics in review jobs (galton.backend.dynamics): off unless enabled
    dynamics: DynamicsSettings = field(default_factory=DynamicsSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the variables of the module doc (``os.environ`` by default) and validate."""
        env = os.environ if environ is None else environ
        method = env.get("GALTON_METHOD", "").strip() or "mace"
        if method not in METHODS:
            raise SettingsError(f"GALTON_METHOD={method!r} is not a consensus method; choose one of {sorted(METHODS)}")
        auth = env.get("GALTON_AUTH", "").strip().lower()
        if auth not in ("", "on", "off"):
            raise SettingsError(f"GALTON_AUTH must be 'on' or 'off', got {auth!r}")
        settings = cls(
            label_studio_url=(env.get("LABEL_STUDIO_URL") or "").strip() or None,
            label_studio_api_key=(env.get("LABEL_STUDIO_API_KEY") or "").strip() or None,
            state_url=(env.get("GALTON_STATE_URL") or "").strip() or DEFAULT_STATE_URL,
            review=_review(env, method),
            worker_threads=_int(env, "GALTON_WORKER_THREADS", 2),
            basic_auth_user=env.get("GALTON_BASIC_AUTH_USER") or None,
            basic_auth_password=env.get("GALTON_BASIC_AUTH_PASSWORD") or None,
            webhook_secret=env.get("GALTON_WEBHOOK_SECRET") or None,
            auth_off=auth == "off",
            host=(env.get("GALTON_HOST") or "").strip() or "127.0.0.1",
            port=_int(env, "GALTON_PORT", 9090, low=0),
            http_threads=_int(env, "GALTON_HTTP_THREADS", 8),
            score_tolerance=_float(env, "GALTON_SCORE_TOLERANCE", 0.02),
            max_request_mb=_float(env, "GALTON_MAX_REQUEST_MB", 64.0),
            projects=_projects(env),
            dynamics=_dynamics(env),
            job_process=_switch(env, "GALTON_JOB_PROCESS", True),
            job_nice=_int(env, "GALTON_JOB_NICE", 5, low=0),
        )
        settings.validate()
        return settings

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def basic_auth(self) -> bool:
        return bool(self.basic_auth_user and self.basic_auth_password)

    def allows(self, project_id: int | None) -> bool:
        """Whether the backend may act on this project (``GALTON_PROJECTS``); with a list set, a
        request that names no project is refused too."""
        return self.projects is None or (project_id is not None and project_id in self.projects)

    @property
    def can_write_back(self) -> bool:
        return bool(self.label_studio_url and self.label_studio_api_key)

    def validate(self) -> None:
        """Refuse unsafe or incomplete combinations (messages say which variable to set)."""
        if bool(self.basic_auth_user) != bool(self.basic_auth_password):
            raise SettingsError("set both GALTON_BASIC_AUTH_USER and GALTON_BASIC_AUTH_PASSWORD, or neither")
        if not self.auth_off and not (self.basic_auth or self.webhook_secret):
            raise SettingsError(
                "no authentication configured: set GALTON_BASIC_AUTH_USER and GALTON_BASIC_AUTH_PASSWORD "
                "and/or GALTON_WEBHOOK_SECRET, or set GALTON_AUTH=off to run without (only on a private network)"
            )
        if self.auth_off and (self.basic_auth or self.webhook_secret):
            raise SettingsError("GALTON_AUTH=off contradicts the credentials that are set; drop one of them")
        if bool(self.label_studio_url) != bool(self.label_studio_api_key):
            raise SettingsError("set both LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (write-back needs both)")
        if self.label_studio_url and not self.label_studio_url.startswith(("http://", "https://")):
            raise SettingsError(f"LABEL_STUDIO_URL must start with http:// or https://, got {self.label_studio_url!r}")
        if not 0.0 < self.max_request_mb <= 10_000:
            raise SettingsError(f"GALTON_MAX_REQUEST_MB must lie in (0, 10000], got {self.max_request_mb}")
        if not 0.0 <= self.score_tolerance <= 1.0:
            raise SettingsError(f"GALTON_SCORE_TOLERANCE must lie in [0, 1], got {self.score_tolerance}")
