"""Reading the AMA's CPT release files into the release model: importer.py (the files ->
database), files.py (decoding, the error type), modul.py (Appendix A, MODUL.txt) and
report.py (the import report and its warnings)."""
