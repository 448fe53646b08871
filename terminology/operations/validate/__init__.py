"""The $validate-code family: CodeSystem and ValueSet $validate-code, as one package.

operation.py answers a request (codings, CodeableConcepts, displays, the outcome), checker.py
walks a value set's compose include by include, displays.py decides which displays are valid
in which languages, infer.py infers a missing system, messages.py holds the message texts
(tx.fhir.org's wording) and outcome.py the OperationOutcome issues an answer carries.
"""

from __future__ import annotations

from terminology.operations.validate.operation import (
    handle_cs_validate,
    handle_vs_validate,
    validate_code_system,
    validate_value_set,
)

__all__ = ["handle_cs_validate", "handle_vs_validate", "validate_code_system", "validate_value_set"]
