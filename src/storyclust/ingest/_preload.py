"""Imported only by the ingest workers' forkserver: warm the heavy state once.

Workers are forked from the forkserver, so the parsers, the language model, the date
tables and everything trafilatura builds on its first page (jusText stop lists, compiled
XPaths and regexes, htmldate's and courlan's caches) are made here once and shared
(copy-on-write) by every worker instead of being made again in each one. ``gc.freeze()``
then moves all of it out of the collector's sight, so collections in a worker do not write
to (and so copy) the shared pages. Nothing else imports this module.
"""
import gc

from .readers import warm_up, warm_up_extraction

warm_up()
warm_up_extraction()
gc.collect()
gc.freeze()
