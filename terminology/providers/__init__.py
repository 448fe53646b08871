"""Code system providers: the CodeSystemProvider protocol and the FHIR CodeSystem provider.

base.py is the boundary every operation talks to (locate a code, iterate, filter, search),
fhir.py serves CodeSystem resources, filters.py holds the compose filters every provider can
reuse (with the regex guard), text_index.py the word-prefix index behind `filter=` text
search. CPT's provider lives with the rest of CPT in terminology.cpt; which provider serves a
resource is chosen where content is loaded (terminology.content.make_provider).
"""
