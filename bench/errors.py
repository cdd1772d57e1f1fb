"""User-facing errors: the CLI prints them as one line and exits with status 2."""


class UserError(ValueError):
    """A mistake in the user's input (sweep file, flags, data file, results folder)."""
