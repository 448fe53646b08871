"""Operations over a code system's releases: a code's history across the loaded releases
(history.py), CodeSystem/$diff (cs_diff.py) and ValueSet/$diff (vs_diff.py)."""
