"""A procedural multimodal world: image scenes, speech, music and AnyInstruct-style conversations.

`anygpt data world --out DIR` writes it as sharded Parquet plus a manifest (see README.md here);
`reader.iter_items` reads it back. Every item is generated from (seed, kind, index) alone.
"""
