"""Operator CLI for supporter data: the `export`, `import` and `supporters` groups, one module each.

`flask demo` belongs to campaigns.cli (its data includes campaigns); `flask export campaign` is
added to the export group by campaigns.cli as well.
"""

from __future__ import annotations

from flask import Flask

from supporters.cli_export import export_group
from supporters.cli_import import import_group
from supporters.cli_privacy import supporters_group


def init_app(app: Flask) -> None:
    app.cli.add_command(export_group)
    app.cli.add_command(import_group)
    app.cli.add_command(supporters_group)
