import importlib.util

from click.testing import CliRunner

from test_plot import make_run
from textrnn.cli import cli


def run(args):
    return CliRunner().invoke(cli, args)


def test_plot_two_runs_in_the_terminal(tmp_path):
    a, b = make_run(tmp_path / "a", [3.0, 2.0]), make_run(tmp_path / "b", [2.5, 1.5])
    result = run(["plot", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "validation loss by step" in result.output and "* a: step 20" in result.output
    assert "o b: step 20" in result.output


def test_plot_errors_are_one_line_and_exit_2(tmp_path):
    result = run(["plot", str(tmp_path / "nope")])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0
    assert "error:" in result.output and "no such checkpoint" in result.output
    assert run(["plot"]).exit_code == 2  # no run given


def test_plot_output_png_or_the_extra_to_install(tmp_path):
    a = make_run(tmp_path / "a", [3.0, 2.0])
    result = run(["plot", str(a), "--output", str(tmp_path / "p.png")])
    if importlib.util.find_spec("matplotlib") is None:
        assert result.exit_code == 2 and "pip install 'textrnn[plot]'" in result.output
        assert result.output.strip().count("\n") == 0
    else:
        assert result.exit_code == 0 and (tmp_path / "p.png").exists() and "wrote" in result.output
        assert "validation loss" not in result.output  # (--terminal adds the chart)
    result = run(["plot", str(a), "--terminal"])
    assert result.exit_code == 0 and "validation loss by step" in result.output
