"""Validation-only research scripts behind model card rows; not imported by the product."""
