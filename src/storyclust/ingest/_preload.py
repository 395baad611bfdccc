"""Imported only by the ingest workers' forkserver: warm the heavy state once.

Workers are forked from the forkserver, so the parsers, the language model and
the date tables loaded here are shared (copy-on-write) by every worker instead
of being loaded again in each one. Nothing else imports this module.
"""
from .readers import warm_up

warm_up()
