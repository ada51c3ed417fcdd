"""The demo: a fixed set of any-to-any turns written as files and an HTML page (page.py), and the
`anygpt demo` command (command.py)."""
