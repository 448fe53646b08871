"""Authoring: the write routes, who may write (tokens, JWT), and the binding of the app to the
store of authored resources and its change feed."""
