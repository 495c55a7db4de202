"""A command's options declared once (kerasapps.core.options): one field makes the click option, the API
parameter, its docstring line and the default; the server's options reach the server from both faces."""

from __future__ import annotations

import dataclasses
import inspect

import click
import pytest
from click.testing import CliRunner

import kerasapps
from kerasapps.cli.main import cli
from kerasapps.cli.options import click_options
from kerasapps.core.errors import UsageError
from kerasapps.core.options import option, takes
from kerasapps.serving.options import ServeOptions, ServingOptions


@dataclasses.dataclass(frozen=True, kw_only=True)
class _CopyOptions:
    times: int = option(2, "Copies to make.", minimum=1)
    into: str | None = option(None, "Where to.", path="dir")
    quiet: bool = option(False, "Say nothing.")


def test_one_field_is_the_click_option_the_api_parameter_its_docstring_and_its_default():
    @takes(_CopyOptions)
    def copy(source, *, options: _CopyOptions, verbose: int = 0):
        """Copy ``source``."""
        return source, options, verbose

    parameters = inspect.signature(copy).parameters
    assert list(parameters) == ["source", "times", "into", "quiet", "verbose"]
    assert parameters["times"].kind is inspect.Parameter.KEYWORD_ONLY and parameters["times"].default == 2
    assert parameters["into"].annotation == "str | None"
    assert "times (int, default 2): Copies to make." in copy.__doc__
    assert copy("a", times=3) == ("a", _CopyOptions(times=3), 0)
    with pytest.raises(TypeError):
        copy("a", tims=3)  # a misspelt option fails as it does on a hand-written function
    with pytest.raises(TypeError):
        copy("a", 3)  # the options are keyword-only

    @click.command()
    @click_options(_CopyOptions)
    def command(**options):
        click.echo(repr(copy("a", **options)[1]))

    help_text = CliRunner().invoke(command, ["--help"], terminal_width=120).output
    assert "--times INTEGER RANGE  Copies to make.  [default: 2; x>=1]" in help_text and "--quiet" in help_text
    assert CliRunner().invoke(command, ["--times", "0"]).exit_code == 2
    assert CliRunner().invoke(command, ["--times", "4", "--quiet"]).output.strip() == repr(
        _CopyOptions(times=4, quiet=True))


def test_a_value_the_declared_range_refuses_is_a_value_error_and_from_the_api_a_usage_error(tmp_path):
    with pytest.raises(ValueError, match="Invalid max_header_bytes: 10"):
        ServingOptions(max_header_bytes=10)
    with pytest.raises(ValueError, match="Invalid grpc_port: 70000"):
        dataclasses.replace(ServingOptions(), grpc_port=70000)
    with pytest.raises(UsageError, match="Invalid max_workers: 0"):
        kerasapps.serve(tmp_path, max_workers=0)
    assert ServingOptions(request_timeout_s=0.5, grpc_port=None).request_timeout_s == 0.5


@pytest.mark.parametrize("face", ["api", "cli"])
def test_every_serving_option_reaches_the_server(face, tmp_path, monkeypatch):
    """poll_interval_s (once the API's only) and max_workers (once the dataclass's only) from either face."""
    from kerasapps.serving import server

    started = {}
    monkeypatch.setattr(server, "serve", lambda model_base, **kwargs: started.update(model_base=model_base, **kwargs))
    if face == "api":
        kerasapps.serve(tmp_path, poll_interval_s=0.25, max_workers=3, port=0)
    else:
        result = CliRunner().invoke(cli, ["serve", "--model-base", str(tmp_path), "--poll-interval", "0.25",
                                          "--max-workers", "3", "--port", "0"])
        assert result.exit_code == 0, result.stderr
    assert str(started["model_base"]) == str(tmp_path)
    options = started["options"]
    assert type(options) is ServingOptions  # the server's options alone, not the command's
    assert (options.poll_interval_s, options.max_workers, started["port"]) == (0.25, 3, 0)
    assert dataclasses.asdict(options) == {**dataclasses.asdict(ServingOptions()), "poll_interval_s": 0.25,
                                           "max_workers": 3, "port": 0}
    assert {field.name for field in dataclasses.fields(ServeOptions)} == {
        "model_base", *(field.name for field in dataclasses.fields(ServingOptions))}
