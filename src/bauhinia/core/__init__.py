"""The shared kernel: database, keys, audit log, errors, i18n and the web layer. Imports no domain."""
