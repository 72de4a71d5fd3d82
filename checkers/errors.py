"""Bad input: one line naming the input and the problem, exit code 2 (DESIGN.md, "Conventions")."""


class UsageError(Exception):
    """Raised for bad user input; the CLI prints ``kinv: <message>`` and exits 2."""
