"""The AWS boundary: the Metering client wrapper, environment/identity/region detection, rules.

Docstring only on purpose: importing this package must not pull in boto3 (only `metering` does).
"""
