"""The root group of `genops`, built to start fast: `genops --help`, `--version` and `genops COMMAND --help`.

* Commands are built on first use. A command module imports its share of the library, and typer inspects every
  option of every command it builds; `GenopsGroup.commands` is a `LazyCommands` that builds a command when it is
  used (invoked, completed, or its help shown). The top-level help lists every command from `LazyCommand.summary`
  without building any (tests/test_cli_startup.py renders it both ways and compares).
* typer's help renderer (`typer.rich_utils`) imports rich.markdown (markdown-it, pygments) and rich.traceback at
  module level, for markdown help and pretty tracebacks; genops uses rich markup and no pretty tracebacks.
  `import_help_renderer` imports it with stand-ins that load the real classes only if they are ever used.
* This module is all the root group needs at start-up; the command-line conventions (`common.apply_conventions`)
  are imported when the first command is built.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping
from types import ModuleType
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


class LazyCommand:
    """A command of the root group: `module.attribute` is the command function or the Typer app of a command
    group, registered as `genops NAME` when first used. `summary` is the first paragraph of its help, the line
    `genops --help` shows; for a group it is also the help given to add_typer."""

    __slots__ = ("name", "summary", "module", "attribute", "epilog")

    def __init__(self, name: str, summary: str, module: str, attribute: str, epilog: str | None = None) -> None:
        self.name, self.summary, self.module, self.attribute, self.epilog = name, summary, module, attribute, epilog

    def build(self, rich_markup_mode: Any) -> Any:
        """The click command, built by typer in a holder app with the root's settings, registered as the full tree
        registered it (`app.command(NAME)` or `app.add_typer(APP, name=NAME, help=SUMMARY)`)."""
        module = importlib.import_module(self.module)
        target = getattr(module, self.attribute)
        extra = {"epilog": getattr(module, self.epilog)} if self.epilog else {}
        holder = typer.Typer(rich_markup_mode=rich_markup_mode, add_completion=False, pretty_exceptions_enable=False)
        holder.callback()(_holder_callback)  # a callback: typer builds a group even for one command
        if isinstance(target, typer.Typer):
            holder.add_typer(target, name=self.name, help=self.summary, cls=CommandGroup, **extra)
        else:
            holder.command(self.name, **extra)(target)
        return typer.main.get_command(holder).commands[self.name]  # type: ignore[attr-defined]


def _holder_callback() -> None:
    """Never invoked: only the command the holder app holds is used."""


class LazyCommands(MutableMapping[str, Any]):
    """The root group's `commands`: names known up front, each command built on first access.

    Iterating the names builds nothing; reading a value (`commands[name]`, `.get`, `.items()`) builds that command
    and applies the command-line conventions to it, once."""

    def __init__(self, built: dict[str, Any], pending: tuple[LazyCommand, ...], rich_markup_mode: Any) -> None:
        self._built = built
        self._pending = {entry.name: entry for entry in pending if entry.name not in built}
        self._order = [*built, *self._pending]
        self._rich_markup_mode = rich_markup_mode

    def listing(self, name: str) -> Any:
        """The command if built, else a stand-in with its name and summary (what a command list shows)."""
        if name in self._built:
            return self._built[name]
        return TyperCommand(name=name, help=self._pending[name].summary)

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            command = self._pending[name].build(self._rich_markup_mode)  # KeyError for an unknown name
            from genops_cli.cli.common import apply_conventions

            apply_conventions(command, name)
            del self._pending[name]
            self._built[name] = command
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._pending.pop(name, None)
        if name not in self._built and name not in self._order:
            self._order.append(name)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._built.pop(name, None)
        self._pending.pop(name, None)
        self._order.remove(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in self._pending


class CommandGroup(TyperGroup):
    """A command group under the root (`genops budget`, `genops ledger hold`): its own options and help flag are
    parsed without pydantic too (`_plain_options`), so `genops ledger hold set --help` stays fast."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _plain_options(self.get_params(ctx))
        return super().parse_args(ctx, args)


class GenopsGroup(TyperGroup):
    """The root group: applies the command-line conventions (`common.apply_conventions`) to every command as it is
    built, and turns click's own usage errors into one `error:` line.

    Commands in `lazy_commands` are built on first use: `genops --help` and `--version` build none of them,
    `genops COMMAND ...` builds that one."""

    #: The commands built on first use, in the order the top-level help lists them (set by the application).
    lazy_commands: tuple[LazyCommand, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.commands:
            from genops_cli.cli.common import apply_conventions

            for name, sub in self.commands.items():
                apply_conventions(sub, name)
        self.commands = LazyCommands(dict(self.commands), self.lazy_commands, self.rich_markup_mode)
        self._listing = False

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _plain_options(self.get_params(ctx))  # the root's options, completion and help flags included
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names: building a command is left to get_command

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if self._listing and cmd_name in self.commands:
            return self.commands.listing(cmd_name)  # type: ignore[attr-defined]
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        import_help_renderer()
        self._listing = True  # the command list needs each command's name and summary only
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Usage errors that click itself finds (an unknown option, a value out of range, a missing argument) are
        one `error:` line naming the flag and exit 2, like genops' own; never a box or a usage dump."""
        try:  # typer >= 0.22 ships its own copy of click
            from typer._click import exceptions
        except ImportError:
            from click import exceptions

        argv = kwargs.get("args", args[0] if args else None)
        if argv is None:
            argv = sys.argv[1:]
        if not argv or "--help" in argv or "-h" in argv:
            import_help_renderer()  # before typer imports it with everything
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except exceptions.UsageError as exc:
            if isinstance(exc, getattr(exceptions, "NoArgsIsHelpError", ())):
                import_help_renderer()
                exc.show()  # a bare group: its help, as before
            else:
                path = exc.ctx.command_path if exc.ctx is not None else "genops"
                message = _one_line(exc.format_message())
                typer.echo(f"error: {message} (see '{path} --help')", err=True)
            from genops_cli.errors import EXIT_USAGE

            rv = EXIT_USAGE
        except exceptions.ClickException as exc:
            typer.echo(f"error: {_one_line(exc.format_message())}", err=True)
            rv = exc.exit_code
        except typer.Abort:
            typer.echo("aborted", err=True)
            rv = 1
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def _one_line(message: str) -> str:
    """click's message on one line, control characters of the value it quotes shown as escapes, a very long value
    shortened."""
    from genops_cli.cli.common import _LONG_TOKEN, _shortened
    from genops_cli.safe_output import terminal_text

    return _LONG_TOKEN.sub(lambda m: _shortened(m.group()), terminal_text(" ".join(message.split()), one_line=True))


def _plain_options(params: list[Any]) -> None:
    """A group's text options (the root's --ledger, --config) and flags keep their value as given, no pydantic.

    typer coerces an option's value through a pydantic TypeAdapter, built (importing pydantic, ~0.2 s) the first
    time the option is processed, whatever its value: a group's options are processed before its subcommand's,
    so before `genops COMMAND --help` shows anything. A str or a flag's bool needs no coercion: typer's own
    pass-through keeps it (and None). Left to typer if its internals are not the ones expected."""
    try:
        from typer._coercion import PassThroughRuntimeParam
    except ImportError:
        return
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if getattr(param, "_runtime_param", False) is not None or descriptor is None:
            continue
        if descriptor.annotation is str:
            plain = (descriptor.file_annotation is None and descriptor.parameter_info.parser is None
                     and not param.multiple and param.nargs == 1)
        else:
            plain = descriptor.annotation is bool and getattr(param, "is_flag", False)
        if plain:
            param._runtime_param = PassThroughRuntimeParam(parameter_info=descriptor.parameter_info,
                                                           annotation=descriptor.annotation)


# -- typer's help renderer without rich.markdown and rich.traceback ------------------------------------------------

_DEFERRED = {"rich.markdown": "Markdown", "rich.traceback": "Traceback"}


class _Deferred(type):
    """The type of a stand-in class: calling it or reading one of its attributes loads the real class."""

    def _real(cls) -> Any:
        return getattr(importlib.import_module(cls.__module__), cls.__name__)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._real()(*args, **kwargs)

    def __getattr__(cls, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(cls._real(), attribute)


def import_help_renderer() -> ModuleType:
    """`typer.rich_utils`, imported once, without rich.markdown and rich.traceback if they are not loaded yet.

    During the import those two modules are stand-ins in sys.modules, each holding a `_Deferred` class; they are
    removed right after, so a later `import rich.markdown` gets the real module. Should a typer release need more
    from them, the import is done again the ordinary way."""
    loaded = sys.modules.get("typer.rich_utils")
    if loaded is not None:
        return loaded
    stand_ins = {}
    for module_name, class_name in _DEFERRED.items():
        if module_name not in sys.modules:
            module = stand_ins[module_name] = ModuleType(module_name)
            setattr(module, class_name, _Deferred(class_name, (), {"__module__": module_name}))
    sys.modules.update(stand_ins)
    try:
        return importlib.import_module("typer.rich_utils")
    except ImportError:
        sys.modules.pop("typer.rich_utils", None)
        for module_name in stand_ins:
            sys.modules.pop(module_name, None)
        stand_ins.clear()
        return importlib.import_module("typer.rich_utils")
    finally:
        for module_name, module in stand_ins.items():
            if sys.modules.get(module_name) is module:
                del sys.modules[module_name]
