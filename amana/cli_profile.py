"""PLACEHOLDER until helper 1 lands the steward commands."""

import typer

profile_app = typer.Typer(help="Steward tools for anonymization profiles.")
