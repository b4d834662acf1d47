"""Profile versions, users and tokens, registered sources: who may do what."""
