"""The AWS boundary: Metering and License Manager client wrappers, the Containers Anywhere
credential provider, environment/identity/region detection, and AWS's rules (one home).

Docstring only on purpose: importing this package must not pull in boto3 (only the client
wrappers do).
"""
