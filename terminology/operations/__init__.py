"""The terminology operations, one module each, and the table the HTTP layer routes by.

Each handler is a pure function of an OperationContext (terminology.operations.context: the
registry for this request, the parsed parameters, the instance resource for
/{type}/{id}/$op) returning a resource dict. The $validate-code family is the package
terminology.operations.validate.
"""

from __future__ import annotations

from terminology.operations.batch import handle_batch_validate
from terminology.operations.compare import handle_compare
from terminology.operations.context import Handler, OperationContext
from terminology.operations.expand import handle_expand
from terminology.operations.lookup import handle_lookup
from terminology.operations.subsumes import handle_subsumes
from terminology.operations.translate import handle_translate
from terminology.operations.validate import handle_cs_validate, handle_vs_validate

# (resource type, operation name) -> handler. Operation modules add their entries here.
HANDLERS: dict[tuple[str, str], Handler] = {
    ("CodeSystem", "lookup"): handle_lookup,
    ("ValueSet", "expand"): handle_expand,
    ("CodeSystem", "validate-code"): handle_cs_validate,
    ("ValueSet", "validate-code"): handle_vs_validate,
    ("CodeSystem", "subsumes"): handle_subsumes,
    ("ValueSet", "batch-validate-code"): handle_batch_validate,
    ("ConceptMap", "translate"): handle_translate,
    ("ValueSet", "compare"): handle_compare,
}

__all__ = ["HANDLERS", "Handler", "OperationContext"]
