"""SavedModels: the export in TF Serving's layout (:mod:`.export`), the serving signatures recipes declare
(:mod:`.signatures`), and calling an export's signatures on files (:mod:`.predict`, :mod:`.inputs`), on
folders and texts in chunks (:mod:`.collect`), with rows written to a file (:mod:`.predictions`)."""
