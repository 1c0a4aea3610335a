"""galton.toml: parsing, precedence (flags > environment > file > defaults) and error messages."""

from __future__ import annotations

import logging
import textwrap

import pytest

from galton.backend.config import ConfigError, load_config, parse_duration, settings_for
from galton.backend.settings import SettingsError

FULL = """
[label_studio]
url = "https://ls.example.org"
token_file = "token.txt"

[state]
url = "sqlite:///state.sqlite3"

[review]
method = "dawid_skene"
low_confidence = 0.8
score_tolerance = 0.05

[gate]
target = 0.85
min_gold = 5

[dynamics]
text_fields = ["premise", "hypothesis"]
epochs = 4

[sync]
every = "15m"
wait = "30s"
lease = "2m"

[[projects]]
id = 12
method = "glad"
[projects.gate]
confidence = 0.9
[projects.dynamics]
enabled = true

[[projects]]
id = 13
"""


def write(tmp_path, text, name="galton.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def deployment(tmp_path):
    token = tmp_path / "token.txt"
    token.write_text("file-token\n")
    token.chmod(0o600)
    return load_config(write(tmp_path, FULL), environ={})


def test_full_file_is_read_with_defaults_filled_in(deployment, tmp_path):
    c = deployment
    assert c.label_studio_url == "https://ls.example.org" and c.token_file == str(tmp_path / "token.txt")
    assert c.state_url == "sqlite:///state.sqlite3" and c.score_tolerance == 0.05
    assert (c.every_s, c.wait_s, c.lease_s) == (900.0, 30.0, 120.0)
    p12, p13 = c.project(12), c.project(13)
    assert p12.review.method == "glad" and p12.review.low_confidence == 0.8  # project > file defaults
    assert p13.review.method == "dawid_skene"
    assert (p12.gate.target, p12.gate.confidence, p12.gate.min_gold) == (0.85, 0.9, 5)
    assert p13.gate.confidence == 0.95
    assert p12.dynamics.enabled and not p13.dynamics.enabled
    assert p12.dynamics.text_fields == ("premise", "hypothesis") and p12.dynamics.epochs == 4
    assert c.project(99).review.method == "dawid_skene"  # unlisted project: the file's defaults
    assert [p.id for p in c.projects] == [12, 13] and not c.warnings


def test_precedence_flags_over_environment_over_file(deployment):
    s = settings_for(deployment, 12, environ={})
    assert s.label_studio_url == "https://ls.example.org" and s.label_studio_api_key == "file-token"
    assert s.review.method == "glad" and s.score_tolerance == 0.05 and s.dynamics.enabled and s.auth_off
    env = {"LABEL_STUDIO_URL": "http://env:8080", "LABEL_STUDIO_API_KEY": "env-token", "GALTON_METHOD": "wawa",
           "GALTON_DYNAMICS": "off", "GALTON_STATE_URL": "sqlite://", "GALTON_BASIC_AUTH_USER": "u"}
    s = settings_for(deployment, 12, environ=env)
    assert (s.label_studio_url, s.label_studio_api_key, s.review.method) == ("http://env:8080", "env-token", "wawa")
    assert not s.dynamics.enabled and s.state_url == "sqlite://"
    assert s.review.low_confidence == 0.8  # the file's threshold stays where the environment says nothing
    s = settings_for(deployment, 12, environ=env, method="mace", dynamics=True, label_studio_url="http://flag",
                     state_url="sqlite:///flag.db")
    assert (s.review.method, s.dynamics.enabled, s.label_studio_url, s.state_url) == (
        "mace", True, "http://flag", "sqlite:///flag.db")


def test_rater_table_and_jury_from_the_file_reach_every_project(tmp_path):
    write(tmp_path, "worker,group\n1,A\n2,A\n3,B\n", name="groups.csv")
    write(tmp_path, "worker,group\n1,A\n2,B\n", name="other.csv")
    c = load_config(write(tmp_path, """
        [review]
        rater_groups = "groups.csv"
        jury = "A=2,B=1"
        [[projects]]
        id = 4
        method = "wawa"
        [[projects]]
        id = 5
        jury = { A = 1, B = 1 }
        """), environ={})
    p4, p5 = c.project(4), c.project(5)
    assert dict(p4.review.rater_groups) == {"1": "A", "2": "A", "3": "B"} and p4.review.method == "wawa"
    assert dict(p4.review.jury_composition) == {"A": 2, "B": 1} and dict(p5.review.jury_composition) == {"A": 1, "B": 1}
    assert settings_for(c, 4, environ={}).review.rater_groups == p4.review.rater_groups
    env = {"GALTON_RATER_GROUPS": str(tmp_path / "other.csv")}  # the environment's table wins
    assert dict(settings_for(c, 4, environ=env).review.rater_groups) == {"1": "A", "2": "B"}
    with pytest.raises(ConfigError, match=r"review.jury .*C"):
        load_config(write(tmp_path, '[review]\nrater_groups = "groups.csv"\njury = "C=2"\n', name="bad.toml"),
                    environ={})
    with pytest.raises(ConfigError, match=r"rater_groups .*could not be read"):
        load_config(write(tmp_path, '[review]\nrater_groups = "missing.csv"\n', name="bad2.toml"), environ={})


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = load_config(environ={})
    assert c.path is None and c.projects == ()
    s = settings_for(c, 5, environ={})
    assert s.review.method == "mace" and not s.dynamics.enabled and not s.can_write_back


def test_token_file_from_environment_and_token_in_file_warns(tmp_path, caplog):
    key = tmp_path / "key"
    key.write_text("env-file-token")
    key.chmod(0o644)
    path = write(tmp_path, '[label_studio]\nurl = "http://ls:8080"\ntoken = "inline-token"\n')
    c = load_config(path, environ={})
    assert len(c.warnings) == 1 and "label_studio.token" in c.warnings[0] and "inline-token" not in c.warnings[0]
    assert "inline-token" not in repr(c)
    assert settings_for(c, 1, environ={}).label_studio_api_key == "inline-token"
    with caplog.at_level(logging.WARNING):
        s = settings_for(c, 1, environ={"LABEL_STUDIO_API_KEY_FILE": str(key)})
    assert s.label_studio_api_key == "env-file-token"
    assert "readable by others" in caplog.text and "env-file-token" not in caplog.text


@pytest.mark.parametrize(("text", "message"), [
    ("[review]\nmetod = 'mace'\n", "unknown key 'review.metod'; [review] knows: jury, low_agreement"),
    ("[review]\nmethod = 'best'\n", "review.method is 'best', not a consensus method; choose one of"),
    ("[review]\nlow_confidence = 1.5\n", "review.low_confidence must lie in [0, 1], got 1.5"),
    ("[gate]\ntarget = 1\n", "gate.target must lie strictly between 0 and 1"),
    ("[dynamics]\nenabled = 'yes'\n", "dynamics.enabled must be true or false (TOML booleans, no quotes)"),
    ("[dynamics]\ntext_fields = ['t']\nvector_field = 'v'\n", "dynamics.vector_field conflicts with "
     "dynamics.text_fields"),
    ("[dynamics]\nepochs = 0\n", "dynamics.epochs must be an integer >= 1, got 0"),
    ("[sync]\nevery = 'often'\n", "sync.every must be a duration like '15m'"),
    ("[label_studio]\nurl = 'ls.example.org'\n", "label_studio.url must start with http:// or https://"),
    ("[[projects]]\nmethod = 'mace'\n", "projects[1].id is missing: every [[projects]] needs id ="),
    ("[[projects]]\nid = 3\n[[projects]]\nid = 3\n", "projects[2].id 3 is listed twice"),
    ("[[projects]]\nid = 3\n[projects.gate]\ntarget = 'high'\n", "projects[1].gate.target must be a number"),
    ("projects = 3\n", "projects must be an array of tables: write [[projects]]"),
    ("[review\n", "not valid TOML"),
])
def test_errors_name_the_key_and_the_fix(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={})
    assert message in str(error.value) and str(path) in str(error.value)


def test_missing_files_and_bad_environment(tmp_path):
    with pytest.raises(ConfigError, match=r"no such file \(--config\)"):
        load_config(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match=r"no such file \(\$GALTON_CONFIG\)"):
        load_config(environ={"GALTON_CONFIG": str(tmp_path / "nope.toml")})
    c = load_config(write(tmp_path, '[label_studio]\ntoken_file = "missing"\n'), environ={})
    with pytest.raises(ConfigError, match="cannot read the token file"):
        settings_for(c, 1, environ={})
    with pytest.raises(SettingsError, match="GALTON_DYNAMICS must be 'on' or 'off'"):
        settings_for(load_config(environ={}), 1, environ={"GALTON_DYNAMICS": "maybe"})
    with pytest.raises(SettingsError, match="GALTON_METHOD='x' is not a consensus method"):
        settings_for(load_config(environ={}), 1, environ={"GALTON_METHOD": "x"})


def test_durations():
    assert parse_duration("90s") == 90 and parse_duration("2h") == 7200 and parse_duration("250ms") == 0.25
    with pytest.raises(ConfigError, match="--every must be a duration"):
        parse_duration("soon", name="--every")
