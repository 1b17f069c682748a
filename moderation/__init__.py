"""Moderation policy without I/O: decisions, severities, reports, formats, feeds, safety.

The instance-core issue only fixes this package's place in the layers; its contents arrive
with the moderation and member-safety issues.
"""
