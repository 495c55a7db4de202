"""TF Serving's version handling: newest-only by default, model config files (policies, labels, several
bases), int64 versions, and failed loads that are retried (a copy that writes saved_model.pb first)."""

from __future__ import annotations

import os
import shutil
import time

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("starlette")
pytest.importorskip("httpx2")

from starlette.testclient import TestClient  # noqa: E402

from kerasapps.serving.errors import ServingError  # noqa: E402
from kerasapps.serving.model_config import read_model_config  # noqa: E402
from kerasapps.serving.server import create_app  # noqa: E402


@pytest.fixture(scope="module")
def exports(tmp_path_factory, constant_export):
    """A pool of finished exports to copy from: value 1, 2, 3."""
    root = tmp_path_factory.mktemp("exports")
    for value in (1, 2, 3):
        constant_export(root / str(value), value)
    return root


def make_model(base, exports, versions):
    """``base/`` with the given {version folder name: export value}."""
    for folder, value in versions.items():
        shutil.copytree(exports / str(value), base / str(folder))
    return base


def answer(client, path):
    r = client.post(path, json={"instances": [0.0]})
    return r.status_code, (r.json()["predictions"][0] if r.status_code == 200 else r.json()["error"])


def test_only_the_newest_version_is_served_by_default(tmp_path, exports):
    make_model(tmp_path / "models" / "m", exports, {1: 1, 2: 2})
    with TestClient(create_app(str(tmp_path / "models"), poll_interval_s=0)) as client:
        assert answer(client, "/v1/models/m:predict") == (200, 2.0)
        assert answer(client, "/v1/models/m/versions/2:predict") == (200, 2.0)
        status, message = answer(client, "/v1/models/m/versions/1:predict")
        assert status == 404 and "Specific(m, 1)" in message
        rows = client.get("/v1/models/m").json()["model_version_status"]
        assert [(r["version"], r["state"]) for r in rows] == [("2", "AVAILABLE")]
        assert client.get("/v1/models/m/versions/1").status_code == 404


def test_a_19_digit_version_is_an_int64(tmp_path, exports):
    big = 2**63 - 1
    make_model(tmp_path / "models" / "m", exports, {big: 3})
    with TestClient(create_app(str(tmp_path / "models"), poll_interval_s=0)) as client:
        assert answer(client, f"/v1/models/m/versions/{big}:predict") == (200, 3.0)
        assert client.get("/v1/models/m/metadata").json()["model_spec"]["version"] == str(big)
        r = client.post(f"/v1/models/m/versions/{big + 1}:predict", json={"instances": [0.0]})
        assert r.status_code == 400 and "Failed to convert version" in r.json()["error"]


def write_config(path, text):
    path.write_text(text)
    return str(path)


def test_model_config_file_policies_labels_and_bases(tmp_path, exports):
    make_model(tmp_path / "a" / "alpha", exports, {1: 1, 2: 2, 3: 3})
    make_model(tmp_path / "b" / "beta", exports, {1: 1, 2: 2, 3: 3})
    make_model(tmp_path / "c" / "gamma", exports, {1: 1, 2: 2})
    make_model(tmp_path / "d" / "delta", exports, {1: 1, 2: 2, 3: 3})
    config = write_config(tmp_path / "models.config", """
        model_config_list {
          config { name: "alpha" base_path: "a/alpha" model_platform: "tensorflow"
                   model_version_policy { specific { versions: 1 versions: 3 } }
                   version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 3 } }
          config { name: "beta" base_path: "b/beta" model_version_policy { latest { num_versions: 2 } } }
          config { name: "gamma" base_path: "c/gamma" model_version_policy { all {} } }
        }""")
    with TestClient(create_app(None, model_config_file=config, poll_interval_s=0)) as client:
        assert answer(client, "/v1/models/alpha:predict") == (200, 3.0)
        assert answer(client, "/v1/models/alpha/labels/stable:predict") == (200, 1.0)
        assert answer(client, "/v1/models/alpha/labels/canary:predict") == (200, 3.0)
        assert answer(client, "/v1/models/alpha/versions/2:predict")[0] == 404  # not in the policy
        r = client.post("/v1/models/alpha/labels/nightly:predict", json={"instances": [0.0]})
        assert r.status_code == 400 and "Unrecognized servable version label: nightly" in r.json()["error"]
        assert client.get("/v1/models/alpha/labels/stable").json()["model_version_status"][0]["version"] == "1"
        assert answer(client, "/v1/models/beta/versions/2:predict") == (200, 2.0)
        assert answer(client, "/v1/models/beta/versions/1:predict")[0] == 404
        assert [r["version"] for r in client.get("/v1/models/beta").json()["model_version_status"]] == ["3", "2"]
        assert answer(client, "/v1/models/gamma/versions/1:predict") == (200, 1.0)
        assert answer(client, "/v1/models/delta:predict")[0] == 404  # on disk, but not in the config
        assert answer(client, "/v1/models/beta/labels/stable:predict")[0] == 400


@pytest.mark.parametrize("text, problem", [
    ("model_config_list { config { name: 'x' base_path: '/x' model_platform: 'pytorch' } }", "model_platform"),
    ("model_config_list { config { name: 'x' } }", "base_path"),
    ("model_config_list { config { name: 'x' base_path: '/x' } config { name: 'x' base_path: '/y' } }", "twice"),
    ("model_config_list { config { name: 'x' base_path: '/x' bogus: 1 } }", "not a ModelServerConfig"),
    ("model_config_list { config { name: 'x' base_path: '/x' model_version_policy { specific { versions: 2 } }"
     " version_labels { key: 'a' value: 1 } } }", "label 'a'"),
])
def test_a_bad_model_config_is_one_line_naming_the_problem(tmp_path, text, problem):
    path = write_config(tmp_path / "bad.config", text)
    with pytest.raises(ValueError, match=problem) as caught:
        read_model_config(path)
    assert "\n" not in str(caught.value)


def test_a_failed_load_is_retried_until_the_copy_is_complete(tmp_path, exports):
    """A copy that writes saved_model.pb before variables/ is served once the variables arrive."""
    base = make_model(tmp_path / "models" / "m", exports, {1: 1})
    with TestClient(create_app(str(tmp_path / "models"), poll_interval_s=0, load_retry_interval_s=0.2)) as client:
        assert answer(client, "/v1/models/m:predict") == (200, 1.0)
        os.makedirs(base / "2")
        shutil.copy(exports / "2" / "saved_model.pb", base / "2" / "saved_model.pb")  # no variables yet
        assert answer(client, "/v1/models/m:predict") == (200, 1.0)  # the old version keeps answering
        rows = client.get("/v1/models/m").json()["model_version_status"]
        assert rows[0]["version"] == "2" and rows[0]["state"] == "END" and rows[0]["status"]["error_message"]
        shutil.copytree(exports / "2" / "variables", base / "2" / "variables")
        shutil.copy(exports / "2" / "fingerprint.pb", base / "2" / "fingerprint.pb")
        time.sleep(0.3)
        assert answer(client, "/v1/models/m:predict") == (200, 2.0)
        assert answer(client, "/v1/models/m/versions/1:predict")[0] == 404  # 2 serves now: 1 is unloaded


@pytest.mark.parametrize("interval, served", [(60.0, False), (0.2, True)])
def test_a_failed_load_is_retried_after_the_interval(tmp_path, exports, interval, served):
    """The variables' data file is not part of a version's stamp: only the retry interval brings it back."""
    from kerasapps.serving.repository import ModelRepository

    base = tmp_path / "models" / "m"
    shutil.copytree(exports / "1", base / "1")
    data = [name for name in os.listdir(base / "1" / "variables") if name.startswith("variables.data")]
    for name in data:
        shutil.move(base / "1" / "variables" / name, tmp_path / name)
    repository = ModelRepository(str(tmp_path / "models"), poll_interval_s=0, load_retry_interval_s=interval)
    with pytest.raises(ServingError) as caught:
        repository.get("m")
    assert caught.value.status == 404 and "failed to load" in caught.value.message
    for name in data:
        shutil.move(tmp_path / name, base / "1" / "variables" / name)
    time.sleep(0.3)
    if served:
        assert repository.get("m").version == 1
    else:
        with pytest.raises(ServingError, match="failed to load"):
            repository.get("m")
