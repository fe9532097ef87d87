"""Getting data: download from a URL list, scrape by synthesised queries, remove duplicates.

Modules: ``urls`` (the label<TAB>url list), ``safety`` (which URLs may be fetched),
``fetch`` (one safe HTTP GET), ``download`` (many, into a dataset), ``providers`` and
``scrape`` (image search), ``dedup`` and ``report`` (duplicates), ``cli`` (the commands).
"""
