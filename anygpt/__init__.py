"""anygpt: any-to-any multimodal language models over discrete tokens.

Importing the package has no side effects; heavy modules are imported where they are used.
"""

__version__ = "0.1.0"
