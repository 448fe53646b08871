"""ValueSet/$batch-validate-code: many $validate-code requests in one.

Each `validation` parameter holds a Parameters resource with one validation's own parameters;
the request's other parameters (url, valueSet, lenient-display-validation, ...) apply to every
validation unless the validation sets them itself. Each answer is a `validation` parameter
holding that validation's Parameters answer, or an OperationOutcome when it was an error.
"""

from __future__ import annotations

from typing import Any

from terminology.errors import BadRequest, FhirError, TooCostly
from terminology.operations.context import OperationContext
from terminology.operations.validate import validate_value_set
from terminology.params import ParamBag, bag_from_parameters, validate_code_request
from terminology.registry import Registry

# Request parameters that are not inherited by each validation.
NOT_INHERITED = frozenset({"validation", "tx-resource"})


def merged_bag(outer: ParamBag, inner: ParamBag) -> ParamBag:
    """One validation's parameters: its own, plus the request's for names it does not set."""
    own = {p.name for p in inner.params}
    inherited = [p for p in outer.params if p.name not in NOT_INHERITED and p.name not in own]
    return ParamBag(inherited + inner.params)


def validate_one(registry: Registry, bag: ParamBag, accept_language: str | None) -> dict[str, Any]:
    """One validation's answer: Parameters, or the error as an OperationOutcome."""
    try:
        request = validate_code_request(bag, for_code_system=False)
        return validate_value_set(registry, request, None, accept_language)
    except FhirError as e:
        return e.outcome()


def batch_validate(registry: Registry, bag: ParamBag, accept_language: str | None = None,
                   max_validations: int | None = None) -> dict[str, Any]:
    """The $batch-validate-code answer: one `validation` result per `validation` request."""
    validations = bag.all("validation")
    if not validations:
        raise BadRequest("$batch-validate-code needs at least one 'validation' parameter",
                         expression="validation")
    if max_validations is not None and len(validations) > max_validations:
        raise TooCostly(f"The request has {len(validations)} validations; this server runs at most "
                        f"{max_validations} in one $batch-validate-code", expression="validation",
                        message_id=None)
    out = []
    for i, p in enumerate(validations):
        if not isinstance(p.resource, dict) or p.resource.get("resourceType") != "Parameters":
            raise BadRequest(f"validation[{i}] must carry a Parameters resource", expression="validation")
        try:
            inner = bag_from_parameters(p.resource)
        except FhirError as e:
            out.append({"name": "validation", "resource": e.outcome()})
            continue
        result = validate_one(registry, merged_bag(bag, inner), accept_language)
        out.append({"name": "validation", "resource": result})
    return {"resourceType": "Parameters", "parameter": out}


def handle_batch_validate(ctx: OperationContext) -> dict[str, Any]:
    """ValueSet/$batch-validate-code handler."""
    # the same limit as a batch Bundle's entries (settings.max_batch_entries)
    return batch_validate(ctx.registry, ctx.bag, ctx.accept_language, ctx.settings.max_batch_entries)
