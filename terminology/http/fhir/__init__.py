"""The FHIR REST face: operation and read routes, the thin dispatch, negotiation, bodies, XML,
batch, conditional GET, the response cache and the OpenAPI description."""
