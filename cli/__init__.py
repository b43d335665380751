"""The `unipelt` command line: the library's commands, `serve`, and the service client.

It sits above both `adapters` (the library) and `service` (the app), so neither imports it.
"""
