"""The sidecar wing: registration, the lean `run` supervisor and probe server, `check`, status.

Everything that runs in a product's pod or task lives here. Docstring only on purpose: importing
this package (as `check` and `run` do) must not pull in boto3, pydantic or cryptography.
"""
