"""From raw media/text datasets to packed training rows, one file per stage.

    raw JSONL / AnyInstruct JSON ──tokenize──▶ unit shards (codes + text, Parquet, manifest.json)
        records.py   the input formats            tokenize.py  local processes or Ray Data
    unit shards ──mix──▶ sample shards (token ids + a role per token, train/ and val/)
        samples.py   templates, directions, chats  mixture.py   token budgets, oversampling, report
    sample shards ──pack──▶ packed shards (rows of <= max_len ids, document lengths)
        packing.py   best-fit packing, collation with attention isolation
    shards.py holds the Parquet schemas, atomic writes and manifests shared by every stage.
"""
