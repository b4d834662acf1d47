"""The pseudonymous catalog: models, migrations, sessions, writes and reads."""
