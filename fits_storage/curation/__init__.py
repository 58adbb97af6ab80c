"""Curation jobs run from cron (docs/curation.md): freeing the summit's dataflow disk once the
archive holds each file (``delete``), watching free space (``diskspace``), and dumping the
database (``backup``)."""
