# Fail-closed key loading (issue 11): the seal-or-refuse decision and the PEM decoder's handles.
target_sources(memguard_provider PRIVATE load.c)
