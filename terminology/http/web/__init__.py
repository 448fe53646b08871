"""The terminology browser: HTML pages that show what the FHIR operations answer.

The pages call the operations through the same HANDLERS table the FHIR API routes by, and
every page links the FHIR request that produced its data, so a tester can repeat it with curl.
"""

from terminology.http.web.views import web

__all__ = ["web"]
