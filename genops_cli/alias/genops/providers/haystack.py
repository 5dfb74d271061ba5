"""`from genops.providers.haystack import ...`: the guide's names, re-exported from `genops_cli.api`."""

from genops_cli.api import *  # noqa: F403  (the guide's public names, defined once in genops_cli.api)
from genops_cli.api import __all__ as _api_names
from genops_cli.errors import BudgetExceededError, PolicyViolationError
from genops_cli.validation import ValidationIssue, ValidationResult, print_validation_result, validate_haystack_setup

__all__ = [*_api_names, "BudgetExceededError", "PolicyViolationError", "ValidationIssue", "ValidationResult",
           "print_validation_result", "validate_haystack_setup"]
