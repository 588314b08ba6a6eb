"""The ``textrnn`` command. Parses options, calls the library, owns the terminal.

One module per command (train, generate, evaluate, classify, export, plot, serve); ``train``'s options are
generated from their declarations (:mod:`textrnn.cli.options`). Heavy modules (torch,
tokenizers, rich) are imported inside the commands, so ``--help`` and option errors answer
at once. Every user error ends as one ``error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from .classify import classify_command
from .evaluate import evaluate_command
from .export import export_command
from .generate import generate_command
from .plot import plot_command
from .progress import is_main_rank
from .serve import serve_command
from .train import train_command


class _Group(click.Group):
    """Turns user errors (click's and textrnn's) into one line and exit status 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from ..errors import SharedError, TextRNNError

        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help())
            sys.exit(0)
        except click.ClickException as e:
            click.echo(f"error: {e.format_message()}", err=True)
            sys.exit(2)
        except TextRNNError as e:
            if not (isinstance(e, SharedError) and not is_main_rank()):
                click.echo(f"error: {' '.join(str(e).split())}", err=True)  # (rank 0 reports shared errors)
            sys.exit(2)
        except (KeyboardInterrupt, click.exceptions.Abort):
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="textrnn")
def cli() -> None:
    """Train and use recurrent-network text models.

    \b
      textrnn train corpus.txt          train a character-level language model
      textrnn generate --temp 0.8       sample text from the latest one
    """
    from ..process import configure_process

    configure_process()  # before any command runs (the library changes no process-wide state itself)


for _command in (train_command, generate_command, evaluate_command, classify_command, export_command,
                 plot_command, serve_command):
    cli.add_command(_command)


def main() -> None:
    cli()
