"""docs/MODEL_FORMAT.md's worked content hash: the block in the doc, run as written,
recomputes the committed model's content_hash (and so its model id)."""
import json
import os
import re
import zipfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def test_worked_hash_in_the_doc_matches_the_model():
    doc = open(os.path.join(ROOT, "docs", "MODEL_FORMAT.md"), encoding="utf-8").read()
    block = re.search(r"```python\n(import hashlib.*?def fxq_content_hash.*?)```", doc, re.S).group(1)
    ns = {}
    exec(compile(block, "MODEL_FORMAT.md", "exec"), ns)  # the doc's own code, not input
    path = os.path.join(ROOT, "vectors", "models", "rand16", "model.fxq")
    want = json.loads(zipfile.ZipFile(path).read("header.json"))["content_hash"]
    assert ns["fxq_content_hash"](path) == want
    assert want in doc
    from fxlic.io.modelfile import load_model, model_hash
    assert model_hash(load_model(path)) == want
