"""PLACEHOLDER until helper 1 lands the anonymize command."""


def anonymize() -> None:
    raise SystemExit("not yet available")
